"""The resolved grid of a study: its points (widths matched, params and MACs counted), its runs, their time.

``make_plan`` does everything that needs no data and no training (meta-device models only), so ``--dry-run``
is fast and a grid over its stated budget is refused before anything starts. ``run_grid`` then trains the runs
one after another; a finished run (``summary.json`` and ``final/`` present) is read, never retrained, and an
interrupted one continues from its newest checkpoint (``resume="auto"``).

With ``results_dir`` set, every finished run also leaves a record there, ``results_dir/runs/<label>-s<seed>/``
(its summary, config and logs: small files, no weights). A run with a record is finished too, so a grid committed
with its records continues on another machine or a fresh clone, where ``out_dir`` is empty: only the runs without
a record are trained. Delete a record to train that run again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..classify import TrainConfig
from ..config import ConfigError
from ..engine.resume import config_changes
from ..engine.rundir import RunDir, RunResult
from ..macs import model_cost
from .config import PointConfig, StudyConfig, base_recipe
from .match import count_point_params, match_widths
from .seeds import extra_seeds

SPEED_SETUP_S = 0.3  # per point and batch size: warm-up and the first call, beyond the timed seconds


@dataclass(frozen=True)
class Point:
    """A point as it will be trained: the overrides passed to create_model, its params and MACs at the input."""

    label: str
    model: str
    kwargs: dict[str, Any]  # create_model overrides, widths included when matched
    params: int
    macs: int
    baseline: str
    matched: bool
    note: str = ""
    same_runs_as: str = ""  # another study's records of these runs ("{seed}" = the seed), or ""


@dataclass(frozen=True)
class Plan:
    study: StudyConfig
    recipe: TrainConfig  # what every run shares
    points: tuple[Point, ...]
    # Seeds the seed rule adds beyond the study's, by point label (``with_extra_seeds``); empty before it decides.
    extra: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def seeds_of(self, label: str) -> tuple[int, ...]:
        """The seeds a point is trained with: the study's, then any the seed rule added."""
        return (*self.study.seeds, *self.extra.get(label, ()))

    def run_config(self, point: Point, seed: int) -> TrainConfig:
        return dataclasses.replace(
            self.recipe,
            model=point.model,
            model_kwargs=dict(point.kwargs),
            seed=seed,
            out_dir=str(self.study.study_dir),
            run_name=f"{point.label}-s{seed}",
            resume="auto",
        )

    def run_dir(self, point: Point, seed: int) -> Path:
        return self.study.study_dir / f"{point.label}-s{seed}"

    def record_dir(self, point: Point, seed: int) -> Path | None:
        """Where a finished run's record is kept (``results_dir/runs/<label>-s<seed>``); None without results_dir."""
        results = self.study.results_dir
        return Path(results) / "runs" / f"{point.label}-s{seed}" if results else None

    def finished_dir(self, point: Point, seed: int) -> Path | None:
        """The run's directory when finished, else its record, else another study's record of it, else None."""
        run_dir, record = self.run_dir(point, seed), self.record_dir(point, seed)
        if is_finished(run_dir):
            return run_dir
        if record is not None and has_record(record):
            return record
        shared = self.shared_dir(point, seed)
        return shared if shared is not None and has_record(shared) else None

    def shared_dir(self, point: Point, seed: int) -> Path | None:
        """Another study's record of this run (``same_runs_as``), or None when the point trains its own."""
        return Path(point.same_runs_as.replace("{seed}", str(seed))) if point.same_runs_as else None

    @property
    def runs(self) -> list[tuple[Point, int]]:
        return [(p, s) for p in self.points for s in self.seeds_of(p.label)]

    def point(self, label: str) -> Point:
        return next(p for p in self.points if p.label == label)

    # ---- Time

    @property
    def train_minutes(self) -> float:
        """Estimated training minutes of one run: the recipe's time budget, else the study's run_minutes."""
        return self.recipe.budget_minutes or self.study.run_minutes

    @property
    def run_minutes(self) -> float:
        """Estimated wall minutes of one run: its training plus the per-run overhead."""
        return self.train_minutes + self.study.overhead_minutes

    @property
    def speed_minutes(self) -> float:
        s = self.study.speed
        return len(self.points) * 2 * s.rounds * (s.seconds + SPEED_SETUP_S) / 60

    def estimate_minutes(self, only_missing: bool = False) -> float:
        runs = [r for r in self.runs if not (only_missing and self.finished_dir(*r))]
        return len(runs) * self.run_minutes + self.speed_minutes


# ---- Resolving the points


def _instance_kwargs(study: StudyConfig, recipe: TrainConfig) -> dict[str, Any]:
    """The fields the training task sets on every model (the data's classes and channels, the input size)."""
    return {"num_classes": study.num_classes, "in_chans": recipe.data.channels, "img_size": recipe.img_size}


