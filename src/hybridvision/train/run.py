"""One training run end to end: set-up, resume, epochs, evaluation, checkpoints, final weights and summary.

Run directory layout::

    RUN/config.yaml          the resolved TrainConfig
    RUN/train_log.csv        loss, lr, img/s every ``log_every`` steps
    RUN/eval_log.csv         top-1/top-5 of the model and its EMA after evaluated epochs
    RUN/checkpoints/step_*/  full training state (``--resume``)
    RUN/final/               model.safetensors, model_ema.safetensors, config.json (``load_model``, ``--init-from``)
    RUN/summary.json         wall time, epochs, img/s, accuracies, environment
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn

from ..bench.env import environment
from ..checkpoint import CheckpointError, atomic_write, save_json
from ..config import dump_yaml
from ..registry import create_model, get_entry, model_config_dict
from . import distributed as dist
from .augment import Augment
from .checkpoint import TrainState, latest_good, load_checkpoint, restore_rng, save_checkpoint, save_final
from .config import TrainConfig
from .data import load_split, steps_per_epoch
from .ema import ModelEma
from .loop import Context, evaluate, train_one_epoch
from .metrics import RunLogger
from .optim import build_optimizer
from .schedule import Schedule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    is_main: bool = True  # False on the other processes of a torchrun job


# ---- Run directory


def run_dir_for(cfg: TrainConfig, d: dist.Dist) -> Path:
    """``out_dir/run_name``, or the next free ``out_dir/NNN-model`` (chosen on rank 0, shared with the rest)."""
    if cfg.resume and cfg.resume != "auto":
        return Path(cfg.resume)
    root = Path(cfg.out_dir)
    if cfg.run_name:
        return root / cfg.run_name
    name = [None]
    if d.is_main:
        taken = [int(p.name.split("-", 1)[0]) for p in root.glob("[0-9][0-9][0-9]-*") if p.is_dir()]
        name[0] = f"{max(taken, default=-1) + 1:03d}-{cfg.model}"
    if d.active:
        torch_dist.broadcast_object_list(name, src=0)
    return root / name[0]


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """bf16/fp16 autocast dtype, or None. "auto": bf16 where the hardware runs it fast, else fp32.

    CUDA: when the GPU supports bf16. CPU: with AMX tiles (Xeon Sapphire Rapids and later), where a bf16
    training step measured 1.45x the fp32 one (ascan_nano, batch 128); without AMX, bf16 matmuls are emulated
    and up to ~100x slower than fp32, so fp32 stays.
    """
    if amp == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        return torch.bfloat16 if device.type == "cpu" and amx() else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]


def init_source(path: str) -> Path:
    """Weights to start from: a run's ``final/``, else its newest good checkpoint, else the path itself."""
    p = Path(path)
    if (p / "final").is_dir():
        return p / "final"
    good = latest_good(p)
    if good is not None:
        return good
    if not p.exists():
        raise CheckpointError(f"--init-from {path}: no such run directory or weights file")
    return p


# ---- Building the pieces


def build_model(
    cfg: TrainConfig, num_classes: int, device: torch.device, params_channels_last: bool = True
) -> nn.Module:
    kwargs = dict(cfg.model_kwargs)
    kwargs.update(num_classes=num_classes, in_chans=cfg.data.channels, img_size=cfg.img_size)
    model = create_model(cfg.model, drop_path_rate=cfg.drop_path_rate, **kwargs)
    if cfg.init_from:
        from ..checkpoint import load_pretrained

        source = init_source(cfg.init_from)
        load_pretrained(model, source, use_ema=cfg.init_ema)
        log.info("initialised %s from %s", cfg.model, source)
    model = model.to(device)
    if not cfg.channels_last:
        model.memory_format = torch.contiguous_format  # the layout the trunk's activations run in
    # Weights channels_last too (FSDP2 shards only contiguous ones); activations follow model.memory_format.
    return model.to(memory_format=torch.channels_last) if params_channels_last else model


