"""The training machinery of one run: set-up, resume, epochs, evaluation, checkpoints, final weights, summary.

``engine.run`` calls ``run_task``; the run's files are named by ``rundir.RunDir``. This module (and the loop,
optimizer, EMA and schedule it brings) loads only when a run trains, never when one is read.
"""

from __future__ import annotations

import logging
import math
import time

import torch
import torch.distributed as torch_dist
from torch import nn

from ..env import environment
from . import distributed as dist
from .checkpoint import TrainState, restore_rng, save_checkpoint, save_final
from .ema import ModelEma
from .logs import RunLogger
from .loop import Context, train_one_epoch
from .optim import build_optimizer
from .order import steps_per_epoch
from .precision import autocast_for, precision_name, resolve_amp
from .resume import check_model, check_reuse, check_same_run, named_run, resume_point
from .rundir import RunDir, RunResult
from .schedule import Schedule
from .signals import Interrupted, stop_on_signals
from .task import Runtime, Task

log = logging.getLogger(__name__)


# ---- Run directory


def run_dir_for(task: Task, job: dist.Dist) -> RunDir:
    """``out_dir/run_name``, or the next free ``out_dir/NNN-name`` (chosen on rank 0, shared with the rest)."""
    cfg = task.cfg
    if (named := named_run(cfg)) is not None:
        return named
    root = RunDir(cfg.out_dir).path
    name = [None]
    if job.is_main:
        taken = [int(p.name.split("-", 1)[0]) for p in root.glob("[0-9][0-9][0-9]-*") if p.is_dir()]
        name[0] = f"{max(taken, default=-1) + 1:03d}-{task.name}"
    if job.active:
        torch_dist.broadcast_object_list(name, src=0)
    return RunDir(root / name[0])


# ---- Building the pieces