def _resolve(
    study: StudyConfig, recipe: TrainConfig, cfg: PointConfig, done: dict[str, Point], chain: tuple[str, ...] = ()
) -> Point:
    """One point (its baseline first, when its widths are matched to the baseline's params)."""
    if cfg.label in done:
        return done[cfg.label]
    inst = _instance_kwargs(study, recipe)
    kwargs = {**cfg.model_kwargs, **inst}
    baseline = study.baseline_of(cfg)
    matched = study.matched(cfg)
    if matched:
        if cfg.label in chain:
            raise ValueError(f"points {' -> '.join((*chain, cfg.label))} are matched in a circle; break it")
        target = _resolve(study, recipe, _by_label(study, baseline), done, (*chain, cfg.label)).params
        kwargs, params = match_widths(cfg.model, kwargs, target)
        _check_tolerance(study, cfg, params, target)
    else:
        params = count_point_params(cfg.model, kwargs)
    macs = model_cost(cfg.model, **kwargs).macs
    own = {k: v for k, v in kwargs.items() if k not in inst}
    done[cfg.label] = Point(cfg.label, cfg.model, own, params, macs, baseline, matched, cfg.note, cfg.same_runs_as)
    return done[cfg.label]


def _by_label(study: StudyConfig, label: str) -> PointConfig:
    return next(p for p in study.points if p.label == label)


def _check_tolerance(study: StudyConfig, cfg: PointConfig, params: int, target: int) -> None:
    off = params / target - 1
    if abs(off) > study.param_tolerance:
        raise ValueError(
            f"point {cfg.label!r}: no width scaling of {cfg.model} comes within {study.param_tolerance:.0%} of "
            f"{target:,} params (closest {params:,}, {off:+.1%}). Set its widths by hand in model_kwargs with "
            "match_params: false, or widen param_tolerance"
        )


def make_plan(study: StudyConfig) -> Plan:
    """The study resolved: shared recipe, points with matched widths, params and MACs (meta device, no data)."""
    recipe = base_recipe(study)
    done: dict[str, Point] = {}
    points = tuple(_resolve(study, recipe, p, done) for p in study.points)
    return Plan(study, recipe, points)


def read_finished(plan: Plan) -> dict[tuple[str, int], dict[str, Any]]:
    """The summaries of the grid's finished runs (or records) by (label, seed); reads only, trains nothing."""
    found = ((p, s, plan.finished_dir(p, s)) for p, s in plan.runs)
    return {(p.label, s): RunDir(d).read_summary() for p, s, d in found if d is not None}


def with_extra_seeds(plan: Plan, summaries: Mapping[tuple[str, int], Mapping[str, Any]]) -> Plan:
    """The plan with the seeds the study's seed rule adds, decided from the first seeds' ``summaries``."""
    return dataclasses.replace(plan, extra=extra_seeds(plan.study, summaries))


def check_budget(plan: Plan) -> None:
    """Raise before anything starts when the whole grid is estimated to take longer than the study's budget."""
    s = plan.study
    total = plan.estimate_minutes()
    if total > s.budget_minutes:
        raise ValueError(
            f"study {s.name} would take about {total:.0f} min ({len(s.points)} points x {len(s.seeds)} seeds"
            f"{_extra_runs(plan)}, each ({plan.train_minutes:g} min training + {s.overhead_minutes:g} min "
            f"overhead), + {plan.speed_minutes:.1f} min speed), over its stated budget_minutes of "
            f"{s.budget_minutes:g}. "
            "Train less per run (--recipe.epochs, or --recipe.budget_minutes for a time budget), use fewer seeds "
            "or points, or raise --budget_minutes if the time is there"
        )


def _extra_runs(plan: Plan) -> str:
    extra = sum(len(seeds) for seeds in plan.extra.values())
    return f" + {extra} runs from the seed rule" if extra else ""


# ---- Running


def is_finished(run_dir: Path) -> bool:
    return RunDir(run_dir).is_finished()


def has_record(record: Path) -> bool:
    folder = RunDir(record)
    return folder.summary_file.is_file() and folder.config_file.is_file()


def write_record(run_dir: Path, record: Path) -> None:
    """Copy a finished run's summary, config, model description and logs to its record, each file atomically, the
    summary last."""
    RunDir(run_dir).copy_record(record)


