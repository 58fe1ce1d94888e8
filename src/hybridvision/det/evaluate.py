"""Evaluating saved detection weights: a run directory (its ``final/`` or newest good checkpoint) or a
``final/``-style folder; COCO box and mask AP (with AR and per-class AP), for the raw weights and the EMA.

``saved_model`` is the one place a run is read back (``det eval`` and ``det predict`` both go through it).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import EMA_WEIGHTS_NAME, CheckpointError
from ..config import from_dict, resolve
from ..engine import weights_dir
from ..engine.distributed import Dist, pick_device
from .config import DetEvalConfig, DetTrainConfig
from .model import DetModelConfig, build_detector, load_weights
from .task import detect, load_splits, model_config, prepare_data, score_detections


def saved_train_config(run: Path) -> DetTrainConfig | None:
    path = run / "config.yaml"
    return resolve(DetTrainConfig, str(path)) if path.is_file() else None


def eval_defaults(run: Path) -> DetEvalConfig:
    """DetEvalConfig whose data and batch come from the run's own config when it has one."""
    saved = saved_train_config(run)
    return DetEvalConfig() if saved is None else DetEvalConfig(data=saved.data, batch_size=saved.eval_batch_size)


def saved_model(run: Path, *, use_ema: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """The detector of a run or saved folder, with its weights, and its ``config.json`` (empty for a checkpoint:
    then the run's config.yaml and its data say what to build)."""
    source = weights_dir(run)
    path = source / "config.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    if info.get("task") == "detection":
        config = from_dict(DetModelConfig, info["overrides"])
    else:
        saved = saved_train_config(run)
        if saved is None:
            raise CheckpointError(f"{run} is neither a detection run (config.yaml) nor a saved detection model")
        _, split = load_splits(saved.data, train=False)
        config = model_config(saved, len(split.classes))
        info = {"classes": list(split.classes), "category_ids": split.category_ids}
    model = build_detector(config)
    load_weights(model, source, use_ema=use_ema and (source / EMA_WEIGHTS_NAME).is_file())
    return model, info


def evaluate_run(run: str | Path, cfg: DetEvalConfig) -> dict[str, dict[str, Any]]:
    """{"model": {"box": {...}, "mask": {...}}, "ema": ...}: COCO AP/AR (%) and per-class AP on the eval split."""
    run = Path(run)
    device = pick_device(cfg.device)
    prepare_data(cfg.data)
    _, split = load_splits(cfg.data, train=False)
    kinds = {"model": ["model"], "ema": ["ema"], "both": ["model", "ema"]}[cfg.weights]
    if not (weights_dir(run) / EMA_WEIGHTS_NAME).is_file():
        kinds = ["model"]
    out = {}
    for kind in kinds:
        model, _ = saved_model(run, use_ema=kind == "ema")
        found = detect(model.to(device), split, cfg.batch_size, Dist(device=device), contextlib.nullcontext)
        out[kind] = {**score_detections(split, found), "detections": len(found)}
    return out
