"""Typed classification-training configuration. Defaults: the 30-minute Fashion-MNIST ``ascan_nano`` recipe.

``TrainConfig`` is the engine's ``RunConfig`` (length, batch, precision, checkpoints, optimizer, EMA) plus the
classification fields (model options, data, augmentation). Every field can be set from a YAML file
(``--config recipe.yaml``) or a flag (``--optim.lr 1e-3``); the resolved config is printed by ``--dry-run`` and
saved as ``config.yaml`` in every run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import at_least, check, in_unit, one_of, parse_device
from ..data import FASHION_MNIST_DIR, FASHION_MNIST_MEAN, FASHION_MNIST_STD
from ..engine.config import RESUMABLE, OptimConfig, RunConfig
from ..models.contract import check_img_size
from ..registry import get_config, get_entry

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
    mean: tuple[float, ...] = FASHION_MNIST_MEAN  # per channel, on [0, 1] pixels (Fashion-MNIST train statistics)
    std: tuple[float, ...] = FASHION_MNIST_STD
    train_subset: int = 0  # use only the first N training images (0 = all); for quick runs and tests
    eval_subset: int = 0
    workers: int = 0  # decoding processes for folder data sets (idx data lives in memory and needs none)
    load_size: int = 0  # folder images: decode at this size, crop to img_size on the batch (0 = img_size)

    def __post_init__(self) -> None:
        check(
            self.dataset in ("fashion_mnist", "folder"),
            f"data.dataset must be fashion_mnist or folder, got {self.dataset!r}",
        )
        check(self.channels >= 1, f"data.channels must be >= 1, got {self.channels}")
        at_least(self, 0, "train_subset", "eval_subset", "workers", "load_size", prefix="data.")
        check(all(v > 0 for v in self.std), f"data.std must be positive, got {self.std}")


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
    item_scale: tuple[float, float] = (1.0, 1.0)  # zoom each image by a factor in this range, cut by the frame
    occlude_prob: float = 0.0  # share of images covered in part by another image's item, as scenes draw it (0 = off)
    occlude_share: tuple[float, float] = (0.1, 0.5)  # share of the item's solid ink the occluder covers
    occlude_scale: tuple[float, float] = (0.7, 1.4)  # the occluder's size relative to its image's
    occlude_ink: int = 40  # ink (0..255) above which a pixel is solid: covers, and counts as covered (scenes: 40)
    occlude_tries: int = 8  # placements tried per image; none within occlude_share leaves the image uncovered

    def __post_init__(self) -> None:
        one_of("aug.crop", self.crop, ("rrc", "shift", "none"))
        in_unit(self, "occlude_prob", prefix="aug.")
        check(0 <= self.occlude_ink < 255, f"aug.occlude_ink must be in [0, 255), got {self.occlude_ink}")
        check(self.occlude_tries >= 1, f"aug.occlude_tries must be >= 1, got {self.occlude_tries}")
        for name in ("item_scale", "occlude_scale"):
            lo, hi = getattr(self, name)
            check(0 < lo <= hi, f"aug.{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        lo, hi = self.occlude_share
        check(0 <= lo <= hi <= 1, f"aug.occlude_share must be (low, high) with 0 <= low <= high <= 1, got {(lo, hi)}")
        in_unit(self, "hflip", "erase_prob", "mix_prob", "switch_prob", "fill", prefix="aug.")
        check(0 <= self.label_smoothing < 1, f"aug.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("shift_px", "randaug_n", "randaug_mstd", "mixup_alpha", "cutmix_alpha"):
            check(getattr(self, name) >= 0, f"aug.{name} must be >= 0, got {getattr(self, name)}")
        check(
            0 <= self.randaug_m <= 30, f"aug.randaug_m must be in [0, 30] (timm's scale is 0..10), got {self.randaug_m}"
        )
        for name in ("crop_scale", "erase_scale"):
            lo, hi = getattr(self, name)
            check(0 < lo <= hi <= 1, f"aug.{name} must be (low, high) with 0 < low <= high <= 1, got {(lo, hi)}")
        check(
            0 < self.crop_ratio[0] <= self.crop_ratio[1],
            f"aug.crop_ratio must be 0 < low <= high, got {self.crop_ratio}",
        )
        unknown_ops = sorted(set(self.randaug_ops) - set(RANDAUG_OPS))
        check(not unknown_ops, f"unknown aug.randaug_ops {unknown_ops}; choose from {', '.join(RANDAUG_OPS)}")


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """One classification training run (the engine's fields, then the model, data and augmentation)."""

    model: str = "ascan_nano"
    selected_on: str = "test"  # the defaults are the 30-minute recipe, chosen before the validation split existed
    epochs: int = 60  # an upper bound: the 30-minute budget ends the run first on 2 CPU cores
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(warmup_epochs=2))  # 2 of 60: the first minute
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model overrides (layout, dims ...)
    img_size: int = 32  # images are padded (or resized) to this size
    drop_path_rate: float = 0.05  # stochastic depth at the deepest block
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)

    RESUMABLE: ClassVar[frozenset[str]] = RESUMABLE | {"data.workers"}  # what --resume may change

    def __post_init__(self) -> None:
        super().__post_init__()
        get_entry(self.model)  # an unknown name fails here, with the closest names, before anything runs
        check_img_size(self.img_size, get_config(self.model).stride, self.model)  # the registered stride
        check(0 <= self.drop_path_rate < 1, f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
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

    def __post_init__(self) -> None:
        one_of("weights", self.weights, ("model", "ema", "both"))
        at_least(self, 1, "batch_size")
        at_least(self, 0, "img_size")
        parse_device(self.device)
