"""What every training run is configured by, whatever the task: ``RunConfig`` with its optimizer and EMA.

A task's config subclasses ``RunConfig`` and adds its own fields (model options, data, augmentation); it may
redeclare a field to change its default (the field keeps its place). Values come from the dataclass defaults, a
YAML file (``--config``) and ``--key value`` flags; the resolved config is saved as ``config.yaml`` in the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEDULES = ("cosine", "poly", "constant")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a warm-up then cosine or polynomial decay; no weight decay on norms, biases, position tables."""

    lr: float = 2e-3  # peak learning rate at ``batch_size`` (not rescaled)
    min_lr: float = 1e-5
    warmup_lr: float = 1e-5
    warmup_epochs: float = 0.5
    warmup_steps: int = 0  # > 0: warm up over this many optimizer steps instead of ``warmup_epochs``
    schedule: str = "cosine"  # decay after warm-up: "cosine", "poly" (mmseg's PolyLR) or "constant"
    poly_power: float = 1.0  # exponent of the "poly" decay
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
class RunConfig:
    """One training run: length, batch, precision, devices, checkpoints, logs. Tasks add their own fields."""

    model: str = ""  # the registered model the task trains (names the run directory)
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
    keep_freed_memory: bool = True  # glibc reuses freed activations instead of unmapping them (CPU: ~1.5x img/s)
    log_every: int = 20  # optimizer steps between progress/CSV rows
    eval_every: int = 2  # epochs between evaluations (the last epoch is always evaluated)
    ckpt_every: int = 0  # optimizer steps between checkpoints (0 = every epoch)
    keep_ckpts: int = 2  # checkpoints kept; the newest complete one is used on resume
    max_steps: int = 0  # stop after this many optimizer steps (0 = all epochs); the schedule still spans epochs
    progress: bool = True  # live progress bar (off when not a terminal)
    tensorboard: bool = True  # also log to TensorBoard when it is installed
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        check(self.optim.accum_steps >= 1, f"optim.accum_steps must be >= 1, got {self.optim.accum_steps}")
        check(self.amp in ("auto", "bf16", "fp16", "off"), f"amp must be auto/bf16/fp16/off, got {self.amp!r}")
        check(self.distributed in ("ddp", "fsdp"), f"distributed must be ddp or fsdp, got {self.distributed!r}")
        check(self.optim.impl in ("auto", "fused", "foreach", "loop"), f"unknown optim.impl {self.optim.impl!r}")
        check(
            self.optim.schedule in SCHEDULES, f"optim.schedule must be one of {SCHEDULES}, not {self.optim.schedule!r}"
        )


def check(ok: bool, message: str) -> None:
    """Raise ValueError(message) unless ``ok``: config validation that names the field and the fix."""
    if not ok:
        raise ValueError(message)
