"""``hybridvision summary``: params, MACs and CPU speed of a family's named models, measured now."""

from __future__ import annotations

import argparse
import json

import torch

from ..bench.env import environment
from ..bench.macs import model_cost
from ..bench.timing import gemm_peak_flops, time_forward
from ..registry import create_model, list_models
from .common import console, giga, millions, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", default="coatnet", help="model family (default: coatnet)")
    parser.add_argument("--pattern", default="*", help="glob over names within the family")
    parser.add_argument("--batch-sizes", default="1,16", help="comma-separated batch sizes (default: 1,16)")
    parser.add_argument("--img-size", type=int, help="input size (default: each model's)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="time each setting at least this long")
    parser.add_argument("--no-speed", action="store_true", help="params and MACs only")
    parser.add_argument("--json", help="also write the rows and environment to this JSON file")


def measure_row(name: str, batch_sizes: list[int], img_size: int | None, min_s: float, peak: float) -> dict:
    cost = model_cost(name, img_size=img_size)
    row = {"model": name, "params": cost.params, "macs": cost.macs, "img_size": cost.input_shape[-1]}
    if not batch_sizes:
        return row
    torch.manual_seed(0)
    model = create_model(name, **({"img_size": img_size} if img_size else {})).eval()
    for bs in batch_sizes:
        x = torch.randn(bs, *cost.input_shape[1:])
        timing = time_forward(model, x, min_s=min_s, min_iters=3 if bs > 1 else 5, warmup_iters=2, warmup_s=0.2)
        row[f"b{bs}_p50_ms"] = round(timing.p50_ms, 2)
        row[f"b{bs}_img_s"] = round(timing.img_per_s, 2)
        row[f"b{bs}_peak_frac"] = round(2 * cost.macs * timing.img_per_s / peak, 3)
    return row


def run(args: argparse.Namespace) -> int:
    names = [n for n in list_models(args.pattern, family=args.family) if not n.endswith("_test")]
    if not names:
        console.print(f"no models in family {args.family!r} match {args.pattern!r}")
        return 1
    batch_sizes = [] if args.no_speed else [int(b) for b in args.batch_sizes.split(",")]
    peak = gemm_peak_flops() if batch_sizes else float("nan")
    rows = []
    with console.status("measuring") as status:
        for name in names:
            status.update(f"measuring {name}")
            rows.append(measure_row(name, batch_sizes, args.img_size, args.min_seconds, peak))
    _print(rows, batch_sizes, peak)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(), "gemm_peak_gflops": peak / 1e9, "rows": rows}, f, indent=2)
    return 0


def _print(rows: list[dict], batch_sizes: list[int], peak: float) -> None:
    cols = ["model", "params", "MACs", "img"]
    for bs in batch_sizes:
        cols += [f"b{bs} ms", f"b{bs} img/s", f"b{bs} % peak"]
    out = []
    for r in rows:
        cells = [r["model"], millions(r["params"]), giga(r["macs"]), str(r["img_size"])]
        for bs in batch_sizes:
            cells += [f"{r[f'b{bs}_p50_ms']:.1f}", f"{r[f'b{bs}_img_s']:.1f}", f"{100 * r[f'b{bs}_peak_frac']:.0f}%"]
        out.append(cells)
    env = environment()
    title = f"fp32, eager, {env['threads']} threads, {env['cpu']}"
    if batch_sizes:
        title += f"; fp32 GEMM peak measured now: {peak / 1e9:.0f} GFLOP/s"
    console.print(table(title, cols, out))
