"""``hybridvision seg train | eval | predict``: semantic segmentation with UperNet or Semantic FPN on any backbone.

hybridvision seg train                                   # ascan_nano + UperNet on Fashion-MNIST scenes, 30 min
hybridvision seg train --config configs/seg/ade20k_upernet_ascan_t.yaml --data.root /data/ADEChallengeData2016
hybridvision seg train --model coatnet_nano --init-from runs/003-coatnet_nano   # backbone from a classifier run
hybridvision seg train --resume runs/004-upernet_ascan_nano
hybridvision seg eval runs/004-upernet_ascan_nano --infer.flip true --infer.ratios 0.75,1,1.25
hybridvision seg predict photo.jpg photos/ --run runs/004-upernet_ascan_nano --out overlays
hybridvision seg predict --scenes 8 --run runs/004-upernet_ascan_nano --out docs/seg
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict

from ..config import ConfigError
from ..seg.config import PredictConfig, SegEvalConfig, SegTrainConfig
from .common import (
    add_subcommands,
    console,
    eval_command,
    predict_command,
    save_results,
    score_line,
    table,
    train_command,
    training_facts,
)

ACCEPTS_OVERRIDES = True

SUBCOMMANDS = {
    "train": (SegTrainConfig, "train a segmentation model (typed config, resumable, torchrun-ready)"),
    "eval": (SegEvalConfig, "mIoU, per-class IoU and pixel accuracy of a run's weights (RUN as first word)"),
    "predict": (PredictConfig, "colour-coded overlays with a legend (IMAGE|DIR ... --run RUN --out DIR)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, "seg_command", SUBCOMMANDS, __doc__)


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _eval, "predict": _predict}[args.seg_command](args)


def _train(args: argparse.Namespace) -> int:
    from ..seg.task import train

    return train_command(args, SegTrainConfig, "seg train", train, describe)


def describe(summary: dict) -> str:
    """A finished segmentation run in one line ("" when it was never evaluated)."""
    score = score_line(summary, "miou", "mIoU")
    return score and f"{score}, pixel accuracy {summary['aacc']:.2f}% {training_facts(summary)}"


def _eval(args: argparse.Namespace) -> int:
    from ..seg.evaluate import eval_defaults, evaluate_run

    run_dir, cfg = eval_command(args, SegEvalConfig, "seg eval", "runs/000-upernet_ascan_nano", eval_defaults)
    if cfg is None:
        return 0
    results = evaluate_run(run_dir, cfg)
    console.print(_class_table(results))
    rows = [[k, _pct(v["miou"]), _pct(v["aacc"]), _pct(v["macc"])] for k, v in results.items()]
    console.print(table(f"{run_dir} on {cfg.data.eval_split}", ["weights", "mIoU %", "aAcc %", "mAcc %"], rows))
    save_results(results, cfg.out or run_dir / "seg_eval.json", run_dir, cfg.data.eval_split, infer=asdict(cfg.infer))
    return 0


def _pct(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f}"


def _class_table(results: dict) -> object:
    kinds = list(results)
    classes = list(results[kinds[0]]["iou"])
    rows = [[c, *(_pct(results[k]["iou"][c]) for k in kinds)] for c in classes]
    return table("IoU per class (%)", ["class", *(f"{k} IoU" for k in kinds)], rows)


def _predict(args: argparse.Namespace) -> int:
    from ..seg.predict import predict_files, predict_scenes

    words, run_dir, cfg = predict_command(args, PredictConfig, "seg predict", "segmentation")
    if cfg is None:
        return 0
    if bool(words) == bool(cfg.scenes):
        raise ConfigError("seg predict takes image files/folders, or --scenes N (evaluation images), not both")
    written = predict_files(run_dir, words, cfg) if words else predict_scenes(run_dir, cfg)
    console.print(f"wrote {len(written)} overlay(s) to {cfg.out}")
    return 0
