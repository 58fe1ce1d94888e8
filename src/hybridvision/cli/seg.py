"""``hybridvision seg train | eval | predict``: semantic segmentation with UperNet on any backbone.

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

from ..config import ConfigError, dump_yaml
from ..seg.config import PredictConfig, SegEvalConfig, SegTrainConfig
from .common import (
    add_typed_config,
    console,
    resolve_over,
    resolve_run_config,
    run_dir_word,
    table,
    words_and_flags,
)

ACCEPTS_OVERRIDES = True

SUBCOMMANDS = {
    "train": (SegTrainConfig, "train a segmentation model (typed config, resumable, torchrun-ready)"),
    "eval": (SegEvalConfig, "mIoU, per-class IoU and pixel accuracy of a run's weights (RUN as first word)"),
    "predict": (PredictConfig, "colour-coded overlays with a legend (IMAGE|DIR ... --run RUN --out DIR)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__
    sub = parser.add_subparsers(dest="seg_command", metavar="{train,eval,predict}", required=True)
    for name, (cls, help_text) in SUBCOMMANDS.items():
        add_typed_config(sub.add_parser(name, help=help_text, description=help_text), cls)


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _eval, "predict": _predict}[args.seg_command](args)


def _train(args: argparse.Namespace) -> int:
    words, flags = words_and_flags(args, SegTrainConfig)
    if words:
        raise ConfigError(f"unexpected argument {words[0]!r}; seg train takes --key value options only")
    cfg = resolve_run_config(SegTrainConfig, args.config, flags)
    if args.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    from ..seg.task import train

    result = train(cfg)
    s = result.summary
    if result.is_main and "miou" in s:
        ema = f", EMA {s['ema_miou']:.2f}%" if "ema_miou" in s else ""
        console.print(
            f"{result.run_dir}: mIoU {s['miou']:.2f}%{ema}, pixel accuracy {s['aacc']:.2f}% after {s['epochs']} "
            f"epochs, {s['train_s']:.0f} s training, {s['train_img_s']:.0f} img/s"
        )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..env import environment
    from ..fileio import save_json
    from ..seg.evaluate import eval_defaults, evaluate_run

    words, flags = words_and_flags(args, SegEvalConfig)
    run_dir = run_dir_word(words, "seg eval", "runs/000-upernet_ascan_nano")
    cfg = resolve_over(eval_defaults(run_dir), args.config, flags)
    if args.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    results = evaluate_run(run_dir, cfg)
    console.print(_class_table(results))
    rows = [[k, _pct(v["miou"]), _pct(v["aacc"]), _pct(v["macc"])] for k, v in results.items()]
    console.print(table(f"{run_dir} on {cfg.data.eval_split}", ["weights", "mIoU %", "aAcc %", "mAcc %"], rows))
    meta = {"run": str(run_dir), "split": cfg.data.eval_split, "infer": asdict(cfg.infer), "environment": environment()}
    save_json({**meta, "results": results}, cfg.out or run_dir / "seg_eval.json")
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

    words, flags = words_and_flags(args, PredictConfig)
    run_dir = flags.pop("run", "")
    if not run_dir:
        raise ConfigError("seg predict needs --run RUN: the segmentation run whose weights predict")
    cfg = resolve_over(PredictConfig(), args.config, flags)
    if args.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    if bool(words) == bool(cfg.scenes):
        raise ConfigError("seg predict takes image files/folders, or --scenes N (evaluation images), not both")
    written = predict_files(run_dir, words, cfg) if words else predict_scenes(run_dir, cfg)
    console.print(f"wrote {len(written)} overlay(s) to {cfg.out}")
    return 0
