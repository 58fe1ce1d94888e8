"""``hybridvision bench NAME [NAME...]``: latency, throughput, memory and MACs, measured reproducibly.

Protocol (spec §5): eval + inference mode, synthetic inputs pre-allocated on the device, warm-up by iterations
and by time, latency percentiles at batch 1 (one sync per iteration), throughput at every batch size (one sync
per block), every repeat in a fresh process, median of repeats with min/max spread, compile time apart,
the environment in every row. Values come from defaults < --quick < --config FILE < flags.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..bench.config import QUICK, BenchConfig
from ..bench.results import payload, result_stem, write_csv, write_json
from ..bench.runner import BenchResult, run_bench
from ..bench.tables import ratio_table, results_table
from ..config import dump_yaml, flatten, load_file, replace, split_flags
from ..fileio import check_writable
from .common import add_typed_config, console, table

ACCEPTS_OVERRIDES = True  # every BenchConfig field is a flag: --batch-sizes 1,16 --precision bf16 --no-fused ...
ALIASES = {"timm_name": "timm_names", "import": "plugins"}  # repeatable singular spellings of tuple fields


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "hybridvision bench NAME [NAME ...] [--quick] [--key value ...] [--json/--csv/--save-dir/--plot PATH]"
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke-test bounds for CI: {_quick_text()}")
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, help="write the result document (config, environment, rows) here")
    out.add_argument("--csv", type=Path, help="write the rows as CSV here")
    out.add_argument("--save-dir", type=Path, help="write <device>-<precision>-<layout>-<mode>-<versions>.csv/.json")
    out.add_argument("--plot", type=Path, help="also draw throughput vs MACs (or accuracy) to this PNG")
    add_typed_config(parser, BenchConfig)
    parser.epilog = "NAME: registered model names or glob patterns ('coatnet_*').\n" + parser.epilog


def _quick_text() -> str:
    return ", ".join(f"{k}={v}" for k, v in QUICK.items())


def bench_overrides(tokens: list[str]) -> dict[str, Any]:
    """Model names and ``--key value`` flags (generated from BenchConfig's fields) as config overrides."""
    names, flags = split_flags(_join_aliases(tokens), BenchConfig)
    if names:
        flags["models"] = tuple(names)
    return flags


def _join_aliases(tokens: list[str]) -> list[str]:
    """``--timm-name a=b --timm-name c=d`` -> ``--timm_names a=b,c=d`` (and ``--import`` -> ``--plugins``)."""
    out, joined = [], {}
    it = iter(tokens)
    for tok in it:
        key = tok[2:].replace("-", "_") if tok.startswith("--") else None
        if key in ALIASES:
            joined.setdefault(ALIASES[key], []).append(next(it, ""))
        else:
            out.append(tok)
    return out + [t for key, values in joined.items() for t in (f"--{key}", ",".join(values))]


def build_config(args: argparse.Namespace) -> BenchConfig:
    """defaults < --quick < --config file < flags."""
    config = replace(BenchConfig(), **QUICK) if args.quick else BenchConfig()
    if args.config:
        config = replace(config, **flatten(load_file(args.config)))
    return replace(config, **bench_overrides(args.overrides))


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    if args.dry_run:
        print(dump_yaml(config), end="")
        return 0
    for flag in ("json", "csv", "plot"):  # fail now, not after the measurements
        if getattr(args, flag):
            check_writable(getattr(args, flag), f"--{flag}")
    with _progress() as progress:
        result = run_bench(config, progress=progress)
    print_result(result)
    _write(result, args)
    return 0 if all(row["status"] == "ok" for row in result.rows) else 1


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A live status line on a terminal; one line per step on stderr otherwise (CI logs)."""
    if sys.stderr.isatty():
        status_console = Console(stderr=True)
        with status_console.status("starting") as status:
            yield lambda text, done, total: status.update(f"{text}  ({done}/{total} measurements of this model)")
        return
    last = [""]

    def report(text: str, done: int, total: int) -> None:
        if text != last[0]:
            print(f"  {text}", file=sys.stderr, flush=True)
            last[0] = text

    yield report


def _write(result: BenchResult, args: argparse.Namespace) -> None:
    doc = payload(result.config, result.environment, result.rows, result.notes, result.gemm_peak_flops)
    targets = []
    if args.save_dir:
        stem = result_stem(result.config, result.environment)
        targets += [args.save_dir / f"{stem}.json", args.save_dir / f"{stem}.csv"]
    targets += [p for p in (args.json, args.csv) if p]
    for path in targets:
        (write_json(doc, path) if path.suffix == ".json" else write_csv(result.rows, path))
        console.print(f"wrote {path}")
    if args.plot:
        from ..bench.plot import plot_rows

        plot_rows(result.rows, args.plot)
        console.print(f"wrote {args.plot}")


# ---- Tables


def print_result(result: BenchResult) -> None:
    cfg, env = result.config, result.environment
    title = (
        f"{cfg.device} ({env['device']}), {cfg.precision}{' autocast' if cfg.amp and cfg.precision != 'fp32' else ''}, "
        f"{cfg.layout}, {'compiled' if cfg.compile else 'eager'}, {'fused' if cfg.fused else 'unfused'}, "
        f"{env['threads']} threads, torch {env['torch']}, {cfg.repeats} fresh-process repeats (median ±half-range)"
    )
    if result.gemm_peak_flops:
        title += f"; GEMM peak measured now: {result.gemm_peak_flops / 1e9:.0f} GFLOP/s"
    console.print(_table(title, *results_table(result.rows, detail=True)))
    ratio_cols, ratios = ratio_table(result.rows)
    if ratios:
        console.print(_table("same weights, same run: other / ours", ratio_cols, ratios))
    for note in result.notes:
        console.print(f"note: {note}")
    for row in result.rows:
        if row["status"] != "ok":
            console.print(
                f"[red]{row['model']} ({row['impl']}, {row['backend']}, batch {row['batch_size']}): "
                f"{row['status']}[/red]"
            )


def _table(title: str, cols: list[str], rows: list[list[str]]) -> Table:
    """common.table, but on narrow terminals headers wrap while cells stay whole."""
    t = table(title, cols, rows)
    for i, column in enumerate(t.columns):
        column.overflow = "fold"
        column.min_width = max((len(row[i]) for row in rows), default=1)
    return t
