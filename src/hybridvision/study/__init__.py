"""``hybridvision study``: the papers' design claims in miniature. A grid of training runs (points x seeds), each
resumable, then one table (top-1 mean ± std, params, MACs, train img/s, inference speed, a verdict against the
baseline) and one plot (accuracy against throughput).

    plan = make_plan(load_study("configs/study/ascan_layouts.yaml"))
    check_budget(plan)            # refuses a grid over its stated budget, before anything starts
    table = run_study(plan)       # trains what is missing (and the seed rule's extra seeds), then aggregates
    table = rejudge(plan)         # trains and times nothing: the verdicts again, from the finished runs

The verdicts are Welch's t-test with Holm's correction and TOST at the study's stated margin (``aggregate``,
``stats``); which points get more seeds is decided from the first seeds alone (``seeds``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import ConfigError
from ..env import environment
from .aggregate import point_rows
from .config import PointConfig, SpeedConfig, StudyConfig, load_study
from .grid import (
    Plan,
    Point,
    Report,
    check_budget,
    grid_lock,
    is_finished,
    make_plan,
    read_finished,
    run_grid,
    with_extra_seeds,
)
from .report import write_report
from .speed import measure_speed, speed_device

__all__ = [
    "Plan",
    "Point",
    "PointConfig",
    "SpeedConfig",
    "StudyConfig",
    "aggregate",
    "check_budget",
    "is_finished",
    "load_study",
    "make_plan",
    "read_finished",
    "rejudge",
    "run_grid",
    "run_study",
    "with_extra_seeds",
]


def aggregate(plan: Plan, summaries: dict | None = None) -> Path:
    """Measure every point's speed (one process, interleaved) and write the table and plot; returns table.md.

    ``summaries`` default to the finished runs on disk (points without one appear with n = 0).
    """
    if summaries is None:
        plan = with_extra_seeds(plan, read_finished(plan))
        summaries = run_grid(plan, only_finished=True)
    speed = measure_speed(plan)
    env = environment(speed_device(plan.study.speed))
    return write_report(plan, *point_rows(plan, summaries, speed), env)


def rejudge(plan: Plan) -> Path:
    """The table again from the finished runs and the speed already measured (the existing ``table.json`` in
    ``results_dir``, else in the study's directory): trains nothing, times nothing; returns table.md."""
    s = plan.study
    found = [Path(d) / "table.json" for d in (s.results_dir, s.study_dir) if d]
    path = next((p for p in found if p.is_file()), None)
    if path is None:
        raise ConfigError(
            f"study {s.name}: no table.json in {' or '.join(map(str, {p.parent for p in found}))} to take the speed "
            "from; aggregate once with --aggregate-only (it measures the speed)"
        )
    old = json.loads(path.read_text())
    speed = {r["label"]: {k: r[k] for k in ("latency_ms", "throughput_img_s") if r.get(k)} for r in old["rows"]}
    plan = with_extra_seeds(plan, read_finished(plan))
    return write_report(plan, *point_rows(plan, read_finished(plan), speed), old["environment"])


def run_study(plan: Plan, report: Report | None = None) -> Path:
    """Check the budget, train every run not finished yet (one after another), then the seeds the seed rule adds
    (decided from the first seeds, the budget checked again first), aggregate; returns table.md."""
    check_budget(plan)
    with grid_lock(plan.study.study_dir):
        summaries = run_grid(plan, report)
        extended = with_extra_seeds(plan, summaries)
        if extended.extra:
            check_budget(extended)
            summaries = run_grid(extended, report)
    return aggregate(extended, summaries)
