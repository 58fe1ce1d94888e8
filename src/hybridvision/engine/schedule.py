"""Learning-rate schedule: linear warm-up, then cosine, polynomial, constant or step decay, as a pure function of
progress.

Being a function (not a stateful scheduler) makes resuming trivial: the step (or the spent share of a time
budget) is all the state there is.
"""

from __future__ import annotations

import math

from .config import OptimConfig


def lr_at(progress: float, warmup: float, cfg: OptimConfig, steps_at: tuple[float, ...] = ()) -> float:
    """Learning rate at ``progress`` in [0, 1] of training, with the first ``warmup`` share warming up; the "step"
    schedule multiplies lr by ``cfg.step_gamma`` at each share of training in ``steps_at`` (mmdet's step policy)."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * progress / warmup
    t = (progress - warmup) / max(1.0 - warmup, 1e-12)
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        return cfg.lr * cfg.step_gamma ** sum(progress >= s for s in steps_at)
    if cfg.schedule == "poly":  # mmseg's PolyLR with eta_min: (lr - min) * (1 - t)^power + min
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * (1.0 - t) ** cfg.poly_power
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * t))


class Schedule:
    """Warm-up + decay over ``total_steps`` optimizer steps, or over a time budget when one is set."""

    def __init__(self, cfg: OptimConfig, total_steps: int, steps_per_epoch: int, budget_s: float = 0.0) -> None:
        self.cfg, self.total_steps, self.budget_s = cfg, total_steps, budget_s
        warmup_steps = cfg.warmup_steps or cfg.warmup_epochs * steps_per_epoch
        self.warmup = min(warmup_steps / total_steps, 0.5) if total_steps else 0.0
        self.steps_at = tuple(e * steps_per_epoch / total_steps for e in cfg.step_epochs) if total_steps else ()

    def progress(self, step: int, elapsed_s: float = 0.0) -> float:
        """The share of training done: steps, or the spent budget when that is larger."""
        done = step / self.total_steps
        if self.budget_s > 0:
            done = max(done, elapsed_s / self.budget_s)
        return done

    def lr(self, step: int, elapsed_s: float = 0.0) -> float:
        return lr_at(self.progress(step, elapsed_s), self.warmup, self.cfg, self.steps_at)
