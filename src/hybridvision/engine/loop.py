"""The training step, in sections (schedule, data, forward, backward, clip and update, EMA, log), for any task."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map

from .config import RunConfig
from .distributed import Dist, clip_gradients, max_across, sum_across
from .ema import ModelEma
from .logs import RunLogger
from .order import epoch_order, micro_batches
from .schedule import Schedule
from .task import Task


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite: a setting (learning rate, precision) to change, reported as a user error."""


@dataclass
class Context:
    """Everything one training process works with."""

    cfg: RunConfig
    task: Task
    model: nn.Module  # the bare model (EMA, state dicts, evaluation)
    step_model: nn.Module  # what the step runs: the model, wrapped (DDP/FSDP) and/or compiled
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: Schedule
    dist: Dist
    autocast: Any  # () -> context manager
    logger: RunLogger | None = None
    ema: ModelEma | None = None
    step: int = 0  # optimizer steps done
    elapsed_s: float = 0.0  # training time spent (evaluation excluded), carried across resumes
    last_log_step: int = 0
    lr: float = 0.0  # the schedule's lr at the last step (each parameter group trains at lr x its lr_scale)
    save: Callable[[Context, int], None] | None = None  # called every ``ckpt_every`` steps
    stop_signal: Callable[[], int] = lambda: 0  # a SIGINT/SIGTERM to stop on after this step (0: none)
    wall0: float = 0.0  # perf_counter() when this process started the run
    wall_before: float = 0.0  # wall time of the run's earlier processes (from its checkpoint)

    def wall_s(self) -> float:
        """Wall time of the whole run so far, over every process that worked on it."""
        return self.wall_before + time.perf_counter() - self.wall0


def micro_seed(seed: int, step: int, chunk: int) -> int:
    """One seed per micro-batch: its augmentation and stochastic depth do not depend on who runs it or when."""
    return (seed * 1_000_003 + step) * 4099 + chunk


def to_device(batch: Any, device: torch.device) -> Any:
    """Every tensor of a (nested) batch on ``device``."""
    return tree_map(lambda t: t.to(device, non_blocking=True) if isinstance(t, Tensor) else t, batch)


def train_one_epoch(ctx: Context, epoch: int, steps: int, stop_at: int) -> str:
    """Optimizer steps of ``epoch`` from ``ctx.step``; returns why training must stop early ("" when it need not):
    "budget", "max_steps" or "signal"."""
    cfg, job = ctx.cfg, ctx.dist
    accum, chunks = cfg.optim.accum_steps, cfg.optim.accum_steps * job.world
    order = epoch_order(ctx.task.train_size(), cfg.seed, epoch)
    first = ctx.step - epoch * steps
    plan = [micro_batches(order, s, cfg.batch_size, chunks) for s in range(first, steps)]
    mine = [[p[a * job.world + job.rank] for a in range(accum)] for p in plan]  # this process's micro-batches
    batches = ctx.task.batches([mb for step_mbs in mine for mb in step_mbs])
    ctx.model.train()
    loss_sum, seen, t0 = torch.zeros((), device=job.device), 0, time.perf_counter()
    for s in range(first, steps):
        # -- Schedule.
        ctx.lr = ctx.schedule.lr(ctx.step, ctx.elapsed_s + time.perf_counter() - t0)
        for group in ctx.optimizer.param_groups:
            group["lr"] = ctx.lr * group.get("lr_scale", 1.0)  # optim.lr_mult
        for a in range(accum):
            # -- Data: this micro-batch's augmentation and drop-path draws are seeded by its position.
            batch = next(batches)
            seed = micro_seed(cfg.seed, ctx.step, a * job.world + job.rank)
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed + 1)
            batch = to_device(batch, job.device)
            # -- Forward (gradients sync across processes only on the last micro-batch).
            defer = a < accum - 1 and hasattr(ctx.step_model, "no_sync")
            with ctx.step_model.no_sync() if defer else contextlib.nullcontext(), ctx.autocast():
                loss = ctx.task.loss(ctx.step_model, batch, gen) / accum
                # -- Backward.
                ctx.scaler.scale(loss).backward()
            loss_sum += loss.detach()
            seen += ctx.task.batch_samples(batch) * job.world
        # -- Clip and update.
        if cfg.optim.clip_grad > 0:
            ctx.scaler.unscale_(ctx.optimizer)
            clip_gradients(ctx.model, cfg.optim.clip_grad)
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
        ctx.optimizer.zero_grad(set_to_none=True)
        if ctx.ema is not None:
            ctx.ema.update(ctx.model, ctx.step)
        ctx.step += 1
        # -- Log (the only host sync of the step, every ``log_every`` steps).
        if ctx.step % cfg.log_every == 0 or s == steps - 1 or ctx.step >= stop_at:
            now = time.perf_counter()
            ctx.elapsed_s += now - t0
            _log_row(ctx, epoch + (s + 1) / steps, loss_sum, seen, now - t0)
            loss_sum, seen, t0 = torch.zeros((), device=job.device), 0, now
            if _over_budget(ctx):
                return "budget"
        if ctx.step >= stop_at:
            return "max_steps"
        if ctx.stop_signal():
            return "signal"
        # A checkpoint every ``ckpt_every`` steps; the epoch's last step gets its own after the evaluation.
        if cfg.ckpt_every and ctx.step % cfg.ckpt_every == 0 and s < steps - 1 and ctx.save is not None:
            ctx.save(ctx, epoch)
    return ""


def _log_row(ctx: Context, epochs_done: float, loss_sum: Tensor, seen: int, dt: float) -> None:
    n_steps, ctx.last_log_step = ctx.step - ctx.last_log_step, ctx.step
    loss = float(sum_across(loss_sum.clone(), ctx.dist)) / max(n_steps, 1) / ctx.dist.world
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"the loss became {loss} at step {ctx.step}; lower --optim.lr, keep --optim.clip_grad on, or turn --amp off"
        )
    row = {"epoch": math.ceil(epochs_done) - 1, "step": ctx.step, "epochs_done": epochs_done, "loss": loss}
    row["lr"] = ctx.lr
    row["img_s"] = seen / max(dt, 1e-9)
    row["elapsed_s"] = ctx.elapsed_s
    if ctx.logger is not None:
        ctx.logger.train_row(row, n_steps)


def _over_budget(ctx: Context) -> bool:
    budget = ctx.cfg.budget_minutes * 60
    return budget > 0 and max_across(ctx.elapsed_s, ctx.dist) >= budget
