"""A study's aggregate on disk: ``table.md``, ``table.csv``, ``table.json`` and ``accuracy_vs_throughput.png``.

Written to the study's directory (``out_dir/name``) and, when ``results_dir`` is set, copied there too. The JSON
holds everything: per-seed accuracies, the resolved points, the shared recipe and the environment.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..bench.tables import markdown
from ..config import to_dict
from ..figures import pyplot, save_png
from ..fileio import save_json, save_text
from .aggregate import SPEED_TOLERANCE
from .grid import Plan

FILES = ("table.md", "table.csv", "table.json", "accuracy_vs_throughput.png")
CSV_FIELDS = (
    "label", "model", "note", "baseline", "matched", "params", "macs", "n", "top1_mean", "top1_std", "ema_top1_mean",
    "ema_top1_std", "vs_baseline", "t", "df", "p", "p_holm", "p_tost", "p_tost_holm", "verdict", "speed_ratio",
    "standing", "epochs", "train_img_s", "latency_ms", "throughput_img_s",
)  # fmt: skip


def _num(value: float, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _p(p: float) -> str:
    """A p-value: three decimals, or two significant digits below 0.001."""
    return _num(p, ".3f" if math.isnan(p) or p >= 0.001 else ".1e")


def _pm(mean: float, std: float, n: int) -> str:
    return "-" if not n else f"{mean:.2f} ± {std:.2f}"


def table_rows(rows: Sequence[dict[str, Any]], batch: int, reference: str) -> tuple[list[str], list[list[str]]]:
    """The markdown/terminal table: one line per point (the verdict names its baseline unless the reference)."""
    cols = ["point", "model", "design", "params", "MMACs", "n", "top-1 %", "EMA top-1 %", "top-1 vs baseline"]
    cols += ["epochs", "train img/s", "latency b1 ms", f"img/s b{batch}", "speed vs baseline", "standing"]
    out = []
    for r in rows:
        vs = _vs(r, reference)
        out.append(
            [
                r["label"],
                r["model"],
                r["note"] or "-",
                f"{r['params'] / 1e6:.3f}M" + (" (matched)" if r["matched"] else ""),
                f"{r['macs'] / 1e6:.1f}",
                str(r["n"]),
                _pm(r["top1_mean"], r["top1_std"], r["n"]),
                _pm(r["ema_top1_mean"], r["ema_top1_std"], len(r["ema_top1"])),
                vs if r["n"] else "-",
                _num(r["epochs"], ".2f"),
                _num(r["train_img_s"], ".0f"),
                _num(r["latency_ms"], ".2f"),
                _num(r["throughput_img_s"], ".0f"),
                "-" if r["verdict"] == "reference" else _num(r["speed_ratio"], ".2f") + "x",
                "-" if r["verdict"] == "reference" else r["standing"],
            ]
        )
    return cols, out


def _vs(r: dict[str, Any], reference: str) -> str:
    if r["verdict"] == "reference":
        return "reference"
    vs = f"{r['vs_baseline']:+.2f} ({r['verdict']}, p_Holm {_p(r['p_holm'])})"
    return vs if r["baseline"] == reference else f"{vs} vs {r['baseline']}"


def comparison_rows(comparisons: Sequence[dict[str, Any]], rule: Any) -> tuple[list[str], list[list[str]]]:
    """Every comparison's test in full, and what the seed rule read from its first seeds."""
    cols = ["a", "b", "n", "diff pp", "Welch t", "df", "p", "p Holm", "TOST p", "TOST p Holm", "verdict"]
    cols += ["first seeds: abs(diff) / pooled SD", f"to {rule.seeds} seeds"]
    out = []
    for c in comparisons:
        ratio = abs(c["first_diff"]) / c["first_pooled_sd"] if c["first_pooled_sd"] else math.nan
        close = {True: "yes", False: "no", None: "-"}[c["close"]]
        row = [c["a"], c["b"], f"{c['n_a']}/{c['n_b']}", _num(c["diff"], "+.2f"), _num(c["t"], ".2f")]
        row += [_num(c["df"], ".1f"), _p(c["p"]), _p(c["p_holm"]), _p(c["p_tost"]), _p(c["p_tost_holm"])]
        out.append([*row, c["verdict"], _num(ratio, ".2f"), close])
    return cols, out


def _clean(value: Any) -> Any:
    """JSON without NaN (a point with no finished run, no speed measured): null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    return buf.getvalue()


def _length(r: Any) -> str:
    if r.budget_minutes:
        return f"{r.budget_minutes:g} min of training (at most {r.epochs} epochs)"
    return f"{r.epochs} epochs" + (f" or {r.max_steps} steps" if r.max_steps else "")


def _runs_line(rows: Sequence[dict[str, Any]]) -> str:
    """The longest run's training time and every host the runs trained on (with how many runs each)."""
    longest = max((r["train_s_max"] for r in rows if r["n"]), default=math.nan)
    hosts = Counter(h for r in rows for h in r["hosts"])
    where = "; ".join(f"{h} ({n} runs)" for h, n in hosts.most_common()) or "-"
    return f"Longest run: {_num(longest / 60, '.1f')} min of training. Trained on: {where}."


