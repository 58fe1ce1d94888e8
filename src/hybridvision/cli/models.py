"""``hybridvision models [PATTERN]``: the registry as a table (backbones and the task models built on them)."""

from __future__ import annotations

import argparse

from ..config import ConfigError
from ..macs import counts_macs, model_cost, model_params
from ..registry import get_config, get_entry, list_models
from .common import console, giga, millions, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="glob over model names (default: all)")
    parser.add_argument("--family", help="only this family")
    parser.add_argument(
        "--task", help="only models for this task: classification, segmentation, detection or generation"
    )
    parser.add_argument("--no-cost", action="store_true", help="skip the params/MACs columns (faster)")


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, family=args.family, task=args.task)
    if not names:
        raise ConfigError(no_match(args.pattern, args.family, args.task))
    rows, uncosted = [], 0
    for name in names:
        entry = get_entry(name)
        row = [name, entry.task, entry.family, entry.description]
        if not args.no_cost:
            # Task models (segmentors at 512x512, UNets) take most of the time to cost: only when asked for by
            # task or by name, not in the full listing.
            costed = entry.task == "classification" or args.task is not None or args.pattern != "*"
            uncosted += not costed
            row += _cost_columns(name) if costed else ["-", "-", "-"]
        rows.append(row)
    cols = ["model", "task", "family", "description"] + ([] if args.no_cost else ["params", "MACs", "img"])
    console.print(table(f"{len(names)} models", cols, rows))
    if uncosted:
        hint = "`hybridvision models --task segmentation` (or detection, generation, or by name)"
        console.print(f"{uncosted} task models not costed: {hint}")
    return 0


def no_match(pattern: str, family: str | None, task: str | None = None) -> str:
    """One line: the filters that matched nothing, and the families and tasks there are."""
    asked = [f"{k} {v!r}" for k, v in (("pattern", pattern), ("family", family), ("task", task)) if v]
    entries = [get_entry(n) for n in list_models()]
    families, tasks = sorted({e.family for e in entries}), sorted({e.task for e in entries})
    return f"no model matches {', '.join(asked)}; families: {', '.join(families)}; tasks: {', '.join(tasks)}"


def _cost_columns(name: str) -> list[str]:
    if not counts_macs(name):  # a detector: its MACs depend on the image's content
        return [millions(model_params(name)), "-", f"{get_config(name).img_hw[0]}"]
    cost = model_cost(name)
    return [millions(cost.params), giga(cost.macs), f"{cost.input_shape[-2]}"]
