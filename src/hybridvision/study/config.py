"""Typed study configuration: a grid of training runs (points x seeds) sharing one training recipe.

A study YAML names a base training recipe (``configs/train/...yaml``), the recipe overrides every run shares,
the points (a registered model plus ``create_model`` overrides), the seeds and the stated time budget of the
whole grid. ``hybridvision study CONFIG --key value`` overrides any field (``--seeds 0,1``,
``--recipe.epochs 2``). Studies budget runs in epochs (``recipe.budget_minutes: 0``), so that a run's accuracy
does not depend on how fast the host happens to be; ``run_minutes`` states a run's expected time for the budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..classify import TrainConfig
from ..config import ConfigError, at_least, check, flatten, from_dict, load_file, parse_device, replace, resolve
from ..registry import get_entry

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # study names and point labels become directory names
# Fields each run sets itself: the recipe may not (they name or place the runs, or are the points' choice).
PER_RUN = ("model", "model_kwargs", "seed", "out_dir", "run_name", "resume", "init_from")


@dataclass(frozen=True)
class PointConfig:
    """One point of the grid: a registered model and its overrides, trained once per seed."""

    label: str  # names the point's runs: <label>-s<seed>
    model: str  # a registered model name
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # create_model overrides (layout, conv_block ...)
    note: str = ""  # what the point stands for (the paper's name for it), shown in the table
    baseline: str = ""  # label of the point this one is compared with (and matched to); "" = the reference
    match_params: bool | None = None  # scale widths to the baseline's params (None = the study's match_params)
    # Another study's records of exactly these runs, "{seed}" standing for the seed (e.g.
    # results/study/study_ascan_layouts/runs/asym-s{seed}): a seed found there is read, not trained again. Its saved
    # config must match this study's run (the model, overrides and recipe); a difference is an error naming it.
    same_runs_as: str = ""

    def __post_init__(self) -> None:
        check(NAME.match(self.label) is not None, f"point label {self.label!r} must be letters, digits, _ . + -")
        get_entry(self.model)  # an unknown name fails here, with the closest names
        check(
            not self.same_runs_as or "{seed}" in self.same_runs_as,
            f"point {self.label}: same_runs_as {self.same_runs_as!r} must contain {{seed}} where the seed goes "
            "(e.g. results/study/study_ascan_layouts/runs/asym-s{seed})",
        )


@dataclass(frozen=True)
class SpeedConfig:
    """Inference speed of every point, measured at the end in one process, interleaved round after round."""

    batch_size: int = 64  # throughput batch (latency is always batch 1)
    rounds: int = 5  # every point is timed once per round; the order reverses every other round
    seconds: float = 0.5  # timed seconds per point, batch size and round
    device: str = "cpu"  # fp32, eval mode, channels_last
    threads: int = 0  # torch threads while timing (0 = torch's default)

    def __post_init__(self) -> None:
        at_least(self, 1, "batch_size", "rounds", prefix="speed.")
        at_least(self, 0, "seconds", "threads", prefix="speed.")
        parse_device(self.device, "speed.device")


@dataclass(frozen=True)
class ExtraSeedsConfig:
    """The pre-registered seed rule: a comparison whose |difference| is within ``within_sd`` pooled seed SDs after
    the study's ``seeds`` gets more seeds, for both its points (the baseline included), up to ``seeds`` each.

    Decided from the first seeds only, so the set of points it sends to more seeds never changes once they run.
    The extra seeds count up from the largest of the study's seeds (seeds 0, 1, 2 and ``seeds: 5`` add 3, 4).
    """

    within_sd: float = 0.0  # a comparison is close when |diff| <= within_sd x its pooled SD (0 = no rule)
    seeds: int = 0  # seeds per point of a close comparison, baseline included (0 = no rule)

    def __post_init__(self) -> None:
        at_least(self, 0, "within_sd", "seeds", prefix="extra_seeds.")


@dataclass(frozen=True)
class StudyConfig:
    """A grid of classification runs (points x seeds), each resumable, then one table and one plot."""

    name: str = ""  # names the study's directory: out_dir/name
    base_recipe: str = ""  # a TrainConfig YAML the runs start from ("" = TrainConfig's defaults)
    recipe: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides every run shares (dotted or nested)
    points: tuple[PointConfig, ...] = ()
    seeds: tuple[int, ...] = (0, 1)
    reference: str = ""  # label of the point the others are compared with ("" = the first point)
    match_params: bool = False  # scale each point's widths so its params are within param_tolerance of its baseline
    param_tolerance: float = 0.10  # relative
    num_classes: int = 10  # classes of the data set (params and MACs are counted before any data is read)
    out_dir: str = "runs/study"  # runs go to out_dir/name/<label>-s<seed>
    results_dir: str = ""  # also copy the table, plot and JSON here (e.g. results/study/study_<name>); "" = no copy
    budget_minutes: float = 180.0  # the stated time of the whole grid: refused before starting when over it
    # Estimated training minutes of one run when the recipe is budgeted in epochs (recipe.budget_minutes 0), which
    # makes every run see the same data whatever the host's speed; a time-budgeted recipe uses its own budget.
    run_minutes: float = 0.0
    overhead_minutes: float = 1.0  # per run beyond its training (start-up, data, final evaluation)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    # The test (docs/study.md): Welch's two-sided t-test at alpha, Holm-corrected over the study's comparisons;
    # "equivalent" only by TOST within the margin, stated here before the runs (0 = no equivalence test).
    alpha: float = 0.05  # family-wise significance level within the study
    equivalence_margin_pp: float = 0.0  # TOST margin on top-1, percentage points; every committed study sets it
    # Pairs [a, b] judged like a point against its baseline (a - b), beyond each point against its own baseline.
    comparisons: tuple[tuple[str, ...], ...] = ()
    extra_seeds: ExtraSeedsConfig = field(default_factory=ExtraSeedsConfig)  # the pre-registered seed rule

    def __post_init__(self) -> None:
        check(
            NAME.match(self.name) is not None, f"name {self.name!r}: give the study a name (letters, digits, _ . + -)"
        )
        check(bool(self.points), "points is empty: list at least one {label, model, model_kwargs}")
        labels = [p.label for p in self.points]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        check(not twice, f"point labels must be unique; {twice} appear more than once")
        check(bool(self.seeds) and len(set(self.seeds)) == len(self.seeds), f"seeds must be distinct, got {self.seeds}")
        check(min(self.seeds) >= 0, f"seeds must be >= 0, got {self.seeds}")
        for label in (self.reference, *(p.baseline for p in self.points)):
            check(label in ("", *labels), f"no point is labelled {label!r}; labels are {', '.join(labels)}")
        for pair in self.comparisons:
            check(
                len(pair) == 2 and pair[0] != pair[1] and set(pair) <= set(labels),
                f"comparisons: {list(pair)} must name two different points [a, b]; labels are {', '.join(labels)}",
            )
        check(0 < self.alpha < 1, f"alpha must be in (0, 1), got {self.alpha}")
        at_least(self, 0, "equivalence_margin_pp")
        check(0 < self.param_tolerance < 1, f"param_tolerance must be in (0, 1), got {self.param_tolerance}")
        at_least(self, 1, "num_classes")
        at_least(self, 0, "budget_minutes", "run_minutes", "overhead_minutes")
        taken = sorted(k.split(".")[0] for k in flatten(self.recipe) if k.split(".")[0] in PER_RUN)
        check(not taken, f"recipe sets {taken}, which each run sets itself: use points, seeds and out_dir instead")

    @property
    def reference_label(self) -> str:
        return self.reference or self.points[0].label

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every comparison the study judges, (a, b) for a - b: each point against its baseline, in the order of
        the points, then the declared ``comparisons`` not among them."""
        pairs = [(p.label, self.baseline_of(p)) for p in self.points if p.label != self.baseline_of(p)]
        return pairs + [(a, b) for a, b in self.comparisons if (a, b) not in pairs]

    def baseline_of(self, point: PointConfig) -> str:
        return point.baseline or self.reference_label

    def matched(self, point: PointConfig) -> bool:
        """Whether ``point``'s widths are scaled to its baseline's params (never the reference's own)."""
        wanted = self.match_params if point.match_params is None else point.match_params
        return wanted and point.label != self.baseline_of(point)

    @property
    def study_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """Defaults < the study YAML < ``--key value`` overrides."""
    study = from_dict(StudyConfig, load_file(path))
    return replace(study, **overrides) if overrides else study


def base_recipe(study: StudyConfig) -> TrainConfig:
    """The training recipe every run shares: ``base_recipe`` (if any) with the study's ``recipe`` on top."""
    if study.base_recipe and not Path(study.base_recipe).is_file():
        raise ConfigError(
            f"base_recipe {study.base_recipe!r} does not exist; paths are read from the current directory "
            "(run from the repository root, or give an absolute path)"
        )
    recipe = resolve(TrainConfig, study.base_recipe or None, flatten(study.recipe))
    if not recipe.budget_minutes and not study.run_minutes:
        raise ConfigError(
            f"study {study.name}: the recipe is budgeted in epochs ({recipe.epochs}), so the grid's time is unknown; "
            "state run_minutes (the expected training minutes of one run) so it can be checked against "
            "budget_minutes"
        )
    return recipe
