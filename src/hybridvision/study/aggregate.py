"""From the runs' summaries to one row per point: accuracy mean and spread over seeds, cost, speed, a verdict.

The verdict against the baseline is deliberately blunt: a difference of means no larger than the combined seed
spread (the root of the sum of both variances) is a tie. With two or three seeds per point that spread is itself
a rough estimate, so a "better" or "worse" here is a difference worth a closer look, not a proven one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from .grid import Plan

METRICS = ("top1", "ema_top1")  # accuracies aggregated over seeds (mean, std)
SPEED_TOLERANCE = 0.10  # throughput ratios within 1 ± this are equal (interleaved timings on a shared CPU)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(mean: float, std: float, n: int, base_mean: float, base_std: float, base_n: int) -> str:
    """'tie', 'better' or 'worse' than the baseline by top-1; 'n/a' without two seeds on both sides."""
    if n < 2 or base_n < 2 or math.isnan(mean) or math.isnan(base_mean):
        return "n/a"
    noise = math.hypot(std, base_std)
    diff = mean - base_mean
    if abs(diff) <= noise:
        return "tie"
    return "better" if diff > 0 else "worse"


def standing(accuracy: str, speed_ratio: float) -> str:
    """A point against its baseline on both axes: accuracy verdict and throughput ratio (point / baseline).

    'dominates' (more accurate and not slower, or as accurate and faster), 'dominated' (the reverse), 'within
    noise' (tie, same speed), or a 'trade-off' naming which way.
    """
    if accuracy not in ("better", "tie", "worse") or math.isnan(speed_ratio):
        return accuracy
    faster, slower = speed_ratio > 1 + SPEED_TOLERANCE, speed_ratio < 1 - SPEED_TOLERANCE
    if accuracy == "tie":
        return "dominates" if faster else "dominated" if slower else "within noise"
    if accuracy == "better":
        return "trade-off: more accurate, slower" if slower else "dominates"
    return "trade-off: faster, less accurate" if faster else "dominated"


def point_rows(
    plan: Plan,
    summaries: Mapping[tuple[str, int], dict[str, Any]],
    speed: Mapping[str, Mapping[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """One row per point: per-seed values, their mean/std, params, MACs, train img/s, speed, verdict."""
    rows = [_row(plan, p.label, summaries, (speed or {}).get(p.label, {})) for p in plan.points]
    by_label = {r["label"]: r for r in rows}
    for row in rows:
        base = by_label[row["baseline"]]
        row["vs_baseline"] = row["top1_mean"] - base["top1_mean"]
        row["noise"] = math.hypot(row["top1_std"], base["top1_std"])
        row["verdict"] = "reference" if row["label"] == row["baseline"] else verdict(*_stats(row), *_stats(base))
        speed_base = base["throughput_img_s"]
        row["speed_ratio"] = row["throughput_img_s"] / speed_base if speed_base else math.nan
        row["standing"] = standing(row["verdict"], row["speed_ratio"])
    return rows


def host(summary: Mapping[str, Any]) -> str:
    """Where a run trained: CPU (or GPU) model, vector capability, threads and precision, from its summary."""
    env = summary.get("environment", {})
    parts = [env.get("device") or "unknown host", env.get("cpu_capability", ""), f"{env.get('threads', '?')} threads"]
    return ", ".join(p for p in [*parts, summary.get("precision", "")] if p)


def _stats(row: dict[str, Any]) -> tuple[float, float, int]:
    return row["top1_mean"], row["top1_std"], row["n"]


def _row(
    plan: Plan, label: str, summaries: Mapping[tuple[str, int], dict[str, Any]], speed: Mapping[str, float]
) -> dict[str, Any]:
    point = plan.point(label)
    runs = [summaries[label, s] for s in plan.study.seeds if (label, s) in summaries]
    row: dict[str, Any] = {
        "label": label,
        "model": point.model,
        "note": point.note,
        "model_kwargs": point.kwargs,
        "baseline": point.baseline,
        "matched": point.matched,
        "params": point.params,
        "macs": point.macs,
        "n": len(runs),
        "seeds": [s for s in plan.study.seeds if (label, s) in summaries],
    }
    for metric in METRICS:
        values = [float(r[metric]) for r in runs if metric in r]
        row[metric] = values
        row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(values)
    for key in ("train_img_s", "epochs", "train_s"):
        row[key] = statistics.fmean(float(r[key]) for r in runs) if runs else math.nan
    row["train_s_max"] = max((float(r["train_s"]) for r in runs), default=math.nan)
    row["hosts"] = [host(r) for r in runs]
    row["latency_ms"] = speed.get("latency_ms", math.nan)
    row["throughput_img_s"] = speed.get("throughput_img_s", math.nan)
    return row
