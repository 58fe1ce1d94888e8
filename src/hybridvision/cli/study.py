"""``hybridvision study CONFIG``: a grid of training runs (points x seeds), then one table and one plot.

    hybridvision study configs/study/ascan_layouts.yaml --dry-run   # points, params, MACs, time estimate
    hybridvision study configs/study/ascan_layouts.yaml             # run (or continue) the grid, aggregate
    hybridvision study configs/study/ascan_blocks.yaml --seeds 0,1 --recipe.epochs 2 --run_minutes 5
    hybridvision study configs/study/families.yaml --aggregate-only # the table of the runs finished so far
    hybridvision study configs/study/families.yaml --rejudge        # the verdicts again: no training, no timing

Every run is resumable and finished runs are never retrained: interrupt the study (Ctrl-C checkpoints the
running run) and run the same command again to continue. A grid estimated to take longer than the study's
``budget_minutes`` is refused before it starts. After the study's seeds, the pre-registered seed rule
(``extra_seeds``) adds seeds to the points of close comparisons; ``--dry-run`` lists them, read from the records.
"""

from __future__ import annotations

import argparse

from ..config import ConfigError, describe_fields, parse_overrides
from ..engine.signals import Interrupted
from ..study import Plan, Point, StudyConfig, read_finished
from .common import console, table

ACCEPTS_OVERRIDES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="study YAML (configs/study/*.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved grid and time estimate, then exit")
    parser.add_argument("--aggregate-only", action="store_true", help="train nothing: table of the finished runs")
    parser.add_argument(
        "--rejudge", action="store_true", help="train and time nothing: the table again, speed from its table.json"
    )
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
        seeds = plan.seeds_of(p.label)
        done = sum(plan.finished_dir(p, seed) is not None and (p.label, seed) not in refused for seed in seeds)
        bad = sum((p.label, seed) in refused for seed in seeds)
        ratio = p.params / plan.point(p.baseline).params - 1
        versus = "-" if p.label == p.baseline else f"{ratio:+.1%} vs {p.baseline}"
        design = p.note or ", ".join(f"{k}={v}" for k, v in p.kwargs.items()) or "-"
        params = f"{p.params / 1e6:.3f}M" + (" (matched)" if p.matched else "")
        dims = ",".join(map(str, getattr(get_config(p.model, **p.kwargs), "dims", ())))
        runs = f"{done}/{len(seeds)}" + (f" ({bad} refused)" if bad else "")
        rows.append([p.label, p.model, design, dims, params, versus, f"{p.macs / 1e6:.1f}", runs])
    cols = ["point", "model", "design", "dims", "params", "params vs baseline", "MMACs", "runs done"]
    console.print(table(f"study {s.name}: {s.study_dir}", cols, rows))
    for p in plan.points:
        if p.same_runs_as:
            found = sum(plan.shared_dir(p, seed) == plan.finished_dir(p, seed) for seed in s.seeds)
            console.print(f"{p.label}: runs read from {p.same_runs_as} ({found}/{len(s.seeds)} there)")
    print_seed_rule(plan)
    if any(p.matched for p in plan.points):
        console.print(f"matched points: widths scaled to within ±{s.param_tolerance:.0%} of their baseline's params")
    total, left = plan.estimate_minutes(), plan.estimate_minutes(only_missing=True)
    console.print(
        f"{len(plan.runs)} runs ({len(s.points)} points x seeds {','.join(map(str, s.seeds))}{_extra(plan)}), each "
        f"~{plan.run_minutes:g} min ({_length(plan)} + {s.overhead_minutes:g} overhead); "
        f"speed {plan.speed_minutes:.1f} min. Estimate {total:.0f} min ({total / 60:.1f} h), {left:.0f} min left; "
        f"stated budget {s.budget_minutes:g} min: {'within' if total <= s.budget_minutes else 'OVER'}"
    )
    for why in refused.values():
        console.print(f"refused: {why}", markup=False, soft_wrap=True)
    return list(refused.values())


def print_seed_rule(plan: Plan) -> None:
    """The seed rule and what it decided from the first seeds' records: which points get more seeds, and why."""
    from ..study.seeds import seed_rule

    s, rule = plan.study, plan.study.extra_seeds
    if not (rule.within_sd and rule.seeds > len(s.seeds)):
        return
    summaries = read_finished(plan)
    console.print(
        f"seed rule: a comparison within {rule.within_sd:g} pooled SDs after seeds {','.join(map(str, s.seeds))} "
        f"gets {rule.seeds} seeds for both points"
    )
    for e in seed_rule(s, summaries):
        if e["close"] is None:
            console.print(f"  {e['a']} vs {e['b']}: first seeds not all finished, undecided")
        else:
            ratio = abs(e["diff"]) / e["pooled_sd"] if e["pooled_sd"] else float("inf")
            verdict = f"close, {rule.seeds} seeds" if e["close"] else "not close"
            console.print(f"  {e['a']} vs {e['b']}: |{e['diff']:+.2f}| = {ratio:.2f} pooled SDs: {verdict}")
    extra = ", ".join(f"{label} (seeds {','.join(map(str, seeds))})" for label, seeds in plan.extra.items())
    console.print(f"  more seeds for: {extra or 'none'}")


def _extra(plan: Plan) -> str:
    extra = sum(len(seeds) for seeds in plan.extra.values())
    return f" + {extra} by the seed rule" if extra else ""


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
    from ..study import aggregate, check_budget, load_study, make_plan, rejudge, run_study, with_extra_seeds

    plan = make_plan(load_study(args.config, parse_overrides(args.overrides)))
    plan = with_extra_seeds(plan, read_finished(plan))  # the seed rule, as far as the records decide it
    if args.rejudge:
        console.print(f"table: {rejudge(plan)}")
        return 0
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
