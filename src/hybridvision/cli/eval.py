"""``hybridvision eval RUN``: top-1/top-5 (and loss) of a run's weights, raw and EMA, on its evaluation split.

RUN is a training run directory (its ``final/`` weights, else its newest good checkpoint) or a directory
written by ``save_pretrained``. Data settings default to the run's own; override them like any config key:

    hybridvision eval runs/003-ascan_nano
    hybridvision eval runs/003-ascan_nano --weights ema --data.eval_subset 1000
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..classify.config import EvalConfig
from ..fileio import save_json
from .common import add_typed_config, command_flags, console, existing_run, no_words, resolved, table

ACCEPTS_OVERRIDES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory or saved-model directory")
    add_typed_config(parser, EvalConfig)


def run(args: argparse.Namespace) -> int:
    from ..classify.evaluate import eval_defaults, evaluate_run

    run_dir = existing_run(args.run, "runs/000-ascan_nano")
    words, flags = command_flags(args, EvalConfig)
    no_words(words, "eval RUN")
    cfg = resolved(args, eval_defaults(run_dir), flags)
    if cfg is None:
        return 0
    results = evaluate_run(run_dir, cfg)
    rows = [[k, f"{v['top1']:.2f}", f"{v['top5']:.2f}", f"{v['loss']:.4f}"] for k, v in results.items()]
    console.print(table(f"{run_dir} on {cfg.data.eval_split}", ["weights", "top-1 %", "top-5 %", "loss"], rows))
    out = Path(cfg.out) if cfg.out else (run_dir / "eval.json")
    save_json({"run": str(run_dir), "split": cfg.data.eval_split, "results": results}, out)
    return 0
