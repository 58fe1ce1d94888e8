"""Typed detection configs. ``DetTrainConfig`` defaults: Mask R-CNN on ascan_nano, Fashion-MNIST scenes as instances.

``DetTrainConfig`` is the engine's ``RunConfig`` (length, batch, precision, checkpoints, optimizer, EMA) plus the
detection fields: the backbone (``model``), the detector (``detector``: FPN, anchors, sizes), the data and the
RoIAlign mode. Every field is a flag (``--detector.fpn_channels 128``) or a YAML key (``--config configs/det/...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import at_least, check, in_unit, one_of, parse_device
from ..engine.config import AMP_MODES, RESUMABLE, EmaConfig, OptimConfig, RunConfig
from ..factory import backbone_settings, check_backbone
from ..vision_ops import ROI_ALIGN_MODES
from .model import DetectorConfig, DetModelConfig
from .scenes import ScenesConfig

DATASETS = ("fmnist_scenes", "coco")
WEIGHTS = ("model", "ema", "both")


@dataclass(frozen=True)
class DetDataConfig:
    """Where images and instances come from (always a COCO folder; the scenes are written as one first)."""

    dataset: str = "fmnist_scenes"  # "fmnist_scenes" (written to ``root`` when absent) or "coco" (COCO's layout)
    root: str = "data/fmnist_scenes_coco"  # the COCO folder: annotations/instances_<split>.json and <split>/
    train_split: str = "train2017"
    eval_split: str = "val2017"  # scenes: "val2017" (held-out training items) or "test2017" (the test items)
    channels: int = 1  # image channels fed to the model: 1 (grey) or 3 (RGB); images are converted
    mean: tuple[float, ...] = (0.186,)  # per channel on [0, 1]
    std: tuple[float, ...] = (0.305,)
    train_subset: int = 0  # use only the first N training images (0 = all); for quick runs and tests
    eval_subset: int = 0
    scenes: ScenesConfig = field(default_factory=ScenesConfig)  # how the scenes are made (fmnist_scenes only)

    def __post_init__(self) -> None:
        one_of("data.dataset", self.dataset, DATASETS)
        one_of("data.channels", self.channels, (1, 3))
        at_least(self, 0, "train_subset", "eval_subset", prefix="data.")
        check(all(v > 0 for v in self.std), f"data.std must be positive, got {self.std}")
        check(
            len(self.mean) == len(self.std) == self.channels,
            f"data.mean and data.std need one value per channel ({self.channels}); "
            f"got {len(self.mean)} and {len(self.std)}",
        )


# The scenes' optimizer: AdamW (the paper's), linear warm-up then cosine decay over the budget.
_OPTIM = OptimConfig(lr=1e-3, min_lr=1e-5, warmup_lr=1e-5, warmup_epochs=0.5, weight_decay=0.05, clip_grad=5.0)


@dataclass(frozen=True)
class DetTrainConfig(RunConfig):
    """One detection training run (the engine's fields, then backbone, detector, data)."""

    model: str = "ascan_nano"  # the backbone: any registered model; the run is named maskrcnn_<model>
    epochs: int = 12
    batch_size: int = 16
    eval_batch_size: int = 32
    eval_every: int = 1
    optim: OptimConfig = field(default_factory=lambda: _OPTIM)
    ema: EmaConfig = field(default_factory=lambda: EmaConfig(decay=0.0))  # mmdet's recipes keep no EMA
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model overrides for the backbone
    img_size: int = 64  # the size the backbone's position tables are built for
    drop_path_rate: float = 0.1  # the backbone's stochastic depth at its deepest block
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    data: DetDataConfig = field(default_factory=DetDataConfig)
    roi_align: str = "grid"  # without torchvision's extension: ours ("grid"), or its Python "eager" / "compiled"

    RESUMABLE: ClassVar[frozenset[str]] = RESUMABLE | {"roi_align"}  # what --resume may change

    def __post_init__(self) -> None:
        super().__post_init__()
        check_backbone(self.model, self.img_size)
        check(0 <= self.drop_path_rate < 1, f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        one_of("roi_align", self.roi_align, ROI_ALIGN_MODES)


def detector_name(backbone: str) -> str:
    """The name of the detector on ``backbone`` (the run directory's, and the registered one)."""
    return f"maskrcnn_{backbone}"


def detection_model(cfg: DetTrainConfig, num_classes: int) -> DetModelConfig:
    """The detector a training config describes (``num_classes`` counts the background)."""
    data = cfg.data
    return DetModelConfig(
        **backbone_settings(cfg), num_classes=num_classes, mean=data.mean, std=data.std, detector=cfg.detector
    )


@dataclass(frozen=True)
class DetEvalConfig:
    """``hybridvision det eval``: COCO box and mask AP of a run's weights."""

    weights: str = "both"  # "model", "ema" or "both"
    batch_size: int = 32
    device: str = "auto"
    # autocast while detecting: "off" (fp32), "bf16", "fp16" or "auto" (as training's); for a run, its own training
    # precision by default, so its logged validation scores are reproduced (a weights folder alone: "off")
    amp: str = "off"
    out: str = ""  # JSON file for the numbers (default: RUN/det_eval_<split>.json)
    data: DetDataConfig = field(default_factory=DetDataConfig)
    roi_align: str = "grid"  # without torchvision's extension: ours ("grid"), or its Python "eager" / "compiled"

    def __post_init__(self) -> None:
        one_of("weights", self.weights, WEIGHTS)
        one_of("amp", self.amp, AMP_MODES)
        at_least(self, 1, "batch_size")
        parse_device(self.device)
        one_of("roi_align", self.roi_align, ROI_ALIGN_MODES)


@dataclass(frozen=True)
class DetPredictConfig:
    """``hybridvision det predict``: overlays of a run's detections (boxes, masks, labels, scores)."""

    weights: str = "ema"  # "model" or "ema" (the raw weights when the run has no EMA)
    out: str = "det_predictions"  # folder for the PNGs
    device: str = "auto"
    score: float = 0.5  # detections drawn: score at least this
    alpha: float = 0.45  # opacity of the masks over the image
    roi_align: str = "grid"  # without torchvision's extension: ours ("grid"), or its Python "eager" / "compiled"
    overwrite: bool = False  # replace overlays already in --out (false: refuse, naming the first)

    def __post_init__(self) -> None:
        one_of("weights", self.weights, ("model", "ema"))
        in_unit(self, "alpha", "score")
        parse_device(self.device)
        one_of("roi_align", self.roi_align, ROI_ALIGN_MODES)
