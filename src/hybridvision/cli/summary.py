"""``hybridvision summary``: params, MACs and CPU speed of a family's named models, measured now.

A quick view on top of the bench harness (one in-process repeat per model, short bounds); ``hybridvision bench``
runs the full protocol (fresh-process repeats, percentiles, comparisons) and writes result files.
"""

from __future__ import annotations

import argparse

from ..bench.config import BenchConfig
from ..bench.runner import run_bench
from ..config import ConfigError, replace
from ..env import environment
from ..fileio import check_writable, save_json
from ..macs import model_cost
from ..registry import list_models
from .common import console, giga, millions, table
from .models import no_match


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", default="coatnet", help="model family (default: coatnet)")
    parser.add_argument("--pattern", default="*", help="glob over names within the family")
    parser.add_argument("--batch-sizes", default="1,16", help="comma-separated batch sizes (default: 1,16)")
    parser.add_argument("--img-size", type=int, help="input size (default: each model's)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="time each setting at least this long")
    parser.add_argument("--no-speed", action="store_true", help="params and MACs only")
    parser.add_argument("--json", help="also write the rows and environment to this JSON file")


def summary_config(names: list[str], batch_sizes: str, img_size: int | None, min_s: float) -> BenchConfig:
    """Short bounds, one repeat in this process: a first look, not a result file. ``batch_sizes`` as typed
    ("1,16"), checked by the bench config like ``bench --batch-sizes``."""
    quick = dict(repeats=1, isolate=False, warmup_iters=2, warmup_s=0.2, iters=3, min_s=min_s, max_s=max(60.0, min_s))
    return replace(BenchConfig(), models=tuple(names), batch_sizes=batch_sizes, img_size=img_size, **quick)


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, family=args.family, test=False)
    if not names:
        raise ConfigError(no_match(args.pattern, args.family))
    config = None if args.no_speed else summary_config(names, args.batch_sizes, args.img_size, args.min_seconds)
    batch_sizes = config.batch_sizes if config else ()
    if args.json:
        check_writable(args.json, "--json")  # now, not after the measurements
    rows = [_cost_row(name, args.img_size) for name in names]
    env: dict = environment()
    peak = float("nan")
    if config:
        with console.status("measuring") as status:
            result = run_bench(config, progress=lambda text, done, total: status.update(text))
        env, peak = result.environment, result.gemm_peak_flops or float("nan")
        _add_speed(rows, result.rows)
    _print(rows, batch_sizes, peak, env)
    if args.json:
        save_json({"environment": env, "gemm_peak_gflops": peak / 1e9, "rows": rows}, args.json)
    return 0


def _cost_row(name: str, img_size: int | None) -> dict:
    cost = model_cost(name, img_size=img_size)
    return {"model": name, "params": cost.params, "macs": cost.macs, "img_size": cost.input_shape[-1]}


def _add_speed(rows: list[dict], bench_rows: list[dict]) -> None:
    by_model = {r["model"]: r for r in rows}
    for b in bench_rows:
        if b["status"] != "ok":
            continue
        row, bs = by_model[b["model"]], b["batch_size"]
        row[f"b{bs}_p50_ms"] = round(1e3 * bs / b["throughput_img_s"], 2)  # median time of one batch
        row[f"b{bs}_img_s"] = round(b["throughput_img_s"], 2)
        row[f"b{bs}_peak_frac"] = round(b["peak_fraction"], 3)


def _print(rows: list[dict], batch_sizes: tuple[int, ...], peak: float, env: dict) -> None:
    cols = ["model", "params", "MACs", "img"]
    for bs in batch_sizes:
        cols += [f"b{bs} ms", f"b{bs} img/s", f"b{bs} % peak"]
    out = []
    for r in rows:
        cells = [r["model"], millions(r["params"]), giga(r["macs"]), str(r["img_size"])]
        for bs in batch_sizes:
            if f"b{bs}_img_s" not in r:
                cells += ["-", "-", "-"]
                continue
            cells += [f"{r[f'b{bs}_p50_ms']:.1f}", f"{r[f'b{bs}_img_s']:.1f}", f"{100 * r[f'b{bs}_peak_frac']:.0f}%"]
        out.append(cells)
    title = "params and MACs"
    if batch_sizes:
        title = f"fp32, eager, fused, {env['threads']} threads, {env['cpu']}"
        title += f"; fp32 GEMM peak measured now: {peak / 1e9:.0f} GFLOP/s"
    console.print(table(title, cols, out))