def make_context(cfg: TrainConfig, d: dist.Dist, run_dir: Path, resume: TrainState | None) -> tuple[Context, Any]:
    get_entry(cfg.model)  # an unknown name fails before the data is read
    train = load_split(cfg.data, cfg.data.train_split, cfg.img_size, cfg.data.train_subset)
    evals = load_split(cfg.data, cfg.data.eval_split, cfg.img_size, cfg.data.eval_subset)
    sharded = d.active and cfg.distributed == "fsdp"
    if sharded and cfg.ema.decay > 0:
        raise ValueError("EMA keeps a full copy of the weights, which FSDP avoids; add --ema.decay 0 with fsdp")
    model = build_model(cfg, train.num_classes, d.device, params_channels_last=cfg.channels_last and not sharded)
    ema = ModelEma(model, cfg.ema) if cfg.ema.decay > 0 else None
    step_model = dist.wrap(model, d, cfg.distributed)  # FSDP shards ``model`` in place: build the optimizer after
    amp = resolve_amp(cfg.amp, d.device)
    steps = steps_per_epoch(len(train), cfg.batch_size)
    ctx = Context(
        cfg=cfg,
        model=model,
        step_model=step_model,
        optimizer=build_optimizer(model, cfg.optim, d.device),
        scaler=torch.amp.GradScaler(d.device.type, enabled=amp == torch.float16),
        schedule=Schedule(cfg.optim, steps * cfg.epochs, steps, cfg.budget_minutes * 60),
        augment=Augment(cfg.aug, cfg.data.mean, cfg.data.std, train.num_classes, cfg.img_size),
        train=train,
        dist=d,
        logger=None,
        autocast=(lambda: torch.autocast(d.device.type, dtype=amp)) if amp else contextlib.nullcontext,
        ema=ema,
    )
    if resume is not None:
        _restore(ctx, resume)
    if cfg.compile:
        ctx.step_model = torch.compile(ctx.step_model, fullgraph=not d.active)
    return ctx, evals


def _restore(ctx: Context, ts: TrainState) -> None:
    dist.load_states(ctx.step_model if ctx.dist.active else ctx.model, ctx.optimizer, ts.model, ts.optimizer)
    if ctx.ema is not None and ts.ema is not None:
        ctx.ema.load_state_dict(ts.ema, ts.state["ema_updates"])
    if ts.state.get("scaler"):
        ctx.scaler.load_state_dict(ts.state["scaler"])
    ctx.step, ctx.elapsed_s = ts.state["step"], ts.state["elapsed_s"]
    ctx.skipped, ctx.last_log_step = ts.state.get("skipped", 0), ts.state["step"]
    restore_rng(*ts.rng)


# ---- Saving


def save_state(ctx: Context, epoch: int, run_dir: Path) -> None:
    """A checkpoint of the whole training state (collective: every process takes part, rank 0 writes)."""
    dist.sync_buffers(ctx.model, ctx.dist)
    weights = dist.model_state(ctx.step_model if ctx.dist.active else ctx.model)
    opt = dist.optimizer_state(ctx.step_model if ctx.dist.active else ctx.model, ctx.optimizer)
    if ctx.dist.is_main:
        state = {"step": ctx.step, "epoch": epoch, "elapsed_s": ctx.elapsed_s, "skipped": ctx.skipped}
        state.update(ema_updates=ctx.ema.updates if ctx.ema else 0, scaler=ctx.scaler.state_dict())
        ema = ctx.ema.state_dict() if ctx.ema is not None else None
        save_checkpoint(run_dir, ctx.step, TrainState(weights, opt, state, ema), keep=ctx.cfg.keep_ckpts)
    dist.barrier(ctx.dist)


def evaluate_all(ctx: Context, evals: Any, epoch: int, steps: int) -> dict[str, float]:
    dist.sync_buffers(ctx.model, ctx.dist)
    b, d = ctx.cfg.eval_batch_size, ctx.dist
    row: dict[str, float] = {"epoch": epoch, "step": ctx.step, "epochs_done": ctx.step / steps}
    row.update(evaluate(ctx.model, evals, b, d, ctx.autocast, ctx.augment))
    if ctx.ema is not None:
        ema = evaluate(ctx.ema.module, evals, b, d, ctx.autocast, ctx.augment)
        row.update({f"ema_{k}": v for k, v in ema.items()})
    if ctx.logger is not None:
        ctx.logger.eval_row(row)
    return row


