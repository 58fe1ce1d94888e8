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

from rich.console import Console
from rich.table import Table

from ..bench.config import AGAINST, BACKENDS, COMPILE_MODES, PRECISIONS, QUICK, BenchConfig
from ..bench.results import payload, result_stem, write_csv, write_json
from ..bench.runner import BenchResult, run_bench
from ..config import dump_yaml, flatten, load_file, replace
from .common import console, giga, millions, table

_BOOL = argparse.BooleanOptionalAction


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,16,64, got {text!r}") from None


def _csv_strs(text: str) -> tuple[str, ...]:
    return tuple(v for v in text.replace(" ", "").split(",") if v)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", help="model names or glob patterns ('coatnet_*'; globs skip *_test)")
    what = parser.add_argument_group("what to measure")
    what.add_argument("--batch-sizes", type=_csv_ints, help="throughput batch sizes (default 1,16,64)")
    what.add_argument("--img-size", type=int, help="square input size (default: each model's)")
    what.add_argument("--device", help="cpu, cuda or cuda:N (default cpu)")
    what.add_argument("--precision", choices=tuple(PRECISIONS), help="default fp32")
    what.add_argument("--amp", action=_BOOL, help="bf16/fp16 through autocast (default) or cast weights (--no-amp)")
    what.add_argument("--channels-last", action=_BOOL, help="NHWC weights and inputs (default on)")
    what.add_argument("--fused", action=_BOOL, help="fold BatchNorm into convs with model.fuse() (default on)")
    what.add_argument("--compile", action=_BOOL, help="torch.compile(fullgraph=True); compile time reported apart")
    what.add_argument("--compile-mode", choices=COMPILE_MODES, help="torch.compile mode (default 'default')")
    what.add_argument("--compile-backend", help="torch.compile backend (default inductor)")
    what.add_argument("--backend", choices=BACKENDS, help="torch (default) or onnxruntime (our model exported)")
    what.add_argument("--against", type=_csv_strs, help=f"also time, on the same weights: {', '.join(AGAINST)}")
    what.add_argument("--timm-name", dest="timm_names", action="append", help="map ours=theirs for --against timm")
    what.add_argument("--atol", type=float, help="parity tolerance between implementations (default 1e-4)")
    how = parser.add_argument_group("how long and how often")
    how.add_argument("--repeats", type=int, help="measurements in fresh processes (default 3)")
    how.add_argument("--isolate", action=_BOOL, help="fresh process per repeat (default on)")
    how.add_argument("--warmup-iters", type=int, help="warm-up iterations, at least (default 50)")
    how.add_argument("--warmup-s", type=float, help="warm-up seconds, at least (default 2)")
    how.add_argument("--iters", type=int, help="timed iterations per loop, at least (default 200)")
    how.add_argument("--min-s", type=float, help="timed seconds per loop, at least (default 1)")
    how.add_argument("--max-s", type=float, help="cap per warm-up or timed loop in seconds (default 60)")
    how.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime (default: torch's)")
    how.add_argument("--roofline", action=_BOOL, help="measure the GEMM peak in the same run (default on)")
    how.add_argument("--import", dest="plugins", action="append", help="import this module first (e.g. models)")
    how.add_argument("--timeout-s", type=float, help="limit per measuring process (default none)")
    how.add_argument("--seed", type=int, help="weights seed (default 0)")
    how.add_argument("--quick", action="store_true", help=f"smoke-test bounds for CI: {_quick_text()}")
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, help="write the result document (config, environment, rows) here")
    out.add_argument("--csv", type=Path, help="write the rows as CSV here")
    out.add_argument("--save-dir", type=Path, help="write <device>-<precision>-<layout>-<mode>-<versions>.csv/.json")
    out.add_argument("--plot", type=Path, help="also draw throughput vs MACs (or accuracy) to this PNG")
    parser.add_argument("--config", help="YAML/JSON file with BenchConfig values (flags override it)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def _quick_text() -> str:
    return ", ".join(f"{k}={v}" for k, v in QUICK.items())


def build_config(args: argparse.Namespace) -> BenchConfig:
    """defaults < --quick < --config file < flags."""
    config = replace(BenchConfig(), **QUICK) if args.quick else BenchConfig()
    if args.config:
        config = replace(config, **flatten(load_file(args.config)))
    names = {f for f in BenchConfig.__dataclass_fields__}
    flags = {k: v for k, v in vars(args).items() if k in names and v is not None and v != []}
    if isinstance(flags.get("models"), list):
        flags["models"] = tuple(flags["models"])
    for key in ("timm_names", "plugins"):
        if key in flags:
            flags[key] = tuple(flags[key])
    return replace(config, **flags)


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    if args.dry_run:
        print(dump_yaml(config), end="")
        return 0
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
    console.print(main_table(result, title))
    ratios = ratio_rows(result.rows, cfg.backend)
    if ratios:
        console.print(_table("same weights, same run: other / ours", _RATIO_COLS, ratios))
    for note in result.notes:
        console.print(f"note: {note}")
    for row in result.rows:
        if row["status"] != "ok":
            console.print(
                f"[red]{row['model']} ({row['impl']}, {row['backend']}, batch {row['batch_size']}): "
                f"{row['status']}[/red]"
            )


def _spread(value: float | None, lo: float | None, hi: float | None, fmt: str = "{:.1f}") -> str:
    if value is None:
        return "-"
    text = fmt.format(value)
    if lo is not None and hi is not None and value and hi > lo:
        text += f" ±{50 * (hi - lo) / value:.0f}%"
    return text


def main_table(result: BenchResult, title: str) -> Table:
    batches = sorted(result.config.batch_sizes)
    cols = ["model", "impl", "params", "MACs", "b1 p50 ms", "p90", "p99"]
    cols += [f"img/s @{b}" for b in batches] + [f"mem MB @{batches[-1]}", "compile s", "% peak"]
    groups: dict[tuple, dict[int, dict]] = {}
    for row in result.rows:
        groups.setdefault((row["model"], row["impl"], row["backend"]), {})[row["batch_size"]] = row
    out = []
    for (model, impl, backend), by_batch in groups.items():
        first, last = by_batch.get(1, {}), by_batch.get(batches[-1], {})
        any_row = next(iter(by_batch.values()))
        impl_text = impl if backend == "torch" else f"{impl} ({backend})"
        cells = [model, impl_text, millions(any_row["params"]), giga(any_row["macs"])]
        cells.append(
            _spread(first.get("latency_p50_ms"), first.get("latency_p50_min_ms"), first.get("latency_p50_max_ms"))
        )
        cells += [_num(first.get("latency_p90_ms")), _num(first.get("latency_p99_ms"))]
        for b in batches:
            r = by_batch.get(b, {})
            cells.append(
                _spread(r.get("throughput_img_s"), r.get("throughput_min_img_s"), r.get("throughput_max_img_s"))
            )
        cells += [_num(last.get("peak_mem_mb"), "{:.0f}"), _num(any_row.get("compile_s"))]
        frac = last.get("peak_fraction")
        cells.append("-" if frac is None else f"{100 * frac:.1f}%")
        out.append(cells)
    return _table(title, cols, out)


def _table(title: str, cols: list[str], rows: list[list[str]]) -> Table:
    """common.table, but on narrow terminals headers wrap while cells stay whole."""
    t = table(title, cols, rows)
    for i, column in enumerate(t.columns):
        column.overflow = "fold"
        column.min_width = max((len(row[i]) for row in rows), default=1)
    return t


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


RATIO_FMT = "{:.3g}x"  # three significant digits, so a small ratio does not print as 0.00x
_RATIO_COLS = [
    "model",
    "other",
    "batch",
    "ours img/s",
    "other img/s",
    "throughput other/ours",
    "b1 p50 other/ours",
    "max |diff|",
]


def ratio_rows(rows: list[dict], backend: str = "torch") -> list[list[str]]:
    """One line per other implementation and batch: its throughput and latency over ours."""
    primary = [r for r in rows if r["impl"] == "hybridvision" and r["backend"] == backend]
    ours = {(r["model"], r["batch_size"]): r for r in primary}
    out = []
    for r in rows:
        ref = ours.get((r["model"], r["batch_size"]))
        if ref is None or r is ref or r["rel_throughput"] is None:
            continue
        other = r["impl"] if r["backend"] == "torch" else f"{r['impl']} ({r['backend']})"
        diff = r["parity_max_abs_diff"]
        out.append(
            [
                r["model"],
                other,
                str(r["batch_size"]),
                _num(ref["throughput_img_s"]),
                _num(r["throughput_img_s"]),
                _num(r["rel_throughput"], RATIO_FMT),
                _num(r["rel_latency_p50"], RATIO_FMT),
                "-" if diff is None else f"{diff:.1e}",
            ]
        )
    return out
