"""``DetModel``: torchvision's Mask R-CNN (RPN, RoI box and mask heads) on any registered backbone.

``DetModel(DetModelConfig(...))`` holds torchvision's ``MaskRCNN`` as ``detector`` and is called like it (a list of
(C, H, W) images in [0, 1], and the targets when training); ``maskrcnn_<backbone>`` names build it through
``create_model`` (``hybridvision.models.zoo``).

Our backbone's ``features_only`` levels (NCHW maps, ``feature_info`` giving their widths) feed torchvision's
``FeaturePyramidNetwork`` with a max-pooled extra level, as torchvision's ``BackboneWithFPN`` does for a ResNet.
Anchors (one size per pyramid level, three aspect ratios) and the resize bounds come from the config, so small
images (64x64 scenes) get small anchors. torchvision is imported through ``vision_ops``, which completes it where
its C extension is missing.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..checkpoint import CheckpointError, adapt_state_dict, read_state_dict
from ..config import at_least, check
from ..factory import task_backbone
from ..models.contract import ModelConfig
from ..registry import get_entry
from ..vision_ops import import_torchvision


@dataclass(frozen=True)
class DetectorConfig:
    """The Mask R-CNN around the backbone; defaults suit 64x64 scenes (COCO: torchvision's, in the comments)."""

    levels: tuple[int, ...] = (1, 2, 3, 4)  # backbone levels into the FPN (0 = stem, i = stage Si)
    fpn_channels: int = 128  # FPN width (COCO recipes: 256)
    anchor_sizes: tuple[int, ...] = (8, 16, 32, 64, 128)  # one per FPN output (the levels, then a pooled one)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # height / width of the anchors at every level
    min_size: int = 64  # short side images are resized to (COCO: 800)
    max_size: int = 64  # long side bound (COCO: 1333)
    rpn_top_n: tuple[int, int] = (600, 300)  # proposals kept per image before and after NMS (train, test; 2000, 1000)
    box_samples: int = 128  # RoIs sampled per image for the heads' loss (torchvision and mmdet: 512)
    # The heads' widths. COCO's (1024, 256) cost ~10x the scenes' backbone: fc6 alone reads 7x7xFPN per RoI, and
    # the mask head's four 3x3 convs run at 14x14 on every positive RoI.
    box_head_dim: int = 256  # the box head's two fully connected layers (COCO: 1024)
    mask_head_dim: int = 64  # the mask head's four 3x3 convs and its upsampling (COCO: 256)
    detections: int = 100  # detections kept per image (COCO's maxDets)
    score_threshold: float = 0.05  # detections below this score are dropped

    def __post_init__(self) -> None:
        check(bool(self.levels) and min(self.levels) >= 0, f"detector.levels must be >= 0, got {self.levels}")
        check(
            len(self.anchor_sizes) == len(self.levels) + 1,
            f"detector.anchor_sizes needs one size per FPN output ({len(self.levels)} levels + 1 pooled), "
            f"got {len(self.anchor_sizes)}",
        )
        check(
            0 < self.min_size <= self.max_size,
            f"detector.min_size and max_size need 0 < min <= max, got {self.min_size}, {self.max_size}",
        )
        at_least(
            self, 1, "fpn_channels", "box_samples", "box_head_dim", "mask_head_dim", "detections", prefix="detector."
        )
        check(min(self.rpn_top_n) >= 1, f"detector.rpn_top_n must be >= 1, got {self.rpn_top_n}")
        check(min(self.anchor_sizes) > 0, f"detector.anchor_sizes must be > 0, got {self.anchor_sizes}")
        check(
            bool(self.aspect_ratios) and min(self.aspect_ratios) > 0,
            f"detector.aspect_ratios must be > 0, got {self.aspect_ratios}",
        )
        check(0 <= self.score_threshold < 1, f"detector.score_threshold must be in [0, 1), got {self.score_threshold}")


@dataclass(frozen=True)
class DetModelConfig(ModelConfig):
    """A Mask R-CNN: the contract fields (``in_chans``, ``img_size``, ``drop_path_rate`` go to the backbone;
    ``num_classes`` counts the background), the backbone, the normalisation and the detector."""

    in_chans: int = 1  # image channels (the scenes are grey)
    num_classes: int = 11  # classes + 1 (label 0 is the background)
    img_size: int | tuple[int, int] = 64  # the size the backbone's position tables are built for
    backbone: str = "ascan_nano"  # any registered backbone
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model overrides for it
    mean: tuple[float, ...] = (0.186,)  # per channel on [0, 1], applied by the detector's transform
    std: tuple[float, ...] = (0.305,)
    detector: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        get_entry(self.backbone)  # an unknown name fails here, with the closest names
        check(self.num_classes >= 2, f"num_classes counts the background, so >= 2, got {self.num_classes}")
        check(
            len(self.mean) == len(self.std) == self.in_chans,
            f"mean and std need one value per input channel ({self.in_chans}); got {len(self.mean)} and "
            f"{len(self.std)}",
        )


class PyramidBackbone(nn.Module):
    """Our backbone's feature levels -> torchvision's FPN: an ordered dict of maps ``"0"``, ``"1"``, ...,
    ``"pool"``, each ``out_channels`` wide (what torchvision's detection models take as a backbone)."""

    def __init__(self, c: DetModelConfig) -> None:
        super().__init__()
        ops = import_torchvision().ops
        self.body = task_backbone(c, features_only=True, out_indices=list(c.detector.levels))
        dims = [info["num_chs"] for info in self.body.feature_info]
        pooled = ops.feature_pyramid_network.LastLevelMaxPool()
        self.fpn = ops.FeaturePyramidNetwork(dims, c.detector.fpn_channels, extra_blocks=pooled)
        self.out_channels = c.detector.fpn_channels
        self.stride = self.body.model.stride

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        feats = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


class DetModel(nn.Module):
    """Mask R-CNN on a backbone: ``forward(images, targets=None)`` is torchvision's ``MaskRCNN``'s (the losses when
    training, else per image ``boxes``, ``labels``, ``scores`` and ``masks`` (N, 1, H, W) probabilities)."""

    def __init__(self, config: DetModelConfig) -> None:
        super().__init__()
        self.config = config
        self.detector = maskrcnn(config)

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None) -> Any:
        return self.detector(images, targets)