@contextlib.contextmanager
def grid_lock(study_dir: Path) -> Iterator[None]:
    """Hold ``study_dir/.lock`` (this process's id) while training, so a second process never trains the same runs.

    A lock left by a process that no longer exists (killed) is taken over.
    """
    study_dir.mkdir(parents=True, exist_ok=True)
    path = study_dir / ".lock"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            pid = int(path.read_text().strip() or 0)
            if _alive(pid):
                raise FileExistsError(
                    f"another process (pid {pid}) is running the grid in {study_dir}; wait for it to end or stop it "
                    f"(a stale {path} left by a killed process is removed automatically)"
                ) from None
            path.unlink(missing_ok=True)
    else:
        raise FileExistsError(f"could not take the lock {path}; remove it if no study is running there")
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _changes(cfg: TrainConfig, run_dir: Path, finished: bool) -> str:
    """The settings ``run_dir`` was trained with that differ from ``cfg`` ("" when none).

    A finished run (or record) is also held to ``max_steps``, which an unfinished run may change on resume: a
    record cut short by it is not a full run. Records may come from another machine, where a built-in data set
    lives elsewhere: for those ``data.root`` may differ (``data.dataset`` may not).
    """
    may_change = type(cfg).RESUMABLE
    if finished:
        may_change = (may_change - {"max_steps"}) | ({"data.root"} if cfg.data.dataset != "folder" else set())
    return ", ".join(config_changes(cfg, run_dir, may_change))


def check_runs(plan: Plan, require_shared: bool = True) -> None:
    """Before anything trains: every existing run and record of the grid was made with the grid's settings, and
    (``require_shared``) every point that reads another study's runs finds them there. Raises on the first that
    is not (``refusals`` lists them all)."""
    for _, problem in refusals(plan, require_shared):
        raise ConfigError(problem)


def refusals(plan: Plan, require_shared: bool = True) -> Iterator[tuple[tuple[Point, int], str]]:
    """((point, seed), why) for each run of the grid that the grid would refuse to continue (``check_runs``)."""
    name = plan.study.name
    for point, seed in plan.runs:
        cfg, run_dir = plan.run_config(point, seed), plan.run_dir(point, seed)
        done, shared = plan.finished_dir(point, seed), plan.shared_dir(point, seed)
        if run_dir.is_dir() and (changes := _changes(cfg, run_dir, finished=done == run_dir)):
            yield (
                (point, seed),
                (
                    f"study {name}: {run_dir} was trained with other settings ({changes}). Undo the change "
                    "to continue this grid, or start a separate one with another --name or --out_dir"
                ),
            )
        elif done is not None and done == shared and (changes := _changes(cfg, done, finished=True)):
            yield (
                (point, seed),
                (
                    f"study {name}: point {point.label} reads seed {seed} from {done} (same_runs_as), which "
                    f"was trained with other settings ({changes}). Give the point that run's settings, or remove "
                    "same_runs_as to train it in this study"
                ),
            )
        elif done is not None and done not in (run_dir, shared) and (changes := _changes(cfg, done, finished=True)):
            yield (
                (point, seed),
                (
                    f"study {name}: the record {done} was trained with other settings ({changes}). Undo the "
                    "change to continue this grid, delete the record to train that run again, or start a separate "
                    "grid with another --name and --results_dir"
                ),
            )
        elif done is None and shared is not None and require_shared:
            yield (
                (point, seed),
                (
                    f"study {name}: point {point.label} reads its runs from another study's records "
                    f"(same_runs_as), but {shared} has none for seed {seed}. Run that study first (paths are read from "
                    "the current directory: run from the repository root), or remove same_runs_as from the point to "
                    "train its runs in this study"
                ),
            )


def train(cfg: TrainConfig) -> RunResult:
    """Train one run of the grid (the classification task loads here: planning or reading a study never imports it)."""
    from ..classify.task import train as train_classifier

    return train_classifier(cfg)


# report(index, total, point, seed, status) with status "done" (already finished), "start" or "end"
Report = Callable[[int, int, Point, int, str], None]


def run_grid(
    plan: Plan, report: Report | None = None, only_finished: bool = False
) -> dict[tuple[str, int], dict[str, Any]]:
    """Train every run not yet finished, one after another; returns each run's summary by (label, seed).

    ``only_finished``: train nothing, return the summaries of the runs already finished.
    """
    check_runs(plan, require_shared=not only_finished)  # every mismatch found before the first run trains
    summaries = {}
    runs = plan.runs
    for i, (point, seed) in enumerate(runs):
        cfg, run_dir, record = plan.run_config(point, seed), plan.run_dir(point, seed), plan.record_dir(point, seed)
        done = plan.finished_dir(point, seed)
        if done is not None:
            if record is not None and done == run_dir and not has_record(record):
                write_record(run_dir, record)  # finished before records were kept, or results_dir set later
            summaries[point.label, seed] = RunDir(done).read_summary()
            if report:
                report(i, len(runs), point, seed, "done")
            continue
        if only_finished:
            continue
        if report:
            report(i, len(runs), point, seed, "start")
        summaries[point.label, seed] = train(cfg).summary
        if record is not None:
            write_record(run_dir, record)
        if report:
            report(i, len(runs), point, seed, "end")
    return summaries
