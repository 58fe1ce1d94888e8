"""Evaluating saved segmentation weights: a run (its ``final/`` or newest good checkpoint) or a ``final/``-style
folder; mIoU, per-class IoU, pixel and mean accuracy, for the raw weights and the EMA.

Reading a run goes through ``engine.rundir``: the model comes from its ``model.json`` (or, for runs from before it
existed, ``final/config.json`` or the saved ``config.yaml``), never from the training task.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import from_dict, to_dict
from ..engine.distributed import Dist, pick_device, sum_across
from ..engine.order import eval_batches
from ..engine.rundir import RunDir, SavedModel, open_model, run_config
from .config import InferConfig, SegEvalConfig, SegTrainConfig, ink_threshold, segmentation_model, segmentor_name
from .data import FolderSplit, SceneSplit, dataset_classes, load_split
from .infer import SegInput, labels, predict
from .metrics import confusion_matrix, iou_per_class, scores
from .model import SegModel, SegModelConfig, load_weights

TASK = "segmentation"  # what model.json records of a segmentation run

Split = SceneSplit | FolderSplit


def saved_train_config(run: Path) -> SegTrainConfig | None:
    """The run's own training config (None for a saved folder); a run of another task is refused."""
    return run_config(run, SegTrainConfig, TASK)


def eval_defaults(run: Path) -> SegEvalConfig:
    """SegEvalConfig whose data, inference and batch come from the run's own config when it has one."""
    saved = saved_train_config(run)
    if saved is None:
        return SegEvalConfig()
    return SegEvalConfig(data=saved.data, infer=saved.infer, batch_size=saved.eval_batch_size)


def _legacy(run: RunDir) -> dict[str, Any] | None:
    """The description of an unfinished run from before model.json: what its config.yaml says was built."""
    saved = run.read_config(SegTrainConfig)
    if saved is None:
        return None
    config = segmentation_model(saved, len(dataset_classes(saved.data)))
    return {"model": segmentor_name(saved.model), "overrides": to_dict(config), "task": TASK}


def _build(info: dict[str, Any], folder: Path, use_ema: bool) -> SegModel:
    """A SegModel from its full config (no registry needed), with its weights."""
    model = SegModel(from_dict(SegModelConfig, info["overrides"]))
    load_weights(model, folder, use_ema=use_ema)
    return model


def open_run(run: str | Path) -> SavedModel:
    """The weights and description of a segmentation run or saved folder (another task's is refused)."""
    return open_model(run, task=TASK, legacy=_legacy)


def saved_model(run: Path, *, use_ema: bool = True) -> tuple[SegModel, dict[str, Any]]:
    """The model of a run or saved folder, with its weights (EMA when asked and present), and its description."""
    saved = open_run(run)
    return saved.load(use_ema=use_ema, build=_build), saved.info


@torch.no_grad()
def confusion(
    model: nn.Module,
    split: Split,
    batch_size: int,
    job: Dist,
    autocast: Callable[[], Any],
    seg_input: SegInput,
    infer: InferConfig,
    unreadable: set | None = None,
    ink: float | None = None,
) -> Tensor:
    """The confusion matrix of ``model`` over all of ``split`` (this process's share, summed over processes).

    ``ink``: the scenes' ink threshold, which ``infer.region_vote`` needs (``config.ink_threshold``)."""
    model.eval()
    k = len(split.classes)
    conf = torch.zeros(k, k, dtype=torch.int64)
    for images, masks, sizes, skipped in split.batches(eval_batches(len(split), batch_size, job.rank, job.world)):
        if unreadable is not None:
            unreadable.update(skipped)
        for x, mask in _same_size_groups(images, masks, sizes):
            with autocast():
                probs = predict(model, seg_input.normalize(x.to(job.device)), infer, k, seg_input.crop)
            conf += confusion_matrix(labels(probs, x, infer, ink), mask.to(job.device), k)
    return sum_across(conf, job)


def _same_size_groups(images: Tensor, masks: Tensor, sizes: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """The whole batch when every image fills it (scenes), else each image cut to its own size."""
    if images.shape[0] == 0:
        return
    h, w = images.shape[-2:]
    if bool((sizes == torch.tensor([h, w])).all()):
        yield images, masks
        return
    for img, mask, (sh, sw) in zip(images, masks, sizes.tolist()):
        yield img[None, :, :sh, :sw], mask[None, :sh, :sw]  # (C, H, W) -> (1, C, h, w)


def evaluate_run(run: str | Path, cfg: SegEvalConfig) -> dict[str, dict[str, Any]]:
    """{"model": {...}, "ema": {...}}: mIoU, aAcc, mAcc (%) and per-class IoU on the evaluation split."""
    run = Path(run)
    device = pick_device(cfg.device)
    saved = open_run(run)
    split = load_split(cfg.data, train=False)
    seg_input, infer = SegInput.of(saved.info["overrides"].get("img_size", 512), cfg.data.mean, cfg.data.std), cfg.infer
    kinds = {"model": ["model"], "ema": ["ema"], "both": ["model", "ema"]}[cfg.weights]
    if not saved.has_ema:
        kinds = ["model"]
    out = {}
    for kind in kinds:
        model = saved.load(use_ema=kind == "ema", build=_build).to(device, memory_format=torch.channels_last)
        job, ink = Dist(device=device), ink_threshold(cfg.data, infer)
        conf = confusion(model, split, cfg.batch_size, job, contextlib.nullcontext, seg_input, infer, ink=ink)
        iou = {c: None if math.isnan(v) else v for c, v in zip(split.classes, iou_per_class(conf))}  # JSON-safe
        out[kind] = {**scores(conf), "iou": iou, "pixels": conf.sum(1).tolist()}
    return out