def _test_line(study: Any) -> str:
    """The test, the margin and the seed rule, in words."""
    margin = study.equivalence_margin_pp
    tost = (
        f'"equivalent" only when TOST (two one-sided Welch tests) puts the difference within ±{margin:g} pp, '
        "the margin stated in the study config, its p Holm-corrected the same way"
        if margin
        else "no equivalence margin is stated, so no point can be called equivalent"
    )
    rule = study.extra_seeds
    seeds = (
        f" Seed rule (pre-registered): both points of a comparison whose |diff| after seeds "
        f"{', '.join(map(str, study.seeds))} is within {rule.within_sd:g} pooled SDs get {rule.seeds} seeds."
        if rule.within_sd and rule.seeds > len(study.seeds)
        else ""
    )
    return (
        f"Verdicts: Welch's two-sided t-test on top-1 over seeds, Holm-corrected over the study's "
        f"{len(study.pairs)} comparisons at alpha = {study.alpha:g}: better / worse when the corrected p < alpha; "
        f"{tost}; otherwise inconclusive.{seeds}"
    )


def _markdown(
    plan: Plan, rows: Sequence[dict[str, Any]], comparisons: Sequence[dict[str, Any]], env: dict[str, Any]
) -> str:
    s, r = plan.study, plan.recipe
    return f"""# Study {s.name}

{len(s.points)} points x seeds {", ".join(map(str, s.seeds))}{_extra_line(plan)}. Every run: {_length(r)},
batch {r.batch_size}, {r.img_size}x{r.img_size} input, recipe `{s.base_recipe or "TrainConfig defaults"}` with the
study's overrides. Top-1 on the {r.data.eval_split} split, mean ± sample std over seeds (n = the seeds finished).
Standing: both axes against the baseline, throughputs within ±{SPEED_TOLERANCE:.0%} counting as equal. Params and
MACs at {r.img_size}x{r.img_size}, batch 1. Speed measured together at the end (fp32, eval, channels_last,
interleaved rounds, median) on {env["device"]} with {env["threads"]} threads (load average {env["load_avg_1m"]}).
{_runs_line(rows)}

{_test_line(s)}

{markdown(table_rows(rows, s.speed.batch_size, s.reference_label), right_from=3)}

Every comparison (a - b, top-1 pp), its tests and the seed rule's reading of the first seeds:

{markdown(comparison_rows(comparisons, s.extra_seeds), right_from=2)}

![accuracy vs throughput](accuracy_vs_throughput.png)

torch {env["torch"]}, git {env["git_sha"]}, {env["timestamp"]}.
"""


def _extra_line(plan: Plan) -> str:
    if not plan.extra:
        return ""
    seeds = sorted({seed for extra in plan.extra.values() for seed in extra})
    return f"; the seed rule adds seeds {', '.join(map(str, seeds))} for {', '.join(plan.extra)}"


def plot(plan: Plan, rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """Top-1 (mean, error bars = std over seeds) against batch-N throughput, one labelled marker per point."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        if not r["n"]:
            continue
        ref = r["label"] == plan.study.reference_label
        if ref:  # the reference's seed spread, for the eye (the verdicts come from the tests)
            ax.axhspan(r["top1_mean"] - r["top1_std"], r["top1_mean"] + r["top1_std"], color="grey", alpha=0.12)
        ax.errorbar(
            r["throughput_img_s"], r["top1_mean"], yerr=r["top1_std"], fmt="*" if ref else "o", ms=11 if ref else 6,
            capsize=4, label=r["label"],
        )  # fmt: skip
    ax.legend(fontsize=8, loc="best")  # a legend, not labels beside the markers: close points overlap there
    batch = plan.study.speed.batch_size
    ax.set(xlabel=f"inference throughput, img/s at batch {batch}", ylabel="test top-1 (%), mean ± std over seeds")
    ax.set_title(f"study {plan.study.name}", fontsize=10)
    ax.grid(alpha=0.3)
    return save_png(fig, out)


def write_report(
    plan: Plan, rows: Sequence[dict[str, Any]], comparisons: Sequence[dict[str, Any]], env: dict[str, Any]
) -> Path:
    """Write the four files into the study directory (and copy them to ``results_dir``); returns table.md."""
    d = plan.study.study_dir
    payload = {
        "study": to_dict(plan.study),
        "recipe": to_dict(plan.recipe),
        "test": {
            "difference": "Welch's two-sided t-test, Holm-corrected within the study",
            "equivalence": "TOST: two one-sided Welch tests at equivalence_margin_pp, Holm-corrected",
            "alpha": plan.study.alpha,
            "equivalence_margin_pp": plan.study.equivalence_margin_pp,
            "comparisons": len(comparisons),
        },
        "extra_seeds": dict(plan.extra),
        "rows": _clean(list(rows)),
        "comparisons": _clean(list(comparisons)),
        "environment": env,
    }
    save_json(payload, d / "table.json")
    save_text(_csv(rows), d / "table.csv")
    save_text(_markdown(plan, rows, comparisons, env), d / "table.md")
    plot(plan, rows, d / "accuracy_vs_throughput.png")
    if plan.study.results_dir:
        dest = Path(plan.study.results_dir)
        dest.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(d / name, dest / name)
    return d / "table.md"
