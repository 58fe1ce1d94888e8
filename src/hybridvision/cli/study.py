"""``hybridvision study CONFIG``: a grid of training runs (points x seeds), then one table and one plot.

    hybridvision study configs/study/ascan_layouts.yaml --dry-run   # points, params, MACs, time estimate
    hybridvision study configs/study/ascan_layouts.yaml             # run (or continue) the grid, aggregate
    hybridvision study configs/study/ascan_blocks.yaml --seeds 0,1 --recipe.epochs 2 --run_minutes 5
    hybridvision study configs/study/families.yaml --aggregate-only # the table of the runs finished so far

Every run is resumable and finished runs are never retrained: interrupt the study (Ctrl-C checkpoints the
running run) and run the same command again to continue. A grid estimated to take longer than the study's
``budget_minutes`` is refused before it starts.
"""

from __future__ import annotations

import argparse

from ..config import ConfigError, describe_fields, parse_overrides
from ..engine.signals import Interrupted
from ..study import Plan, Point, StudyConfig
from .common import console, table

ACCEPTS_OVERRIDES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="study YAML (configs/study/*.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved grid and time estimate, then exit")
    parser.add_argument("--aggregate-only", action="store_true", help="train nothing: table of the finished runs")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "config keys (set with --key value):\n" + "\n".join(describe_fields(StudyConfig))


def print_plan(plan: Plan) -> list[str]:
    """The grid as a table and the time estimate; returns why runs would be refused (each also printed)."""
    from ..registry import get_config
    from ..study.grid import refusals

    s = plan.study
    refused = {(p.label, seed): why for (p, seed), why in refusals(plan)}
    rows = []
    for p in plan.points:
        done = sum(plan.finished_dir(p, seed) is not None and (p.label, seed) not in refused for seed in s.seeds)
        bad = sum((p.label, seed) in refused for seed in s.seeds)
        ratio = p.params / plan.point(p.baseline).params - 1
        versus = "-" if p.label == p.baseline else f"{ratio:+.1%} vs {p.baseline}"
        design = p.note or ", ".join(f"{k}={v}" for k, v in p.kwargs.items()) or "-"
        params = f"{p.params / 1e6:.3f}M" + (" (matched)" if p.matched else "")
        dims = ",".join(map(str, getattr(get_config(p.model, **p.kwargs), "dims", ())))
        runs = f"{done}/{len(s.seeds)}" + (f" ({bad} refused)" if bad else "")
        rows.append([p.label, p.model, design, dims, params, versus, f"{p.macs / 1e6:.1f}", runs])
    cols = ["point", "model", "design", "dims", "params", "params vs baseline", "MMACs", "runs done"]
    console.print(table(f"study {s.name}: {s.study_dir}", cols, rows))
    for p in plan.points:
        if p.same_runs_as:
            found = sum(plan.shared_dir(p, seed) == plan.finished_dir(p, seed) for seed in s.seeds)
            console.print(f"{p.label}: runs read from {p.same_runs_as} ({found}/{len(s.seeds)} there)")
    if any(p.matched for p in plan.points):
        console.print(f"matched points: widths scaled to within ±{s.param_tolerance:.0%} of their baseline's params")
    total, left = plan.estimate_minutes(), plan.estimate_minutes(only_missing=True)
    console.print(
        f"{len(plan.runs)} runs ({len(s.points)} points x seeds {','.join(map(str, s.seeds))}), each "
        f"~{plan.run_minutes:g} min ({_length(plan)} + {s.overhead_minutes:g} overhead); "
        f"speed {plan.speed_minutes:.1f} min. Estimate {total:.0f} min ({total / 60:.1f} h), {left:.0f} min left; "
        f"stated budget {s.budget_minutes:g} min: {'within' if total <= s.budget_minutes else 'OVER'}"
    )
    for why in refused.values():
        console.print(f"refused: {why}", markup=False, soft_wrap=True)
    return list(refused.values())


def _length(plan: Plan) -> str:
    r = plan.recipe
    if r.budget_minutes:
        return f"{r.budget_minutes:g} min training"
    return f"{r.epochs} epochs ~{plan.train_minutes:g} min"


def _progress(index: int, total: int, point: Point, seed: int, status: str) -> None:
    name = f"[{index + 1}/{total}] {point.label}-s{seed}"
    if status == "done":
        console.print(f"{name}: finished earlier, read")
    elif status == "start":
        console.print(f"{name}: training {point.model}")


def run(args: argparse.Namespace) -> int:
    from ..study import aggregate, check_budget, load_study, make_plan, run_study

    plan = make_plan(load_study(args.config, parse_overrides(args.overrides)))
    refused = print_plan(plan)
    if args.dry_run:
        if refused:  # what the real run would stop at, found now
            raise ConfigError(f"study {plan.study.name}: {len(refused)} run(s) would be refused (listed above)")
        return 0
    if args.aggregate_only:
        console.print(f"table: {aggregate(plan)}")
        return 0
    check_budget(plan)
    try:
        path = run_study(plan, report=_progress)
    except Interrupted as e:
        console.print(f"study {plan.study.name} stopped: {e.run_dir} is checkpointed at step {e.step}")
        again = " ".join(["hybridvision study", args.config, *args.overrides])
        console.print(f"continue the grid with the same command: {again}")
        return e.exit_code
    console.print(f"table: {path}")
    return 0
