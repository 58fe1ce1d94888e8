"""``hybridvision study``: the papers' design claims in miniature. A grid of training runs (points x seeds), each
resumable, then one table (top-1 mean ± std, params, MACs, train img/s, inference speed, a verdict against the
baseline) and one plot (accuracy against throughput).

    plan = make_plan(load_study("configs/study/ascan_layouts.yaml"))
    check_budget(plan)            # refuses a grid over its stated budget, before anything starts
    table = run_study(plan)       # trains what is missing, then aggregates; re-running continues the grid
"""

from __future__ import annotations

from pathlib import Path

from ..env import environment
from .aggregate import point_rows
from .config import PointConfig, SpeedConfig, StudyConfig, load_study
from .grid import Plan, Point, Report, check_budget, grid_lock, is_finished, make_plan, run_grid
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
    "run_grid",
    "run_study",
]


def aggregate(plan: Plan, summaries: dict | None = None) -> Path:
    """Measure every point's speed (one process, interleaved) and write the table and plot; returns table.md.

    ``summaries`` default to the finished runs on disk (points without one appear with n = 0).
    """
    if summaries is None:
        summaries = run_grid(plan, only_finished=True)
    speed = measure_speed(plan)
    env = environment(speed_device(plan.study.speed))
    return write_report(plan, point_rows(plan, summaries, speed), env)


def run_study(plan: Plan, report: Report | None = None) -> Path:
    """Check the budget, train every run not finished yet (one after another), aggregate; returns table.md."""
    check_budget(plan)
    with grid_lock(plan.study.study_dir):
        summaries = run_grid(plan, report)
    return aggregate(plan, summaries)
