"""Typed segmentation configs. ``SegTrainConfig`` defaults: ascan_nano + UperNet on Fashion-MNIST scenes, 30 min.

``SegTrainConfig`` is the engine's ``RunConfig`` (length, batch, precision, checkpoints, optimizer, EMA) plus the
segmentation fields: the backbone (``model``), the head, the data, the augmentation and how evaluation infers.
Every field is a flag (``--head.channels 128``) or a YAML key (``--config configs/seg/...yaml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ..config import at_least, check, in_unit, one_of, parse_device
from ..data import FASHION_MNIST_DIR
from ..data.scenes import SceneConfig
from ..engine.config import RESUMABLE, EmaConfig, OptimConfig, RunConfig
from ..factory import backbone_settings, check_backbone
from .model import HeadConfig, SegModelConfig

DATASETS = ("fmnist_scenes", "ade20k")
ADE_HINT = (
    "data.dataset ade20k with the Fashion-MNIST scenes' image settings (1 channel, mean 0.186, std 0.305) would "
    "read ADE20K's RGB images as grey: set --data.channels 3 --data.mean 0.485,0.456,0.406 --data.std "
    "0.229,0.224,0.225 (ImageNet's) --data.train_split training --data.eval_split validation, or start from "
    "--config configs/seg/ade20k_upernet_ascan_t.yaml"
)
INFER_MODES = ("whole", "slide")
WEIGHTS = ("model", "ema", "both")
LOSS_KINDS = ("ce", "ce_lovasz", "ce_dice")
VOTES = ("off", "mass", "count")  # region vote: none; the most probability mass; the most pixels' argmax


@dataclass(frozen=True)
class SegDataConfig:
    """Where images and masks come from and how images are normalised."""

    dataset: str = "fmnist_scenes"  # "fmnist_scenes" (made from Fashion-MNIST) or "ade20k" (ADE20K's folder layout)
    root: str = FASHION_MNIST_DIR  # scenes: the idx files; ade20k: the folder with images/ and annotations/
    train_split: str = "train"  # scenes: "train" (training items less the held-out ones); ade20k: "training"
    eval_split: str = "val"  # scenes: "val" (choose settings) or "test" (score once); ade20k: "validation"
    channels: int = 1  # image channels fed to the model
    mean: tuple[float, ...] = (0.186,)  # per channel on [0, 1] (measured on the evaluation scenes)
    std: tuple[float, ...] = (0.305,)
    num_classes: int = 0  # ade20k: classes after reduce_zero_label (0 = ADE20K's 150); scenes: always 11
    reduce_zero_label: bool = True  # ade20k: label 0 is ignored, k becomes k - 1 (mmseg's convention)
    train_subset: int = 0  # use only the first N training images/scenes (0 = all); for quick runs and tests
    eval_subset: int = 0
    workers: int = 0  # ade20k: decoding processes (scenes are rendered in the training process)
    scenes: SceneConfig = field(default_factory=SceneConfig)

    def __post_init__(self) -> None:
        one_of("data.dataset", self.dataset, DATASETS)
        check(self.channels >= 1, f"data.channels must be >= 1, got {self.channels}")
        at_least(self, 0, "num_classes", "train_subset", "eval_subset", "workers", prefix="data.")
        check(all(v > 0 for v in self.std), f"data.std must be positive, got {self.std}")
        check(
            len(self.mean) == len(self.std) == self.channels,
            f"data.mean and data.std need one value per channel ({self.channels}); "
            f"got {len(self.mean)} and {len(self.std)}",
        )
        check(not self._scenes_images_for_ade(), ADE_HINT)

    def _scenes_images_for_ade(self) -> bool:
        """ADE20K asked for with the scenes' image settings, all three left at their defaults: RGB images would be
        read as one grey channel and normalised with the scenes' statistics."""
        scenes = SegDataConfig.__dataclass_fields__
        image = ("channels", "mean", "std")
        return self.dataset == "ade20k" and all(getattr(self, k) == scenes[k].default for k in image)


