"""``hybridvision det train | eval | predict | scenes``: Mask R-CNN (torchvision's) on any backbone, COCO's AP.

hybridvision det train                                   # ascan_nano on Fashion-MNIST scenes as instances
hybridvision det train --data.dataset coco --data.root /data/coco --data.channels 3 --config configs/det/...
hybridvision det eval runs/004-maskrcnn_ascan_nano --data.eval_split test2017
hybridvision det predict photo.png photos/ --run runs/004-maskrcnn_ascan_nano --out overlays
hybridvision det scenes --data.root data/fmnist_scenes_coco   # write the scenes' COCO folder only
"""

from __future__ import annotations

import argparse
from dataclasses import replace as dc_replace

from ..config import ConfigError, dump_yaml
from ..det.config import DetEvalConfig, DetPredictConfig, DetTrainConfig
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
    "train": (DetTrainConfig, "train a detector (typed config, resumable, torchrun-ready)"),
    "eval": (DetEvalConfig, "COCO box and mask AP of a run's weights (RUN as first word)"),
    "predict": (DetPredictConfig, "overlays of boxes, masks, labels, scores (IMAGE|DIR ... --run RUN --out DIR)"),
    "scenes": (DetTrainConfig, "write the Fashion-MNIST scenes as a COCO folder (its data.* keys)"),
}
STATS = ("ap", "ap50", "ap75", "aps", "ar100")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__
    sub = parser.add_subparsers(dest="det_command", metavar="{train,eval,predict,scenes}", required=True)
    for name, (cls, help_text) in SUBCOMMANDS.items():
        add_typed_config(sub.add_parser(name, help=help_text, description=help_text), cls)


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _eval, "predict": _predict, "scenes": _scenes}[args.det_command](args)


def _train_config(args: argparse.Namespace, what: str) -> DetTrainConfig:
    words, flags = words_and_flags(args, DetTrainConfig)
    if words:
        raise ConfigError(f"unexpected argument {words[0]!r}; det {what} takes --key value options only")
    return resolve_run_config(DetTrainConfig, args.config, flags)


def _train(args: argparse.Namespace) -> int:
    cfg = _train_config(args, "train")
    if args.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    from ..det.task import train

    result = train(cfg)
    s = result.summary
    if result.is_main and "box_ap" in s:
        console.print(
            f"{result.run_dir}: box AP {s['box_ap']:.2f}, mask AP {s['mask_ap']:.2f} after {s['epochs']} epochs, "
            f"{s['train_s']:.0f} s training, {s['train_img_s']:.1f} img/s"
        )
    return 0


def _scenes(args: argparse.Namespace) -> int:
    cfg = _train_config(args, "scenes")
    if args.dry_run:
        print(dump_yaml(cfg.data), end="")
        return 0
    from ..det.task import prepare_data

    prepare_data(dc_replace(cfg.data, dataset="fmnist_scenes"))
    console.print(f"scenes written to {cfg.data.root}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..det.evaluate import eval_defaults, evaluate_run
    from ..env import environment
    from ..fileio import save_json

    words, flags = words_and_flags(args, DetEvalConfig)
    run_dir = run_dir_word(words, "det eval", "runs/000-maskrcnn_ascan_nano")

    cfg = resolve_over(eval_defaults(run_dir), args.config, flags)
    if args.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    results = evaluate_run(run_dir, cfg)
    rows = [[f"{w} {k}", *(f"{r[k][s]:.2f}" for s in STATS)] for w, r in results.items() for k in ("box", "mask")]
    console.print(table(f"{run_dir} on {cfg.data.eval_split}", ["weights", "AP", "AP50", "AP75", "APs", "AR100"], rows))
    meta = {"run": str(run_dir), "split": cfg.data.eval_split, "environment": environment()}
    save_json({**meta, "results": results}, cfg.out or run_dir / f"det_eval_{cfg.data.eval_split}.json")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ..det.predict import predict_files

    words, flags = words_and_flags(args, DetPredictConfig)
    run_dir = flags.pop("run", "")
    if not run_dir:
        raise ConfigError("det predict needs --run RUN: the detection run whose weights predict")
    cfg = resolve_over(DetPredictConfig(), args.config, flags)
    if args.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    if not words:
        raise ConfigError("det predict takes image files or folders, e.g. det predict scene.png --run RUN")
    written = predict_files(run_dir, words, cfg)
    console.print(f"wrote {len(written)} overlay(s) to {cfg.out}")
    return 0
