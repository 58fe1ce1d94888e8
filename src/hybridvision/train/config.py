"""Typed classification-training configuration. Defaults: the 30-minute Fashion-MNIST ``ascan_nano`` recipe.

``TrainConfig`` is the engine's ``RunConfig`` (length, batch, precision, checkpoints, optimizer, EMA) plus the
classification fields (model options, data, augmentation). Every field can be set from a YAML file
(``--config recipe.yaml``) or a flag (``--optim.lr 1e-3``); the resolved config is printed by ``--dry-run`` and
saved as ``config.yaml`` in every run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data import FASHION_MNIST_DIR
from ..engine.config import RunConfig, check

RANDAUG_OPS = (
    "rotate", "shear_x", "shear_y", "translate_x", "translate_y", "identity", "autocontrast", "equalize", "invert",
    "posterize", "solarize", "solarize_add", "color", "contrast", "brightness", "sharpness",
)  # fmt: skip


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are normalised."""

    dataset: str = "fashion_mnist"  # "fashion_mnist" (idx files) or "folder" (root/train/<class>/*.jpg, root/val/...)
    root: str = FASHION_MNIST_DIR
    train_split: str = "train"  # idx file prefix ("train", "t10k") or folder name
    eval_split: str = "t10k"
    channels: int = 1  # image channels fed to the model (folder images are converted to L or RGB)
    mean: tuple[float, ...] = (0.2860,)  # per channel, on [0, 1] pixels (Fashion-MNIST train statistics)
    std: tuple[float, ...] = (0.3530,)
    train_subset: int = 0  # use only the first N training images (0 = all); for quick runs and tests
    eval_subset: int = 0
    workers: int = 0  # decoding processes for folder data sets (idx data lives in memory and needs none)
    load_size: int = 0  # folder images: decode at this size, crop to img_size on the batch (0 = img_size)


@dataclass(frozen=True)
class AugConfig:
    """Batched augmentation, applied on the training device after the uint8 batch is gathered."""

    crop: str = "shift"  # "rrc" (random-resized-crop), "shift" (random translation, zero fill) or "none"
    crop_scale: tuple[float, float] = (0.35, 1.0)  # rrc area range
    crop_ratio: tuple[float, float] = (0.75, 1.3333)  # rrc aspect range
    shift_px: int = 2  # "shift": max translation in pixels
    hflip: float = 0.5
    randaug_n: int = 1  # RandAugment ops per image (0 = off)
    randaug_m: float = 5.0  # magnitude on timm's 0..10 scale
    randaug_mstd: float = 0.5  # magnitude noise (std)
    randaug_ops: tuple[str, ...] = (
        "autocontrast", "equalize", "rotate", "posterize", "solarize", "solarize_add", "color", "contrast",
        "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y",
    )  # fmt: skip
    fill: float = 0.0  # value on [0, 1] for pixels geometric ops bring in
    erase_prob: float = 0.2  # random erasing (Zhong et al.) per image
    erase_scale: tuple[float, float] = (0.02, 0.33)
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) for MixUp (0 = off)
    cutmix_alpha: float = 0.0  # Beta(alpha, alpha) for CutMix (0 = off)
    mix_prob: float = 1.0  # chance a batch is mixed at all
    switch_prob: float = 0.5  # chance of CutMix over MixUp when both are on
    label_smoothing: float = 0.1


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """One classification training run (the engine's fields, then the model, data and augmentation)."""

    model: str = "ascan_nano"
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model overrides (layout, dims ...)
    img_size: int = 32  # images are padded (or resized) to this size
    drop_path_rate: float = 0.05  # stochastic depth at the deepest block
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.img_size >= 8, f"img_size must be >= 8, got {self.img_size}")
        check(self.aug.crop in ("rrc", "shift", "none"), f"aug.crop must be rrc/shift/none, got {self.aug.crop!r}")
        check(self.data.dataset in ("fashion_mnist", "folder"), f"unknown data.dataset {self.data.dataset!r}")
        unknown_ops = sorted(set(self.aug.randaug_ops) - set(RANDAUG_OPS))
        check(not unknown_ops, f"unknown aug.randaug_ops {unknown_ops}; choose from {', '.join(RANDAUG_OPS)}")
        check(
            len(self.data.mean) == len(self.data.std) == self.data.channels,
            f"data.mean and data.std need one value per channel ({self.data.channels}); "
            f"got {len(self.data.mean)} and {len(self.data.std)}",
        )


@dataclass(frozen=True)
class EvalConfig:
    """``hybridvision eval``: top-1/top-5 of a run's (or a saved model's) weights on the evaluation split."""

    weights: str = "both"  # "model", "ema" or "both"
    batch_size: int = 500
    img_size: int = 0  # 0 = the size the run trained at
    device: str = "auto"
    out: str = ""  # JSON file for the numbers (default: RUN/eval.json)
    data: DataConfig = field(default_factory=DataConfig)
