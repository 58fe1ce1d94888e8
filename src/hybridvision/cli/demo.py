"""``hybridvision demo``: train ascan_nano on Fashion-MNIST for a few minutes, evaluate it, benchmark it beside
a CoAtNet and an EfficientMod of similar size, and write ``report.md`` with curves and a table in the run.

    hybridvision demo                       # a few minutes on 2 CPU cores
    hybridvision demo --quick               # seconds: a small subset (a smoke test)
    hybridvision demo --train.budget_minutes 10 --compare coatnet_nano
"""

from __future__ import annotations

import argparse

from ..apps.demo import DemoConfig
from ..config import dump_yaml, parse_overrides, resolve
from ..engine.resume import check_run_folder
from .common import add_typed_config, console

ACCEPTS_OVERRIDES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_typed_config(parser, DemoConfig)


def run(args: argparse.Namespace) -> int:
    from ..apps.demo import quick_config, run_demo

    cfg = resolve(DemoConfig, args.config, parse_overrides(args.overrides))
    if args.dry_run:
        check_run_folder(cfg.train)  # a --train.run_name the run would refuse is refused here too
        print(dump_yaml(quick_config(cfg) if cfg.quick else cfg), end="")
        return 0
    report = run_demo(cfg)
    console.print(f"report: {report}")
    return 0