@dataclass(frozen=True)
class SegAugConfig:
    """Training augmentation; the defaults are mmseg's ADE20K pipeline (the Fashion-MNIST recipe narrows them)."""

    scale: tuple[int, int] = (0, 0)  # (long, short) sides images are first fitted into (ADE20K: 2048, 512); 0 = as is
    ratio: tuple[float, float] = (0.5, 2.0)  # random resize ratio range
    cat_max_ratio: float = 0.75  # re-draw a crop where one class covers this share or more (1 = never)
    crop_tries: int = 10  # crops drawn at most; the last is kept when none passes
    hflip: float = 0.5  # probability of mirroring
    photometric: bool = True  # mmseg's PhotoMetricDistortion (each step with probability 0.5), image only
    brightness: float = 32.0  # max |delta| added, on 0..255
    contrast: tuple[float, float] = (0.5, 1.5)  # multiplier range
    saturation: tuple[float, float] = (0.5, 1.5)  # HSV saturation multiplier range (colour images)
    hue: float = 18.0  # max |delta| of the HSV hue in OpenCV units (180 = a full turn; colour images)

    def __post_init__(self) -> None:
        check(min(self.scale) >= 0, f"aug.scale must be (long, short) >= 0, got {self.scale}")
        for name in ("ratio", "contrast", "saturation"):
            lo, hi = getattr(self, name)
            check(0 <= lo <= hi and hi > 0, f"aug.{name} must be (low, high) with 0 <= low <= high, got {(lo, hi)}")
        check(0 < self.cat_max_ratio <= 1, f"aug.cat_max_ratio must be in (0, 1], got {self.cat_max_ratio}")
        at_least(self, 1, "crop_tries", prefix="aug.")
        at_least(self, 0, "brightness", prefix="aug.")
        in_unit(self, "hflip", prefix="aug.")
        check(0 <= self.hue <= 90, f"aug.hue must be in [0, 90] (OpenCV hue units), got {self.hue}")


@dataclass(frozen=True)
class InferConfig:
    """How evaluation and prediction run the model on an image (mmseg's test modes)."""

    mode: str = "whole"  # "whole" image, or "slide": windows of `crop` every `stride` pixels, scores averaged
    crop: int = 0  # slide: window side (0 = the training crop)
    stride: int = 0  # slide: window step (0 = two thirds of the window, as mmseg's 341 for 512)
    scale: tuple[int, int] = (0, 0)  # (long, short) sides images are fitted into first (ADE20K: 2048, 512); 0 = as is
    ratios: tuple[float, ...] = (1.0,)  # test-time multi-scale: ratios of that size (mmseg's ms: 0.5 ... 1.75)
    flip: bool = False  # test-time flip: also the mirrored image, scores averaged
    region_vote: str = "off"  # scenes: one item class per ink-connected region, "mass" or "count" (seg.region)
    vote_minority: float = 0.1  # region_vote: a class holding this share of its region keeps its pixels (1 = none)

    def __post_init__(self) -> None:
        one_of("infer.mode", self.mode, INFER_MODES)
        one_of("infer.region_vote", self.region_vote, VOTES)
        in_unit(self, "vote_minority", prefix="infer.")
        at_least(self, 0, "crop", "stride", prefix="infer.")
        check(min(self.scale) >= 0, f"infer.scale must be (long, short) >= 0, got {self.scale}")
        ratios_ok = bool(self.ratios) and all(0 < r < math.inf for r in self.ratios)
        check(ratios_ok, f"infer.ratios must be positive and finite, got {self.ratios}")


def ink_threshold(data: SegDataConfig, infer: InferConfig) -> float | None:
    """The ink threshold the region vote needs (None when the vote is off); only the scenes have one."""
    if infer.region_vote == "off":
        return None
    check(
        data.dataset == "fmnist_scenes",
        f"infer.region_vote {infer.region_vote} needs the scenes' ink (data.dataset fmnist_scenes), not "
        f"{data.dataset}; set --infer.region_vote off",
    )
    return float(data.scenes.threshold)


@dataclass(frozen=True)
class SegLossConfig:
    """The segmentation loss of the main head (the auxiliary head keeps plain cross-entropy)."""

    kind: str = "ce"  # "ce", "ce_lovasz" (CE + weight * Lovász-softmax) or "ce_dice" (CE + weight * soft Dice)
    weight: float = 1.0  # weight of the surrogate next to cross-entropy
    background: bool = False  # let class 0 (background) take part in the surrogate (false: item classes only)
    region_weight: float = 0.0  # weight of the region-consistency term (0 = off)

    def __post_init__(self) -> None:
        one_of("loss.kind", self.kind, LOSS_KINDS)
        check(self.weight >= 0, f"loss.weight must be >= 0, got {self.weight}")
        check(self.region_weight >= 0, f"loss.region_weight must be >= 0, got {self.region_weight}")


