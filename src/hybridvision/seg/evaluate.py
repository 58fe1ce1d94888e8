"""Evaluating saved segmentation weights: a run directory (its ``final/`` or newest good checkpoint) or a
``final/``-style folder; mIoU, per-class IoU, pixel and mean accuracy, for the raw weights and the EMA."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import EMA_WEIGHTS_NAME, CheckpointError
from ..config import from_dict, resolve
from ..engine import weights_dir
from ..engine.distributed import Dist, pick_device
from .augment import SegAugment
from .config import SegAugConfig, SegEvalConfig, SegTrainConfig
from .data import dataset_classes, load_split
from .metrics import iou_per_class, scores
from .model import SegModel, SegModelConfig, load_weights
from .task import confusion, model_config


def saved_train_config(run: Path) -> SegTrainConfig | None:
    path = run / "config.yaml"
    return resolve(SegTrainConfig, str(path)) if path.is_file() else None


def eval_defaults(run: Path) -> SegEvalConfig:
    """SegEvalConfig whose data, inference and batch come from the run's own config when it has one."""
    saved = saved_train_config(run)
    if saved is None:
        return SegEvalConfig()
    return SegEvalConfig(data=saved.data, infer=saved.infer, batch_size=saved.eval_batch_size)


def saved_model(run: Path, *, use_ema: bool = True) -> tuple[SegModel, dict[str, Any]]:
    """The model of a run or saved folder, with its weights, and its ``config.json`` (empty for a checkpoint)."""
    source = weights_dir(run)
    path = source / "config.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    if info.get("task") == "segmentation":
        config = from_dict(SegModelConfig, info["overrides"])
    else:
        saved = saved_train_config(run)
        if saved is None:
            raise CheckpointError(f"{run} is neither a segmentation run (config.yaml) nor a saved segmentation model")
        config = model_config(saved, len(dataset_classes(saved.data)))
    model = SegModel(config)
    load_weights(model, source, use_ema=use_ema and (source / EMA_WEIGHTS_NAME).is_file())
    return model, info


def evaluate_run(run: str | Path, cfg: SegEvalConfig) -> dict[str, dict[str, Any]]:
    """{"model": {...}, "ema": {...}}: mIoU, aAcc, mAcc (%) and per-class IoU on the evaluation split."""
    run = Path(run)
    device = pick_device(cfg.device)
    split = load_split(cfg.data, train=False)
    saved = saved_train_config(run)
    crop = saved.img_size if saved else 512
    augment = SegAugment(SegAugConfig(), crop, cfg.data.mean, cfg.data.std, len(split.classes))
    kinds = {"model": ["model"], "ema": ["ema"], "both": ["model", "ema"]}[cfg.weights]
    if not (weights_dir(run) / EMA_WEIGHTS_NAME).is_file():
        kinds = ["model"]
    out = {}
    for kind in kinds:
        model, _ = saved_model(run, use_ema=kind == "ema")
        model = model.to(device, memory_format=torch.channels_last)
        conf = confusion(model, split, cfg.batch_size, Dist(device=device), contextlib.nullcontext, augment, cfg.infer)
        iou = {c: None if math.isnan(v) else v for c, v in zip(split.classes, iou_per_class(conf))}  # JSON-safe
        out[kind] = {**scores(conf), "iou": iou, "pixels": conf.sum(1).tolist()}
    return out
