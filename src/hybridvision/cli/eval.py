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
from ..config import dump_yaml, flatten, load_file, replace
from ..fileio import save_json
from .common import add_typed_config, config_overrides, console, table

ACCEPTS_OVERRIDES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory or saved-model directory")
    add_typed_config(parser, EvalConfig)


def run(args: argparse.Namespace) -> int:
    from ..classify.evaluate import eval_defaults, evaluate_run

    run_dir = Path(args.run)
    if not run_dir.exists():
        raise FileNotFoundError(f"{run_dir} does not exist; pass a run directory such as runs/000-ascan_nano")
    cfg = eval_defaults(run_dir)
    if args.config:
        cfg = replace(cfg, **flatten(load_file(args.config)))
    cfg = replace(cfg, **config_overrides(args.overrides))
    if args.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    results = evaluate_run(run_dir, cfg)
    rows = [[k, f"{v['top1']:.2f}", f"{v['top5']:.2f}", f"{v['loss']:.4f}"] for k, v in results.items()]
    console.print(table(f"{run_dir} on {cfg.data.eval_split}", ["weights", "top-1 %", "top-5 %", "loss"], rows))
    out = Path(cfg.out) if cfg.out else (run_dir / "eval.json")
    save_json({"run": str(run_dir), "split": cfg.data.eval_split, "results": results}, out)
    return 0
