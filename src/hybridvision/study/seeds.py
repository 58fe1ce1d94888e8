"""The pre-registered seed rule: which points get more seeds, decided from the first seeds alone.

Every comparison of a study (each point against its baseline, and the declared pairs) whose |difference| after
the study's ``seeds`` is within ``extra_seeds.within_sd`` pooled seed SDs is close: both its points, the baseline
included, are trained up to ``extra_seeds.seeds`` seeds. Only the first seeds decide, so the list is fixed before
any extra seed runs and never changes as they finish.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from .config import StudyConfig
from .stats import pooled_sd

Summaries = Mapping[tuple[str, int], Mapping[str, Any]]  # a finished run's summary by (label, seed)


def first_values(study: StudyConfig, summaries: Summaries, label: str) -> list[float] | None:
    """Top-1 of ``label`` over the study's first seeds; None until every one of them has finished."""
    if not all((label, s) in summaries for s in study.seeds):
        return None
    return [float(summaries[label, s]["top1"]) for s in study.seeds]


def seed_rule(study: StudyConfig, summaries: Summaries) -> list[dict[str, Any]]:
    """Per comparison (a, b): the difference and pooled SD over the first seeds and whether the rule calls it
    close (None while either point's first seeds are unfinished, or without a rule)."""
    rule = study.extra_seeds
    active = rule.within_sd > 0 and rule.seeds > len(study.seeds)
    out = []
    for a, b in study.pairs:
        va, vb = first_values(study, summaries, a), first_values(study, summaries, b)
        entry: dict[str, Any] = {"a": a, "b": b, "diff": math.nan, "pooled_sd": math.nan, "close": None}
        if va is not None and vb is not None and len(va) >= 2:
            diff, sd = statistics.fmean(va) - statistics.fmean(vb), pooled_sd(va, vb)
            entry |= {"diff": diff, "pooled_sd": sd, "close": abs(diff) <= rule.within_sd * sd if active else None}
        out.append(entry)
    return out


def extra_seeds(study: StudyConfig, summaries: Summaries) -> dict[str, tuple[int, ...]]:
    """The seeds the rule adds, by point label (only points of close comparisons; none without a rule)."""
    rule, first = study.extra_seeds, study.seeds
    added = tuple(range(max(first) + 1, max(first) + 1 + rule.seeds - len(first)))
    close = [label for e in seed_rule(study, summaries) if e["close"] for label in (e["a"], e["b"])]
    return {label: added for label in sorted(set(close), key=[p.label for p in study.points].index)} if added else {}
