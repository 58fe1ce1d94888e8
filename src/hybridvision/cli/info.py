"""``hybridvision info NAME``: params, MACs (attention matmuls included) and the feature levels of a model."""

from __future__ import annotations

import argparse
import json

from ..config import to_dict
from ..macs import model_cost
from ..registry import get_config, get_entry
from .common import console, giga, millions, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="registered model name")
    parser.add_argument("--img-size", type=int, help="input size (default: the model's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def info(name: str, img_size: int | None = None) -> dict:
    entry = get_entry(name)
    cost = model_cost(name, img_size=img_size)
    config = get_config(name, **({"img_size": img_size} if img_size is not None else {}))
    return {
        "name": name,
        "family": entry.family,
        "params": cost.params,
        "macs": cost.macs,
        "input_shape": list(cost.input_shape),
        "macs_by_module": cost.macs_by_module,
        "config": to_dict(config),
        "card": {k: list(v) if isinstance(v, tuple) else v for k, v in entry.card.items()},
    }


def run(args: argparse.Namespace) -> int:
    data = info(args.name, args.img_size)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    shape = "x".join(str(s) for s in data["input_shape"])
    rows = [["params", millions(data["params"])], ["MACs", giga(data["macs"])], ["input", shape]]
    rows += [[f"  MACs {k}", giga(v)] for k, v in data["macs_by_module"].items()]
    rows += [[k, str(v)] for k, v in data["card"].items()]
    console.print(table(f"{args.name} ({data['family']})", ["", "value"], rows))
    console.print(table("config", ["field", "value"], [[k, str(v)] for k, v in data["config"].items()]))
    return 0
