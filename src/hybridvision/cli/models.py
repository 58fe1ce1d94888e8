"""``hybridvision models [PATTERN]``: the registry as a table (backbones and the task models built on them)."""

from __future__ import annotations

import argparse

from ..macs import model_cost
from ..registry import get_entry, list_models
from .common import console, giga, millions, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="glob over model names (default: all)")
    parser.add_argument("--family", help="only this family")
    parser.add_argument("--task", help="only models for this task: classification, segmentation or generation")
    parser.add_argument("--no-cost", action="store_true", help="skip the params/MACs columns (faster)")


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, family=args.family, task=args.task)
    if not names:
        console.print(f"no model matches {args.pattern!r}")
        return 1
    rows = []
    for name in names:
        entry = get_entry(name)
        row = [name, entry.task, entry.family, entry.description]
        if not args.no_cost:
            cost = model_cost(name)
            row += [millions(cost.params), giga(cost.macs), f"{cost.input_shape[-2]}"]
        rows.append(row)
    cols = ["model", "task", "family", "description"] + ([] if args.no_cost else ["params", "MACs", "img"])
    console.print(table(f"{len(names)} models", cols, rows))
    return 0
