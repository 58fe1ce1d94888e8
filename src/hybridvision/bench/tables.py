"""Result rows -> tables of text cells, built once for every place that shows them (terminal, README, reports).

A table is ``(columns, rows)`` of strings; ``markdown`` renders one, the CLI hands it to rich. Rows group by
model and implementation (``impl_label``); our primary row of a model is its first row, and ratios divide by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Table = tuple[list[str], list[list[str]]]

RATIO_FMT = "{:.3g}x"  # three significant digits, so a small ratio does not print as 0.00x
RATIO_COLUMNS = [
    "model",
    "other",
    "batch",
    "ours img/s",
    "other img/s",
    "throughput other/ours",
    "b1 p50 other/ours",
    "max |diff|",
]


def impl_label(row: dict[str, Any]) -> str:
    """'hybridvision', 'timm', or 'hybridvision (onnxruntime)' for another backend; ' int8' after int8 rows."""
    label = row["impl"] if row["backend"] == "torch" else f"{row['impl']} ({row['backend']})"
    return label + (" int8" if row.get("precision") == "int8" else "")


def primary_rows(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """{(model, batch size): our primary row}: the first row of each model and batch (ours, on the run's backend)."""
    primary: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        primary.setdefault((row["model"], row["batch_size"]), row)
    return primary


def group_rows(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    """{(model, implementation label): {batch size: row}}, in the order rows first appear."""
    groups: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], impl_label(row)), {})[row["batch_size"]] = row
    return groups


def num(value: float | None, fmt: str = "{:.1f}", missing: str = "-") -> str:
    return missing if value is None else fmt.format(value)


def short(value: float | None) -> str:
    """Three significant digits below 100, whole numbers above ('' when missing)."""
    if value is None:
        return ""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def spread(value: float | None, lo: float | None, hi: float | None, fmt: str = "{:.1f}") -> str:
    """``value ±x%``, x the half-range of the repeats relative to the median."""
    if value is None:
        return "-"
    text = fmt.format(value)
    if lo is not None and hi is not None and value and hi > lo:
        text += f" ±{50 * (hi - lo) / value:.0f}%"
    return text


def _status(by_batch: dict[int, dict[str, Any]]) -> str:
    bad = [f"b{b}: {r['status']}" for b, r in sorted(by_batch.items()) if r["status"] != "ok"]
    return "; ".join(bad) or "ok"


def results_table(rows: Sequence[dict[str, Any]], *, detail: bool) -> Table:
    """One line per model and implementation: size, batch-1 latency, throughput per batch, peak fraction.

    ``detail`` (the terminal) adds p90, the repeats' spread, memory and compile time; without it (README files)
    the line ends with p99 and the status.
    """
    batches = sorted({r["batch_size"] for r in rows})
    cols = ["model", "impl", "params", "GMACs", "b1 p50 ms", "p90" if detail else "b1 p99 ms"]
    cols += ["p99"] if detail else []
    cols += [f"img/s @{b}" for b in batches]
    cols += [f"mem MB @{batches[-1]}", "compile s", "% peak"] if detail else [f"% GEMM peak @{batches[-1]}", "status"]
    out = []
    for (model, impl), by_batch in group_rows(rows).items():
        any_row = next(iter(by_batch.values()))
        cells = [model, impl, f"{any_row['params'] / 1e6:.2f}M", f"{any_row['macs'] / 1e9:.3f}"]
        out.append(cells + (_detail_cells if detail else _compact_cells)(by_batch, batches))
    return cols, out


def _detail_cells(by_batch: dict[int, dict[str, Any]], batches: list[int]) -> list[str]:
    b1, last = by_batch.get(1, {}), by_batch.get(batches[-1], {})
    cells = [spread(b1.get("latency_p50_ms"), b1.get("latency_p50_min_ms"), b1.get("latency_p50_max_ms"))]
    cells += [num(b1.get("latency_p90_ms")), num(b1.get("latency_p99_ms"))]
    for b in batches:
        r = by_batch.get(b, {})
        cells.append(spread(r.get("throughput_img_s"), r.get("throughput_min_img_s"), r.get("throughput_max_img_s")))
    compile_s = next(iter(by_batch.values())).get("compile_s")
    return cells + [num(last.get("peak_mem_mb"), "{:.0f}"), num(compile_s), num(last.get("peak_fraction"), "{:.1%}")]


def _compact_cells(by_batch: dict[int, dict[str, Any]], batches: list[int]) -> list[str]:
    b1, last = by_batch.get(1, {}), by_batch.get(batches[-1], {})
    cells = [short(b1.get("latency_p50_ms")), short(b1.get("latency_p99_ms"))]
    cells += [short(by_batch.get(b, {}).get("throughput_img_s")) for b in batches]
    frac = last.get("peak_fraction")
    return cells + ["" if frac is None else f"{100 * frac:.1f}", _status(by_batch)]


def ratio_table(rows: Sequence[dict[str, Any]]) -> Table:
    """One line per other implementation and batch: its throughput and latency over ours (same weights, same run)."""
    ours = primary_rows(rows)
    out = []
    for r in rows:
        ref = ours.get((r["model"], r["batch_size"]))
        if ref is None or r is ref or r["rel_throughput"] is None:
            continue
        diff = r["parity_max_abs_diff"]
        out.append(
            [
                r["model"],
                impl_label(r),
                str(r["batch_size"]),
                num(ref["throughput_img_s"]),
                num(r["throughput_img_s"]),
                num(r["rel_throughput"], RATIO_FMT),
                num(r["rel_latency_p50"], RATIO_FMT),
                "-" if diff is None else f"{diff:.1e}",
            ]
        )
    return RATIO_COLUMNS, out


def markdown(table: Table, right_from: int | None = None) -> str:
    """A markdown table; columns from ``right_from`` on are right-aligned (numbers)."""
    cols, rows = table
    align = ["---" if right_from is None or i < right_from else "---:" for i in range(len(cols))]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join(align) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