def place_model(model: nn.Module, job: dist.Dist, channels_last: bool) -> nn.Module:
    """On the device; weights channels_last when asked (FSDP2 shards only contiguous ones)."""
    model = model.to(job.device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def make_context(task: Task, job: dist.Dist, resume: TrainState | None, run: RunDir | None = None) -> Context:
    cfg = task.cfg
    amp = resolve_amp(cfg.amp, job.device)
    task.setup(Runtime(job, autocast_for(amp, job.device), run.path if run is not None else None))
    sharded = job.active and cfg.distributed == "fsdp"
    if sharded and cfg.ema.decay > 0:
        raise ValueError("EMA keeps a full copy of the weights, which FSDP avoids; add --ema.decay 0 with fsdp")
    model = place_model(task.build_model(), job, cfg.channels_last and not sharded)
    if resume is not None and run is not None:
        check_model(cfg, run, task.description(model))  # before its weights meet the checkpoint's
    ema = ModelEma(model, cfg.ema) if cfg.ema.decay > 0 else None
    step_model = dist.wrap(model, job, cfg.distributed)  # FSDP shards ``model`` in place: build the optimizer after
    steps = steps_per_epoch(task.train_size(), cfg.batch_size)
    ctx = Context(
        cfg=cfg,
        task=task,
        model=model,
        step_model=step_model,
        optimizer=build_optimizer(model, cfg.optim, job.device),
        scaler=torch.amp.GradScaler(job.device.type, enabled=amp == torch.float16),
        schedule=Schedule(cfg.optim, steps * cfg.epochs, steps, cfg.budget_minutes * 60),
        dist=job,
        autocast=task.rt.autocast,
        ema=ema,
    )
    if resume is not None:
        _restore(ctx, resume)
    if cfg.compile:
        ctx.step_model = torch.compile(ctx.step_model, fullgraph=not job.active)
    return ctx


def _restore(ctx: Context, ts: TrainState) -> None:
    dist.load_states(ctx.step_model if ctx.dist.active else ctx.model, ctx.optimizer, ts.model, ts.optimizer)
    if ctx.ema is not None and ts.ema is not None:
        ctx.ema.load_state_dict(ts.ema, ts.state["ema_updates"])
    if ts.state.get("scaler"):
        ctx.scaler.load_state_dict(ts.state["scaler"])
    ctx.step, ctx.elapsed_s = ts.state["step"], ts.state["elapsed_s"]
    ctx.last_log_step, ctx.wall_before = ts.state["step"], ts.state.get("wall_s", 0.0)
    ctx.task.unreadable |= set(ts.state.get("unreadable", []))
    restore_rng(*ts.rng)


# ---- Saving and evaluating


def save_state(ctx: Context, epoch: int, run: RunDir) -> None:
    """A checkpoint of the whole training state (collective: every process takes part, rank 0 writes)."""
    dist.sync_buffers(ctx.model, ctx.dist)
    weights = dist.model_state(ctx.step_model if ctx.dist.active else ctx.model)
    opt = dist.optimizer_state(ctx.step_model if ctx.dist.active else ctx.model, ctx.optimizer)
    unreadable = sorted(dist.union_across(ctx.task.unreadable, ctx.dist))
    if ctx.dist.is_main:
        state = {"step": ctx.step, "epoch": epoch, "elapsed_s": ctx.elapsed_s, "wall_s": ctx.wall_s()}
        state.update(ema_updates=ctx.ema.updates if ctx.ema else 0, scaler=ctx.scaler.state_dict())
        state["unreadable"] = unreadable
        ema = ctx.ema.state_dict() if ctx.ema is not None else None
        save_checkpoint(run.path, ctx.step, TrainState(weights, opt, state, ema), keep=ctx.cfg.keep_ckpts)
    dist.barrier(ctx.dist)


def evaluate_all(ctx: Context, epoch: int, steps: int, log_row: bool = True) -> dict[str, float]:
    """The task's metrics of the model and (prefixed ``ema_``) of its EMA, logged as one row."""
    dist.sync_buffers(ctx.model, ctx.dist)
    row: dict[str, float] = {"epoch": epoch, "step": ctx.step, "epochs_done": ctx.step / steps}
    row.update(ctx.task.evaluate(ctx.model))
    if ctx.ema is not None:
        row.update({f"ema_{k}": v for k, v in ctx.task.evaluate(ctx.ema.module).items()})
    if ctx.logger is not None and log_row:
        ctx.logger.eval_row(row, ctx.task.metric)
    return row


# ---- The run


def run_task(task: Task) -> RunResult:
    """Train (or resume) one run of ``task``; returns its directory and summary.

    Raises ``Interrupted`` (after writing a checkpoint) when SIGINT or SIGTERM stops it.
    """
    cfg = task.cfg
    job = dist.setup(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.keep_freed_memory and job.device.type == "cpu":
        dist.keep_freed_memory()
    wall0 = time.perf_counter()
    try:
        run = run_dir_for(task, job)
        check_reuse(cfg, run, warn=job.is_main)
        check_same_run(cfg, run)
        resume = resume_point(cfg, run)
        if resume is None:
            torch.manual_seed(cfg.seed)  # the model's initial weights
        ctx = make_context(task, job, resume, run)
        ctx.wall0 = wall0
        if job.is_main:
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_config(cfg)
            run.write_model(task.description(ctx.model))  # before the first step: readers need no task code
            start = resume.state["step"] if resume else None
            ctx.logger = RunLogger(run, resume_step=start, progress=cfg.progress, tensorboard=cfg.tensorboard)
        ctx.save = lambda c, e: save_state(c, e, run)
        with stop_on_signals() as stop:
            ctx.stop_signal = lambda: int(dist.max_across(stop.signum, job)) if job.active else stop.signum
            return _epochs(ctx, run)
    finally:
        dist.cleanup(job)


def _epochs(ctx: Context, run: RunDir) -> RunResult:
    cfg = ctx.cfg
    steps = steps_per_epoch(ctx.task.train_size(), cfg.batch_size)
    stop_at = min(cfg.max_steps or math.inf, steps * cfg.epochs)
    row: dict[str, float] = {}
    epoch = ctx.step // steps
    while epoch < cfg.epochs and ctx.step < stop_at:
        if ctx.logger is not None:
            ctx.logger.start_epoch(epoch, cfg.epochs, steps, ctx.step - epoch * steps)
        stopped = train_one_epoch(ctx, epoch, steps, stop_at)
        done_epoch = epoch + 1 if ctx.step % steps == 0 else epoch
        if stopped == "signal":
            save_state(ctx, done_epoch, run)
            _close(ctx)
            raise Interrupted(ctx.stop_signal(), run.path, ctx.step)
        if stopped or epoch == cfg.epochs - 1 or ctx.step >= stop_at or (epoch + 1) % cfg.eval_every == 0:
            row = evaluate_all(ctx, epoch, steps)  # logged before the checkpoint: a kill between them redoes both
        save_state(ctx, done_epoch, run)
        epoch += 1
        if stopped:
            break
    _close(ctx)
    if row:
        return _finish(ctx, row, run, steps)
    return _resumed_finished(ctx, run, steps)


def _close(ctx: Context) -> None:
    if ctx.logger is not None:
        ctx.logger.close()


def _resumed_finished(ctx: Context, run: RunDir, steps: int) -> RunResult:
    """A run resumed after its last step: its summary as it is, or (if the kill came first) final weights + summary."""
    if run.is_finished():
        return RunResult(run.path, run.read_summary(), ctx.dist.is_main)
    row = evaluate_all(ctx, ctx.step // steps - 1, steps, log_row=False)  # its row is in eval_log.csv already
    return _finish(ctx, row, run, steps)


def _finish(ctx: Context, row: dict[str, float], run: RunDir, steps: int) -> RunResult:
    cfg = ctx.cfg
    unreadable = dist.union_across(ctx.task.unreadable, ctx.dist)
    summary = {
        "model": cfg.model,
        "params": sum(p.numel() for p in ctx.model.parameters()),
        "steps": ctx.step,
        "epochs": round(ctx.step / steps, 3),
        "train_s": round(ctx.elapsed_s, 1),
        "wall_s": round(ctx.wall_s(), 1),
        "train_img_s": round(ctx.step * cfg.batch_size / max(ctx.elapsed_s, 1e-9), 1),
        "precision": precision_name(resolve_amp(cfg.amp, ctx.dist.device)),  # what "auto" chose on this host
        "skipped_images": len(unreadable),
        "metric": ctx.task.metric,
        **{k: round(v, 4) for k, v in row.items() if k not in ("epoch", "step", "epochs_done")},
        **ctx.task.run_info(),
        "environment": environment(str(ctx.dist.device)),
    }
    weights = dist.model_state(ctx.step_model if ctx.dist.active else ctx.model)  # collective under FSDP
    if ctx.dist.is_main:
        ema = ctx.ema.state_dict() if ctx.ema else None
        save_final(run.final, ctx.task.description(ctx.model), weights, ema)
        run.write_summary(summary)
    if unreadable:
        log.warning("%d unreadable files were skipped: %s", len(unreadable), ", ".join(sorted(unreadable)[:5]))
    return RunResult(run.path, summary, ctx.dist.is_main)