def maskrcnn(c: DetModelConfig) -> nn.Module:
    """torchvision's ``MaskRCNN`` on ``PyramidBackbone(c)``, with the config's anchors, sizes and budgets."""
    tv = import_torchvision()
    detection, ops, d = tv.models.detection, tv.ops, c.detector
    backbone = PyramidBackbone(c)
    names = [str(i) for i in range(len(d.levels))]
    anchors = detection.anchor_utils.AnchorGenerator(
        tuple((s,) for s in d.anchor_sizes), (tuple(d.aspect_ratios),) * len(d.anchor_sizes)
    )
    train_n, test_n = d.rpn_top_n
    pooled = d.fpn_channels * 7 * 7  # fc6 reads each RoI's 7x7 box features flattened
    heads = detection.faster_rcnn, detection.mask_rcnn
    model = detection.MaskRCNN(
        backbone,
        num_classes=None,  # the predictors below carry it
        box_head=heads[0].TwoMLPHead(pooled, d.box_head_dim),
        box_predictor=heads[0].FastRCNNPredictor(d.box_head_dim, c.num_classes),
        mask_head=heads[1].MaskRCNNHeads(d.fpn_channels, (d.mask_head_dim,) * 4, 1),
        mask_predictor=heads[1].MaskRCNNPredictor(d.mask_head_dim, d.mask_head_dim, c.num_classes),
        min_size=d.min_size,
        max_size=d.max_size,
        image_mean=list(c.mean),
        image_std=list(c.std),
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=train_n,
        rpn_post_nms_top_n_train=train_n,
        rpn_pre_nms_top_n_test=test_n,
        rpn_post_nms_top_n_test=test_n,
        box_roi_pool=ops.MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2),
        mask_roi_pool=ops.MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2),
        box_batch_size_per_image=d.box_samples,
        box_detections_per_img=d.detections,
        box_score_thresh=d.score_threshold,
    )
    model.transform.size_divisible = max(backbone.stride, 32)  # batches padded to the backbone's stride
    return model


def load_weights(model: DetModel, source: str | Path, *, use_ema: bool = True) -> str:
    """Weights for a detector from a detection run or save (all of it) or a classifier's weights (the backbone,
    through its family's converter; stages the FPN does not read, the final norm and the classifier are left
    out). Returns "model" or "backbone": what was loaded."""
    state = read_state_dict(source, use_ema=use_ema)
    if any(k.startswith("detector.") for k in state):
        model.load_state_dict(state, strict=True)
        return "model"
    body = model.detector.backbone.body.model
    if hasattr(body, "convert_state_dict"):
        state = body.convert_state_dict(state)
    own = body.state_dict()
    state = adapt_state_dict(body, {k: v for k, v in state.items() if k in own})
    missing = sorted(set(own) - set(state))
    if missing:
        raise CheckpointError(
            f"{source} does not fit backbone {model.config.backbone}: {len(missing)} missing weights {missing[:4]}. "
            "Is it a checkpoint of another model?"
        )
    body.load_state_dict(state, strict=True)
    return "backbone"
