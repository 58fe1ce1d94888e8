"""What every training run is configured by, whatever the task: ``RunConfig`` with its optimizer and EMA.

A task's config subclasses ``RunConfig`` and adds its own fields (model options, data, augmentation); it may
redeclare a field to change its default (the field keeps its place). Values come from the dataclass defaults, a
YAML file (``--config``) and ``--key value`` flags; the resolved config is saved as ``config.yaml`` in the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..config import ConfigError, at_least, check, one_of, parse_device

SCHEDULES = ("cosine", "poly", "constant", "step")
AMP_MODES = ("auto", "bf16", "fp16", "off")
ADAMW_IMPLS = ("auto", "fused", "foreach", "loop")

# What ``--resume`` may change: how a run is carried out and reported, not what it trains. Any other difference
# between the saved config.yaml and the resumed one is an error that names the keys (tasks may add to this).
RESUMABLE = frozenset(
    ("resume", "out_dir", "run_name", "device", "threads", "distributed", "compile", "keep_freed_memory")
    + ("progress", "tensorboard", "log_every", "eval_every", "ckpt_every", "keep_ckpts", "max_steps", "eval_batch_size")
)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a warm-up then cosine, polynomial or step decay; no weight decay on norms, biases, position
    tables."""

    lr: float = 2e-3  # peak learning rate at ``batch_size`` (not rescaled)
    min_lr: float = 1e-5
    warmup_lr: float = 1e-5
    warmup_epochs: float = 0.5
    warmup_steps: int = 0  # > 0: warm up over this many optimizer steps instead of ``warmup_epochs``
    schedule: str = "cosine"  # decay after warm-up: "cosine", "poly" (mmseg's PolyLR), "constant" or "step"
    poly_power: float = 1.0  # exponent of the "poly" decay
    step_epochs: tuple[float, ...] = ()  # "step": epochs at which lr is multiplied by step_gamma (mmdet 1x: 8, 11)
    step_gamma: float = 0.1  # "step": the factor at each of step_epochs
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad: float = 1.0  # max global gradient norm (0 = off)
    accum_steps: int = 1  # micro-batches per optimizer step (the batch is split, not multiplied)
    impl: str = "auto"  # AdamW kernel: "auto" (fused where supported), "fused", "foreach", "loop"
    # Parameter-name prefix -> learning-rate multiplier (mmseg's paramwise custom_keys), the longest prefix wins:
    # {backbone: 0.1} trains a pretrained backbone at a tenth of the head's lr. Every prefix must name parameters.
    lr_mult: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.lr_mult.items() if not isinstance(v, (int, float)) or v < 0}
        check(not bad, f"optim.lr_mult values are multipliers >= 0 (0 freezes), got {bad}")


@dataclass(frozen=True)
class EmaConfig:
    decay: float = 0.999  # per optimizer step; 0 turns EMA off
    warmup: bool = True  # decay ramps up as (1 + step) / (10 + step) early on (timm's ModelEmaV3)
    every: int = 1  # update every N optimizer steps


@dataclass(frozen=True)
class RunConfig:
    """One training run: length, batch, precision, devices, checkpoints, logs. Tasks add their own fields."""

    model: str = ""  # the registered model the task trains (names the run directory)
    selected_on: str = ""  # where this recipe's settings were chosen: "val", "paper", "test" (older recipes), "none"
    epochs: int = 12
    budget_minutes: float = 30.0  # > 0: end cleanly when this much training time is spent; lr follows the budget
    batch_size: int = 128  # samples per optimizer step, over all processes and micro-batches
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
    keep_freed_memory: bool = True  # glibc reuses freed activations instead of unmapping them (CPU: faster)
    log_every: int = 20  # optimizer steps between progress/CSV rows
    eval_every: int = 2  # epochs between evaluations (the last epoch is always evaluated)
    ckpt_every: int = 0  # optimizer steps between checkpoints (0 = every epoch)
    keep_ckpts: int = 2  # checkpoints kept; the newest complete one is used on resume
    max_steps: int = 0  # stop after this many optimizer steps (0 = all epochs); the schedule still spans epochs
    progress: bool = True  # live progress bar (off when not a terminal)
    tensorboard: bool = True  # also log to TensorBoard when it is installed
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)

    RESUMABLE: ClassVar[frozenset[str]] = RESUMABLE  # what ``--resume`` may change (tasks add their own)

    def __post_init__(self) -> None:
        at_least(self, 1, "batch_size", "eval_batch_size", "epochs", "log_every", "eval_every", "keep_ckpts")
        at_least(self, 0, "budget_minutes", "ckpt_every", "max_steps", "threads", "seed")
        one_of("amp", self.amp, AMP_MODES)
        one_of("distributed", self.distributed, ("ddp", "fsdp"))
        parse_device(self.device)
        check_optim(self.optim)
        check_ema(self.ema)
        check_run_name(self.out_dir, self.run_name)


def check_run_name(out_dir: str | Path, name: str) -> None:
    """A ConfigError when ``--run_name`` would leave ``out_dir`` (absolute, or through ".."): at config time, so
    ``--dry-run`` refuses what the run would."""
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ConfigError(
            f"--run_name {name!r} would put the run outside --out_dir {out_dir}; give a plain name such as "
            "'baseline' (set --out_dir to choose the folder it goes in)"
        )


def check_optim(optim: OptimConfig) -> None:
    check(optim.lr > 0, f"optim.lr must be > 0, got {optim.lr}")
    for name in ("min_lr", "warmup_lr", "warmup_epochs", "warmup_steps", "weight_decay", "clip_grad", "eps"):
        check(getattr(optim, name) >= 0, f"optim.{name} must be >= 0, got {getattr(optim, name)}")
    check(optim.accum_steps >= 1, f"optim.accum_steps must be >= 1, got {optim.accum_steps}")
    check(optim.poly_power > 0, f"optim.poly_power must be > 0, got {optim.poly_power}")
    check(0 < optim.step_gamma <= 1, f"optim.step_gamma must be in (0, 1], got {optim.step_gamma}")
    check(
        all(a < b for a, b in zip((0, *optim.step_epochs), optim.step_epochs)),
        f"optim.step_epochs must rise strictly above 0, got {optim.step_epochs}",
    )
    check(
        len(optim.betas) == 2 and all(0 <= b < 1 for b in optim.betas),
        f"optim.betas must be two values in [0, 1), got {optim.betas}",
    )
    one_of("optim.impl", optim.impl, ADAMW_IMPLS)
    one_of("optim.schedule", optim.schedule, SCHEDULES)


def check_ema(ema: EmaConfig) -> None:
    check(0 <= ema.decay < 1, f"ema.decay must be in [0, 1) (0 turns EMA off), got {ema.decay}")
    check(ema.every >= 1, f"ema.every must be >= 1, got {ema.every}")
