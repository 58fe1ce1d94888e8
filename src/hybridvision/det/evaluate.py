"""Evaluating saved detection weights: a run (its ``final/`` or newest good checkpoint) or a ``final/``-style
folder; COCO box and mask AP (with AR and per-class AP), for the raw weights and the EMA.

Reading a run goes through ``engine.rundir``: the detector is rebuilt from its ``model.json`` (its full
``DetModelConfig``: backbone, classes, image sizes, anchors, input channels, normalisation), never from the
training task. ``detect`` is also what the task evaluates with during training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import from_dict
from ..data import FASHION_MNIST_CLASSES, DataError
from ..engine.distributed import Dist, barrier, concat_across, pick_device
from ..engine.order import eval_batches
from ..engine.precision import autocast_for, precision_name, resolve_amp
from ..engine.rundir import SavedModel, open_model, run_config
from ..vision_ops import set_roi_align
from .config import DetDataConfig, DetEvalConfig, DetTrainConfig
from .data import CocoSplit, load_split
from .metrics import score_detections
from .model import DetModel, DetModelConfig, load_weights
from .scenes import write_scenes

TASK = "detection"  # what model.json records of a detection run


def eval_defaults(run: Path) -> DetEvalConfig:
    """DetEvalConfig whose data, batch, RoIAlign mode and precision come from the run's own config when it has one
    (a run trained in bf16 autocast is evaluated in it, as its validation scores were while it trained)."""
    saved = run_config(run, DetTrainConfig, TASK)
    if saved is None:
        return DetEvalConfig()
    return DetEvalConfig(data=saved.data, batch_size=saved.eval_batch_size, roi_align=saved.roi_align, amp=saved.amp)


def _build(info: dict[str, Any], folder: Path, use_ema: bool) -> DetModel:
    """A DetModel from its full config (no registry needed), with its weights."""
    model = DetModel(from_dict(DetModelConfig, info["overrides"]))
    load_weights(model, folder, use_ema=use_ema)
    return model


def open_run(run: str | Path) -> SavedModel:
    """The weights and description of a detection run or saved folder (another task's is refused)."""
    return open_model(run, task=TASK)


def saved_model(run: Path, *, use_ema: bool = True) -> tuple[DetModel, dict[str, Any]]:
    """The detector of a run or saved folder, with its weights (EMA when asked and present), and its description."""
    saved = open_run(run)
    return saved.load(use_ema=use_ema, build=_build), saved.info


def prepare_data(cfg: DetDataConfig, job: Dist | None = None) -> None:
    """Write the scenes' COCO folder when the config asks for scenes (the main process writes, the others wait)."""
    if cfg.dataset != "fmnist_scenes":
        return
    if job is None or job.is_main:
        write_scenes(cfg.root, cfg.scenes)
    if job is not None:
        barrier(job)


def load_splits(cfg: DetDataConfig, train: bool = True) -> tuple[CocoSplit | None, CocoSplit]:
    """(training split or None, evaluation split) of the configured COCO folder."""
    train_split = load_split(cfg.root, cfg.train_split, cfg.channels, cfg.train_subset) if train else None
    eval_split = load_split(cfg.root, cfg.eval_split, cfg.channels, cfg.eval_subset)
    if train_split is not None and train_split.category_ids != eval_split.category_ids:
        raise DataError(f"{cfg.train_split} and {cfg.eval_split} have different categories; they must share them")
    return train_split, eval_split


def check_categories(run: str | Path, saved: SavedModel, ids: Sequence[int], where: str) -> None:
    """A DataError when the weights were trained on other category ids than ``ids``, the evaluation data's (``where``
    names that data with its verb: "the scenes have"): their labels would be scored as other classes."""
    trained = saved.info.get("category_ids")
    if trained is not None and list(trained) != list(ids):
        raise DataError(
            f"{run} was trained on category ids {list(trained)}, but {where} {list(ids)}; evaluate it on the "
            "data it was trained on (--data.dataset coco --data.root FOLDER)"
        )


@torch.no_grad()
def detect(
    model: nn.Module,
    split: CocoSplit,
    batch_size: int,
    job: Dist,
    autocast: Callable[[], Any],
    unreadable: set | None = None,
) -> list[dict]:
    """COCO result dicts (boxes and masks) of ``model`` over all of ``split``, gathered from every process."""
    model.eval()
    found: list[dict] = []
    lists = eval_batches(len(split), batch_size, job.rank, job.world)
    for images, targets, skipped in split.batches(lists, with_targets=False):
        if unreadable is not None:
            unreadable.update(skipped)
        if not images:
            continue
        with autocast():
            outputs = model([x.to(job.device).float() / 255 for x in images])
        for target, out in zip(targets, outputs):
            found += to_results(out, target["image_id"], split.category_ids)
    return concat_across(found, job)


def to_results(output: dict[str, Tensor], image_id: int, category_ids: Sequence[int]) -> list[dict]:
    """One image's detections as COCO results: (x, y, w, h) boxes, masks (probability > 0.5) as RLE."""
    from pycocotools import mask as mask_utils

    boxes = output["boxes"].float().cpu()
    boxes[:, 2:] -= boxes[:, :2]  # (x1, y1, x2, y2) -> (x, y, w, h)
    masks = (output["masks"][:, 0] > 0.5).cpu().numpy() if "masks" in output else None  # (N, 1, H, W) -> (N, H, W)
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))) if masks is not None else []
    results = []
    for k, (box, label, score) in enumerate(zip(boxes.tolist(), output["labels"].tolist(), output["scores"].tolist())):
        r = {"image_id": image_id, "category_id": category_ids[label - 1], "bbox": box, "score": score}
        if masks is not None:
            r["segmentation"] = {"size": rles[k]["size"], "counts": rles[k]["counts"].decode("ascii")}
        results.append(r)
    return results


def evaluate_run(run: str | Path, cfg: DetEvalConfig) -> dict[str, dict[str, Any]]:
    """{"model": {"box": {...}, "mask": {...}, "precision": ...}, "ema": ...}: COCO AP/AR (%) and per-class AP on
    the eval split, and the precision the detector ran in ("fp32", "bf16")."""
    device = pick_device(cfg.device)
    amp = resolve_amp(cfg.amp, device)
    saved = open_run(run)
    set_roi_align(cfg.roi_align)
    if cfg.data.dataset == "fmnist_scenes":  # refused before the scenes are written
        check_categories(run, saved, range(1, len(FASHION_MNIST_CLASSES) + 1), "the scenes have")
    prepare_data(cfg.data)
    _, split = load_splits(cfg.data, train=False)
    check_categories(run, saved, split.category_ids, f"{split.annotation_file} has")
    kinds = {"model": ["model"], "ema": ["ema"], "both": ["model", "ema"]}[cfg.weights]
    if not saved.has_ema:
        kinds = ["model"]
    out = {}
    for kind in kinds:
        model = saved.load(use_ema=kind == "ema", build=_build).to(device)
        found = detect(model, split, cfg.batch_size, Dist(device=device), autocast_for(amp, device))
        out[kind] = {**score_detections(split, found), "detections": len(found), "precision": precision_name(amp)}
    return out