# ---- The run


def train(cfg: TrainConfig) -> RunResult:
    """Train (or resume) one run; returns its directory and summary."""
    d = dist.setup(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.keep_freed_memory and d.device.type == "cpu":
        dist.keep_freed_memory()
    wall0 = time.perf_counter()
    try:
        run_dir = run_dir_for(cfg, d)
        ckpt = latest_good(run_dir) if cfg.resume else None
        if cfg.resume and cfg.resume != "auto" and ckpt is None:
            raise CheckpointError(f"--resume {cfg.resume}: no usable checkpoint in {run_dir}/checkpoints")
        resume = load_checkpoint(ckpt) if ckpt is not None else None
        if resume is None:
            torch.manual_seed(cfg.seed)  # the model's initial weights
        ctx, evals = make_context(cfg, d, run_dir, resume)
        if d.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            text = dump_yaml(cfg)
            atomic_write(run_dir / "config.yaml", lambda tmp: Path(tmp).write_text(text))
            start = resume.state["step"] if resume else None
            ctx.logger = RunLogger(run_dir, resume_step=start, progress=cfg.progress, tensorboard=cfg.tensorboard)
        ctx.save = lambda c, e: save_state(c, e, run_dir)
        return _epochs(ctx, evals, run_dir, wall0)
    finally:
        dist.cleanup(d)


def _epochs(ctx: Context, evals: Any, run_dir: Path, wall0: float) -> RunResult:
    cfg = ctx.cfg
    steps = steps_per_epoch(len(ctx.train), cfg.batch_size)
    stop_at = min(cfg.max_steps or math.inf, steps * cfg.epochs)
    row: dict[str, float] = {}
    epoch = ctx.step // steps
    while epoch < cfg.epochs and ctx.step < stop_at:
        if ctx.logger is not None:
            ctx.logger.start_epoch(epoch, cfg.epochs, steps, ctx.step - epoch * steps)
        stopped = train_one_epoch(ctx, epoch, steps, stop_at)
        finished = stopped or epoch == cfg.epochs - 1 or ctx.step >= stop_at
        if finished or (epoch + 1) % cfg.eval_every == 0:
            row = evaluate_all(ctx, evals, epoch, steps)
        save_state(ctx, epoch + 1 if ctx.step % steps == 0 else epoch, run_dir)
        epoch += 1
        if stopped:
            break
    if not row:  # resumed after the last step: nothing was trained, report the final weights anyway
        row = evaluate_all(ctx, evals, epoch - 1, steps)
    if ctx.logger is not None:
        ctx.logger.close()
    return _finish(ctx, row, run_dir, wall0, steps)


def _finish(ctx: Context, row: dict[str, float], run_dir: Path, wall0: float, steps: int) -> RunResult:
    cfg = ctx.cfg
    summary = {
        "model": cfg.model,
        "params": sum(p.numel() for p in ctx.model.parameters()),
        "steps": ctx.step,
        "epochs": round(ctx.step / steps, 3),
        "train_s": round(ctx.elapsed_s, 1),
        "wall_s": round(time.perf_counter() - wall0, 1),
        "train_img_s": round(ctx.step * cfg.batch_size / max(ctx.elapsed_s, 1e-9), 1),
        "skipped_images": ctx.skipped,
        **{k: round(v, 4) for k, v in row.items() if k not in ("epoch", "step", "epochs_done")},
        "environment": environment(str(ctx.dist.device)),
    }
    weights = dist.model_state(ctx.step_model if ctx.dist.active else ctx.model)  # collective under FSDP
    if ctx.dist.is_main:
        ema = ctx.ema.state_dict() if ctx.ema else None
        save_final(run_dir / "final", model_config_dict(ctx.model), weights, ema)
        save_json(summary, run_dir / "summary.json")
    if ctx.skipped:
        log.warning("%d unreadable images were skipped (see the warnings above for their names)", ctx.skipped)
    return RunResult(run_dir, summary, ctx.dist.is_main)
