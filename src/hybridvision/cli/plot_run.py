"""``hybridvision plot-run RUN [RUN ...]``: loss and accuracy curves of one or more runs, as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import console


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="run directories (curves of several runs share the axes)")
    parser.add_argument("--out", help="PNG path (default: RUN/curves.png of the first run)")


def run(args: argparse.Namespace) -> int:
    from ..engine.report import plot_curves

    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not r.is_dir():
            raise FileNotFoundError(f"{r} is not a directory; pass a run directory such as runs/000-ascan_nano")
    out = plot_curves(runs, Path(args.out) if args.out else runs[0] / "curves.png")
    console.print(f"wrote {out}")
    return 0
