"""Evaluating saved weights: a run directory (its ``final/`` or newest good checkpoint) or a saved model."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import EMA_WEIGHTS_NAME, CheckpointError, load_pretrained
from ..config import resolve
from ..engine import init_source
from ..engine.distributed import Dist, pick_device
from ..factory import create_model, load_model
from .augment import Augment
from .config import AugConfig, EvalConfig, TrainConfig
from .data import load_split
from .task import evaluate


def saved_train_config(run: Path) -> TrainConfig | None:
    path = run / "config.yaml"
    return resolve(TrainConfig, str(path)) if path.is_file() else None


def eval_defaults(run: Path) -> EvalConfig:
    """EvalConfig whose data, size and batch come from the run's own config when it has one."""
    saved = saved_train_config(run)
    if saved is None:
        return EvalConfig()
    return EvalConfig(data=saved.data, img_size=saved.img_size, batch_size=saved.eval_batch_size)


def _load(run: Path, cfg: EvalConfig, num_classes: int, use_ema: bool) -> nn.Module:
    saved = saved_train_config(run)
    if saved is None:
        if not (run / "config.json").is_file():
            raise CheckpointError(f"{run} is neither a run directory (config.yaml) nor a saved model (config.json)")
        return load_model(run, use_ema=use_ema)
    kwargs = {**saved.model_kwargs, "num_classes": num_classes, "in_chans": saved.data.channels}
    model = create_model(saved.model, img_size=cfg.img_size or saved.img_size, **kwargs)
    load_pretrained(model, init_source(str(run)), use_ema=use_ema)
    return model


def saved_classes(run: Path) -> list[str] | None:
    """The class names the weights were trained on (saved with the final weights), when recorded."""
    for path in (run / "final" / "config.json", run / "config.json"):
        if path.is_file():
            classes = json.loads(path.read_text()).get("classes")
            return list(classes) if classes else None
    return None


def has_ema(run: Path) -> bool:
    source = init_source(str(run)) if (run / "config.yaml").is_file() else run
    return (source / EMA_WEIGHTS_NAME).is_file()


def evaluate_run(run: str | Path, cfg: EvalConfig) -> dict[str, dict[str, float]]:
    """{"model": {...}, "ema": {...}} top-1/top-5/loss on the evaluation split."""
    run = Path(run)
    device = pick_device(cfg.device)
    size = cfg.img_size or (saved_train_config(run) or TrainConfig()).img_size
    split = load_split(cfg.data, cfg.data.eval_split, size, cfg.data.eval_subset, saved_classes(run))
    augment = Augment(AugConfig(), cfg.data.mean, cfg.data.std, split.num_classes, size)
    kinds = {"model": ["model"], "ema": ["ema"], "both": ["model", "ema"]}[cfg.weights]
    if not has_ema(run):
        kinds = ["model"]
    out = {}
    for kind in kinds:
        model = _load(run, cfg, split.num_classes, use_ema=kind == "ema").to(device)
        model = model.to(memory_format=torch.channels_last)
        out[kind] = evaluate(model, split, cfg.batch_size, Dist(device=device), contextlib.nullcontext, augment)
    return out
