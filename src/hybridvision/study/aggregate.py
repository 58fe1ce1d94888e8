"""From the runs' summaries to one row per point: accuracy mean and spread over seeds, cost, speed, a verdict.

Each comparison of the study (a point against its baseline, and the study's declared pairs) is judged on top-1
over seeds by Welch's two-sided t-test, Holm-corrected over the study's comparisons at the study's alpha:
"better" or "worse" when the corrected p is below alpha, else "equivalent" when the equivalence test (TOST at
the study's margin, Holm-corrected the same way) says the two are within the margin, else "inconclusive".
Nothing is called a tie on a difference merely being small (see ``stats``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from .config import StudyConfig
from .grid import Plan
from .seeds import seed_rule
from .stats import holm, welch

METRICS = ("top1", "ema_top1")  # accuracies aggregated over seeds (mean, std)
SPEED_TOLERANCE = 0.10  # throughput ratios within 1 ± this are equal (interleaved timings on a shared CPU)
VERDICTS = ("better", "worse", "equivalent", "inconclusive")  # of a comparison; "n/a" without two seeds a side
COMPARED = ("diff", "t", "df", "p", "p_holm", "p_tost", "p_tost_holm", "verdict")  # copied into a point's row


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(diff: float, p_holm: float, p_tost_holm: float, alpha: float) -> str:
    """'better' / 'worse' (the difference test rejects equal means), 'equivalent' (TOST rejects a difference of
    the margin or more), else 'inconclusive'; 'n/a' when there was no test (NaN p)."""
    if math.isnan(p_holm):
        return "n/a"
    if p_holm < alpha:
        return "better" if diff > 0 else "worse"
    return "equivalent" if p_tost_holm < alpha else "inconclusive"


def standing(accuracy: str, speed_ratio: float) -> str:
    """A point against its baseline on both axes: accuracy verdict and throughput ratio (point / baseline).

    'dominates' (more accurate and not slower, or equivalent and faster), 'dominated' (the reverse),
    'equivalent' (equivalent, same speed), a 'trade-off' naming which way, or 'inconclusive' (naming the speed
    when it differs): an inconclusive accuracy test decides nothing.
    """
    if accuracy not in VERDICTS or math.isnan(speed_ratio):
        return accuracy
    faster, slower = speed_ratio > 1 + SPEED_TOLERANCE, speed_ratio < 1 - SPEED_TOLERANCE
    if accuracy == "inconclusive":
        return "inconclusive, faster" if faster else "inconclusive, slower" if slower else "inconclusive"
    if accuracy == "equivalent":
        return "dominates" if faster else "dominated" if slower else "equivalent"
    if accuracy == "better":
        return "trade-off: more accurate, slower" if slower else "dominates"
    return "trade-off: faster, less accurate" if faster else "dominated"


def judge(study: StudyConfig, values: Mapping[str, list[float]]) -> list[dict[str, Any]]:
    """Every comparison of the study, (a, b) for a - b, tested on the per-seed top-1 ``values`` by label.

    Per comparison: diff, se, Welch t, df, raw p, Holm p, TOST p (raw and Holm; NaN without a margin), the
    verdict; plus the seed rule's reading of it from the first seeds (their diff, pooled SD, close or not).
    """
    margin = study.equivalence_margin_pp
    out = []
    for a, b in study.pairs:
        entry: dict[str, Any] = {"a": a, "b": b, "n_a": len(values[a]), "n_b": len(values[b])}
        if min(len(values[a]), len(values[b])) >= 2:
            w = welch(values[a], values[b], margin)
            entry |= {"diff": w.diff, "se": w.se, "t": w.t, "df": w.df, "p": w.p, "p_tost": w.p_tost}
        else:
            diff = statistics.fmean(values[a]) - statistics.fmean(values[b]) if values[a] and values[b] else math.nan
            entry |= {"diff": diff, "se": math.nan, "t": math.nan, "df": math.nan, "p": math.nan, "p_tost": math.nan}
        if margin <= 0:
            entry["p_tost"] = math.nan  # no margin stated: no equivalence test
        out.append(entry)
    for key in ("p", "p_tost"):
        for entry, adjusted in zip(out, holm([e[key] for e in out])):
            entry[f"{key}_holm"] = adjusted
    for entry in out:
        entry["verdict"] = verdict(entry["diff"], entry["p_holm"], entry["p_tost_holm"], study.alpha)
    return out


def with_seed_rule(study: StudyConfig, comparisons: list[dict[str, Any]], summaries: Mapping) -> None:
    """Add the seed rule's reading of each comparison (from the first seeds only) to ``comparisons``."""
    for entry, rule in zip(comparisons, seed_rule(study, summaries)):
        entry |= {"first_diff": rule["diff"], "first_pooled_sd": rule["pooled_sd"], "close": rule["close"]}


def point_rows(
    plan: Plan,
    summaries: Mapping[tuple[str, int], dict[str, Any]],
    speed: Mapping[str, Mapping[str, float]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per point (per-seed values, mean/std, params, MACs, train img/s, speed, its comparison with its
    baseline, standing) and every comparison of the study (``judge``)."""
    rows = [_row(plan, p.label, summaries, (speed or {}).get(p.label, {})) for p in plan.points]
    by_label = {r["label"]: r for r in rows}
    comparisons = judge(plan.study, {r["label"]: r["top1"] for r in rows})
    with_seed_rule(plan.study, comparisons, summaries)
    against = {(c["a"], c["b"]): c for c in comparisons}
    for row in rows:
        base = by_label[row["baseline"]]
        speed_base = base["throughput_img_s"]
        row["speed_ratio"] = row["throughput_img_s"] / speed_base if speed_base else math.nan
        if row["label"] == row["baseline"]:
            row |= {key: math.nan for key in COMPARED} | {"verdict": "reference", "standing": "reference"}
            continue
        test = against[row["label"], row["baseline"]]
        row |= {("vs_baseline" if key == "diff" else key): test[key] for key in COMPARED}
        row["standing"] = standing(row["verdict"], row["speed_ratio"])
    return rows, comparisons


def host(summary: Mapping[str, Any]) -> str:
    """Where a run trained: CPU (or GPU) model, vector capability, threads and precision, from its summary."""
    env = summary.get("environment", {})
    parts = [env.get("device") or "unknown host", env.get("cpu_capability", ""), f"{env.get('threads', '?')} threads"]
    return ", ".join(p for p in [*parts, summary.get("precision", "")] if p)


def _row(
    plan: Plan, label: str, summaries: Mapping[tuple[str, int], dict[str, Any]], speed: Mapping[str, float]
) -> dict[str, Any]:
    point = plan.point(label)
    seeds = [s for s in plan.seeds_of(label) if (label, s) in summaries]
    runs = [summaries[label, s] for s in seeds]
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
        "seeds": seeds,
        "extra_seeds": list(plan.extra.get(label, ())),
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
