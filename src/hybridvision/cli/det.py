"""``hybridvision det train | eval | predict | scenes``: Mask R-CNN (torchvision's) on any backbone, COCO's AP.

hybridvision det train                                   # ascan_nano on Fashion-MNIST scenes as instances
hybridvision det train --config configs/det/coco_maskrcnn_1x_ascan_t.yaml --data.root /data/coco
hybridvision det eval runs/004-maskrcnn_ascan_nano --data.eval_split test2017
hybridvision det predict photo.png photos/ --run runs/004-maskrcnn_ascan_nano --out overlays
hybridvision det scenes --data.root data/fmnist_scenes_coco   # write the scenes' COCO folder only
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..config import ConfigError
from ..det.config import DetEvalConfig, DetPredictConfig, DetTrainConfig
from .common import (
    add_subcommands,
    command_flags,
    console,
    eval_command,
    no_words,
    predict_command,
    resolved,
    save_results,
    score_line,
    table,
    train_command,
    training_facts,
)

ACCEPTS_OVERRIDES = True

SUBCOMMANDS = {
    "train": (DetTrainConfig, "train a detector (typed config, resumable, torchrun-ready)"),
    "eval": (DetEvalConfig, "COCO box and mask AP of a run's weights (RUN as first word)"),
    "predict": (DetPredictConfig, "overlays of boxes, masks, labels, scores (IMAGE|DIR ... --run RUN --out DIR)"),
    "scenes": (DetTrainConfig, "write the Fashion-MNIST scenes as a COCO folder (its data.* keys)"),
}
STATS = ("ap", "ap50", "ap75", "aps", "ar100")  # the columns of det eval's table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, "det_command", SUBCOMMANDS, __doc__)


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _eval, "predict": _predict, "scenes": _scenes}[args.det_command](args)


def _train(args: argparse.Namespace) -> int:
    from ..det.task import train

    return train_command(args, DetTrainConfig, "det train", train, describe)


def describe(summary: dict) -> str:
    """A finished detection run in one line ("" when it was never evaluated)."""
    score = score_line(summary, "box_ap", "box AP")
    return score and f"{score}, mask AP {summary['mask_ap']:.2f}% {training_facts(summary)}"


def _scenes(args: argparse.Namespace) -> int:
    from ..det.evaluate import prepare_data

    words, flags = command_flags(args, DetTrainConfig)
    no_words(words, "det scenes")
    cfg = resolved(args, DetTrainConfig, flags)
    if cfg is None:
        return 0
    prepare_data(replace(cfg.data, dataset="fmnist_scenes"))
    console.print(f"scenes written to {cfg.data.root}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..det.evaluate import eval_defaults, evaluate_run

    run_dir, cfg = eval_command(args, DetEvalConfig, "det eval", "runs/000-maskrcnn_ascan_nano", eval_defaults)
    if cfg is None:
        return 0
    results = evaluate_run(run_dir, cfg)
    rows = [[f"{w} {k}", *(f"{r[k][s]:.2f}" for s in STATS)] for w, r in results.items() for k in ("box", "mask")]
    console.print(table(f"{run_dir} on {cfg.data.eval_split}", ["weights", "AP", "AP50", "AP75", "APs", "AR100"], rows))
    save_results(results, cfg.out or run_dir / f"det_eval_{cfg.data.eval_split}.json", run_dir, cfg.data.eval_split)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ..det.predict import predict_files

    words, run_dir, cfg = predict_command(args, DetPredictConfig, "det predict", "detection")
    if cfg is None:
        return 0
    if not words:
        raise ConfigError("det predict takes image files or folders, e.g. det predict scene.png --run RUN")
    written = predict_files(run_dir, words, cfg)
    console.print(f"wrote {len(written)} overlay(s) to {cfg.out}")
    return 0