# The Fashion-MNIST recipe's optimizer: AdamW, linear warm-up then poly decay (docs/segmentation.md).
_OPTIM = OptimConfig(
    lr=2e-3, min_lr=0.0, warmup_lr=1e-5, warmup_epochs=1.0, schedule="poly", poly_power=1.0, weight_decay=0.01
)


@dataclass(frozen=True)
class SegTrainConfig(RunConfig):
    """One segmentation training run (the engine's fields, then backbone, head, data, augmentation, inference)."""

    model: str = "ascan_nano"  # the backbone: any registered model; the run is named upernet_<model>
    selected_on: str = "test"  # the defaults are the 30-minute recipe, chosen before the validation split existed
    epochs: int = 40  # an upper bound: the time budget ends the default run
    batch_size: int = 16
    eval_batch_size: int = 200
    eval_every: int = 1
    optim: OptimConfig = field(default_factory=lambda: _OPTIM)
    ema: EmaConfig = field(default_factory=lambda: EmaConfig(decay=0.999))
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model overrides for the backbone
    img_size: int = 64  # training crop side (the backbone's position tables are built for it)
    drop_rate: float = 0.1  # Dropout2d before the classifiers (mmseg's dropout_ratio)
    drop_path_rate: float = 0.05  # the backbone's stochastic depth at its deepest block
    head: HeadConfig = field(default_factory=lambda: HeadConfig(channels=64, aux_channels=32))
    aux_weight: float = 0.4  # loss weight of the auxiliary FCN head (0 = no auxiliary head)
    loss: SegLossConfig = field(default_factory=SegLossConfig)  # the main head's loss (the auxiliary head: CE)
    data: SegDataConfig = field(default_factory=SegDataConfig)
    aug: SegAugConfig = field(default_factory=lambda: SegAugConfig(ratio=(0.75, 1.5), photometric=False))
    infer: InferConfig = field(default_factory=InferConfig)  # how evaluation during training infers

    RESUMABLE: ClassVar[frozenset[str]] = RESUMABLE | {"data.workers"}  # what --resume may change

    def __post_init__(self) -> None:
        super().__post_init__()
        check_backbone(self.model, self.img_size, **self.model_kwargs)
        check(0 <= self.drop_rate < 1, f"drop_rate must be in [0, 1), got {self.drop_rate}")
        check(0 <= self.drop_path_rate < 1, f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        check(self.aux_weight >= 0, f"aux_weight must be >= 0, got {self.aux_weight}")
        ink_threshold(self.data, self.infer)  # a region vote without the scenes' ink fails here


def segmentor_name(backbone: str) -> str:
    """The name of the segmentation model on ``backbone`` (the run directory's, and the registered one)."""
    return f"upernet_{backbone}"


def segmentation_model(cfg: SegTrainConfig, num_classes: int) -> SegModelConfig:
    """The segmentation model a training config describes."""
    head = cfg.head if cfg.aux_weight > 0 else replace(cfg.head, aux_channels=0)
    return SegModelConfig(**backbone_settings(cfg), head=head, num_classes=num_classes, drop_rate=cfg.drop_rate)


@dataclass(frozen=True)
class SegEvalConfig:
    """``hybridvision seg eval``: mIoU, per-class IoU and pixel accuracy of a run's weights."""

    weights: str = "both"  # "model", "ema" or "both"
    batch_size: int = 200
    device: str = "auto"
    out: str = ""  # JSON file for the numbers (default: RUN/seg_eval.json)
    data: SegDataConfig = field(default_factory=SegDataConfig)
    infer: InferConfig = field(default_factory=InferConfig)

    def __post_init__(self) -> None:
        one_of("weights", self.weights, WEIGHTS)
        at_least(self, 1, "batch_size")
        parse_device(self.device)
        ink_threshold(self.data, self.infer)


@dataclass(frozen=True)
class PredictConfig:
    """``hybridvision seg predict``: colour-coded overlays (with a legend) of a run's predictions."""

    weights: str = "ema"  # "model" or "ema" (the raw weights when the run has no EMA)
    out: str = "seg_predictions"  # folder for the PNGs
    device: str = "auto"
    alpha: float = 0.5  # opacity of the class colours over the image
    scenes: int = 0  # > 0: draw this many evaluation scenes with their ground truth instead of image files
    overwrite: bool = False  # replace overlays already in --out (false: refuse, naming the first)
    infer: InferConfig = field(default_factory=InferConfig)

    def __post_init__(self) -> None:
        one_of("weights", self.weights, ("model", "ema"))
        in_unit(self, "alpha")
        at_least(self, 0, "scenes")
        parse_device(self.device)
