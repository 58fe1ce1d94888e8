"""Evaluating saved weights: a run (its ``final/`` or newest good checkpoint) or a saved model; top-1/top-5/loss.

Reading a run goes through ``engine.rundir``: the model comes from its ``model.json`` (or, for runs from before it
existed, ``final/config.json`` or the saved ``config.yaml``), never from the training task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..engine.distributed import Dist, pick_device, sum_across
from ..engine.order import eval_batches
from ..engine.rundir import RunDir, open_model, run_config
from .config import EvalConfig, TrainConfig
from .data import Split, load_split
from .preprocess import Normalize

TASK = "classification"  # what model.json records of a classification run


def saved_train_config(run: Path) -> TrainConfig | None:
    """The run's own training config (None for a saved model); a run of another task is refused."""
    return run_config(run, TrainConfig, TASK)


def eval_defaults(run: Path) -> EvalConfig:
    """EvalConfig whose data, size and batch come from the run's own config when it has one."""
    saved = saved_train_config(run)
    if saved is None:
        return EvalConfig()
    return EvalConfig(data=saved.data, img_size=saved.img_size, batch_size=saved.eval_batch_size)


def _legacy(cfg: EvalConfig, size: int) -> Callable[[RunDir], dict[str, Any] | None]:
    """The description of an unfinished run from before model.json: what its config.yaml says was built (with the
    evaluation split's class count, as the weights were read then)."""

    def describe(run: RunDir) -> dict[str, Any] | None:
        saved = run.read_config(TrainConfig)
        if saved is None:
            return None
        classes = load_split(cfg.data, cfg.data.eval_split, size, cfg.data.eval_subset).classes
        overrides = {**saved.model_kwargs, "num_classes": len(classes), "in_chans": saved.data.channels}
        return {"model": saved.model, "overrides": overrides | {"img_size": saved.img_size}, "task": TASK}

    return describe


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    batch_size: int,
    job: Dist,
    autocast: Any,
    normalize: Callable[[Tensor], Tensor],
    unreadable: set | None = None,
) -> dict:
    """Top-1 / top-5 accuracy (%) and mean cross-entropy of ``model`` over all of ``split`` (readable files).

    ``normalize`` turns a uint8 batch into the model's input. Unreadable files are left out and added to
    ``unreadable``.
    """
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64)  # correct@1, correct@5, loss sum, count
    for images, labels, skipped in split.batches(eval_batches(len(split), batch_size, job.rank, job.world)):
        if unreadable is not None:
            unreadable.update(skipped)
        if images.shape[0] == 0:
            continue
        x = normalize(images.to(job.device)).contiguous(memory_format=torch.channels_last)
        labels = labels.to(job.device)
        with autocast():
            logits = model(x).float()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (B, 5)
        hit = top == labels[:, None]
        loss = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
        batch = torch.stack([hit[:, 0].sum(), hit.any(1).sum(), loss, torch.tensor(len(labels))])
        totals += batch.double().cpu()
    totals = sum_across(totals, job)
    n = max(float(totals[3]), 1.0)
    return {"top1": 100 * float(totals[0]) / n, "top5": 100 * float(totals[1]) / n, "loss": float(totals[2]) / n}


def evaluate_run(run: str | Path, cfg: EvalConfig) -> dict[str, dict[str, float]]:
    """{"model": {...}, "ema": {...}} top-1/top-5/loss on the evaluation split."""
    run = Path(run)
    device = pick_device(cfg.device)
    size = cfg.img_size or (saved_train_config(run) or TrainConfig()).img_size
    saved = open_model(run, task=TASK, legacy=_legacy(cfg, size))
    if cfg.img_size:
        saved = saved.with_overrides(img_size=cfg.img_size)
    split = load_split(cfg.data, cfg.data.eval_split, size, cfg.data.eval_subset, saved.info.get("classes"))
    normalize = Normalize(cfg.data.mean, cfg.data.std, size)
    kinds = {"model": ["model"], "ema": ["ema"], "both": ["model", "ema"]}[cfg.weights]
    if not saved.has_ema:
        kinds = ["model"]
    out = {}
    for kind in kinds:
        model = saved.load(use_ema=kind == "ema").to(device, memory_format=torch.channels_last)
        out[kind] = evaluate(model, split, cfg.batch_size, Dist(device=device), contextlib.nullcontext, normalize)
    return out
