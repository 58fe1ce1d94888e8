"""Typed training configuration. The defaults are the 30-minute Fashion-MNIST ``ascan_nano`` recipe (2 CPU cores).

Every field can be set from a YAML file (``--config recipe.yaml``) or a flag (``--optim.lr 1e-3``); the resolved
config is printed by ``--dry-run`` and saved as ``config.yaml`` in every run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
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
class OptimConfig:
    """AdamW with warm-up and cosine decay; no weight decay on norms, biases and position tables."""

    lr: float = 2e-3  # peak learning rate at ``batch_size`` (not rescaled)
    min_lr: float = 1e-5
    warmup_lr: float = 1e-5
    warmup_epochs: float = 0.5
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad: float = 1.0  # max global gradient norm (0 = off)
    accum_steps: int = 1  # micro-batches per optimizer step (the batch is split, not multiplied)
    impl: str = "auto"  # AdamW kernel: "auto" (fused where supported), "fused", "foreach", "loop"


@dataclass(frozen=True)
class EmaConfig:
    decay: float = 0.999  # per optimizer step; 0 turns EMA off
    warmup: bool = True  # decay ramps up as (1 + step) / (10 + step) early on (timm's ModelEmaV3)
    every: int = 1  # update every N optimizer steps


@dataclass(frozen=True)
class TrainConfig:
    """One training run."""

    model: str = "ascan_nano"
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model overrides (layout, dims ...)
    img_size: int = 32  # images are padded (or resized) to this size
    drop_path_rate: float = 0.05  # stochastic depth at the deepest block
    epochs: int = 12
    budget_minutes: float = 30.0  # > 0: end cleanly when this much training time is spent; lr follows the budget
    batch_size: int = 128  # images per optimizer step, over all processes and micro-batches
    eval_batch_size: int = 500
    seed: int = 0
    out_dir: str = "runs"  # run directories go here as <index>-<model>
    run_name: str = ""  # fixed run directory name instead of the auto-numbered one
    resume: str = ""  # "auto" (the run directory's newest good checkpoint) or a run directory
    init_from: str = ""  # run directory or weights to start from (multi-stage training)
    init_ema: bool = True  # take the EMA weights of ``init_from`` when it has them
    amp: str = "auto"  # "auto" (bf16 on CUDA with bf16 and on CPUs with AMX, else fp32), "bf16", "fp16", "off"
    channels_last: bool = True
    compile: bool = False  # torch.compile the model (fullgraph)
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1" ...
    distributed: str = "ddp"  # under torchrun: "ddp" or "fsdp" (sharded, for models that do not fit)
    threads: int = 0  # torch intra-op threads (0 = torch's default)
    keep_freed_memory: bool = True  # glibc reuses freed activations instead of unmapping them (CPU: ~1.5x img/s)
    log_every: int = 20  # optimizer steps between progress/CSV rows
    eval_every: int = 2  # epochs between evaluations (the last epoch is always evaluated)
    ckpt_every: int = 0  # optimizer steps between checkpoints (0 = every epoch)
    keep_ckpts: int = 2  # checkpoints kept; the newest complete one is used on resume
    max_steps: int = 0  # stop after this many optimizer steps (0 = all epochs); the schedule still spans epochs
    progress: bool = True  # live progress bar (off when not a terminal)
    tensorboard: bool = True  # also log to TensorBoard when it is installed
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.img_size >= 8, f"img_size must be >= 8, got {self.img_size}")
        _check(self.optim.accum_steps >= 1, f"optim.accum_steps must be >= 1, got {self.optim.accum_steps}")
        _check(self.amp in ("auto", "bf16", "fp16", "off"), f"amp must be auto/bf16/fp16/off, got {self.amp!r}")
        _check(self.distributed in ("ddp", "fsdp"), f"distributed must be ddp or fsdp, got {self.distributed!r}")
        _check(self.aug.crop in ("rrc", "shift", "none"), f"aug.crop must be rrc/shift/none, got {self.aug.crop!r}")
        _check(self.data.dataset in ("fashion_mnist", "folder"), f"unknown data.dataset {self.data.dataset!r}")
        _check(self.optim.impl in ("auto", "fused", "foreach", "loop"), f"unknown optim.impl {self.optim.impl!r}")
        unknown_ops = sorted(set(self.aug.randaug_ops) - set(RANDAUG_OPS))
        _check(not unknown_ops, f"unknown aug.randaug_ops {unknown_ops}; choose from {', '.join(RANDAUG_OPS)}")
        _check(
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


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
