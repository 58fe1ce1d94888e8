"""``hybridvision plot FILE [FILE...] --out PNG``: throughput against MACs or accuracy, from bench results."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..bench.plot import Y_CHOICES, plot_rows
from ..bench.results import read_rows
from .common import console


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="`hybridvision bench` result files (.json or .csv)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument(
        "--y", choices=Y_CHOICES, default="auto", help="y axis: card top-1 when every model has one (auto), or GMACs"
    )
    parser.add_argument("--batch", type=int, help="throughput at this batch size (default: largest common one)")
    parser.add_argument("--title", default="", help="figure title (default: the device)")


def run(args: argparse.Namespace) -> int:
    rows = [row for path in args.files for row in read_rows(path)]
    plot_rows(rows, args.out, y=args.y, batch=args.batch, title=args.title)
    console.print(f"wrote {args.out}")
    return 0
