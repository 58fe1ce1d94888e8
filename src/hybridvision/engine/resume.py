"""Whether a run folder may be trained in, where a resumed run continues from, and whether it is the same run:
the checks before any work is done or redone."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError
from ..config import ConfigError, flatten, to_dict
from .checkpoint import TrainState, checkpoint_dirs, latest_good, load_checkpoint, problems
from .config import RunConfig
from .rundir import RunDir

log = logging.getLogger(__name__)


# What a resumed run's model must keep: the keys of model.json that decide what its weights mean.
MODEL_KEYS = ("task", "model", "overrides", "in_chans", "classes")


def named_run(cfg: RunConfig) -> RunDir | None:
    """The folder ``cfg`` names for its run: ``--resume RUN``, else ``out_dir/run_name``; None when auto-numbered."""
    if cfg.resume and cfg.resume != "auto":
        return RunDir(cfg.resume)
    if cfg.run_name:
        return RunDir.named(cfg.out_dir, cfg.run_name)
    return None


def check_run_folder(cfg: RunConfig) -> None:
    """The run's checks of its named folder (``check_reuse``, ``check_same_run``) without starting it: ``--dry-run``
    refuses what the run would."""
    run = named_run(cfg)
    if run is not None:
        check_reuse(cfg, run, warn=False)
        check_same_run(cfg, run)


def check_reuse(cfg: RunConfig, run: RunDir, warn: bool = True) -> None:
    """Raise when ``run`` exists and is not to be resumed: a folder that holds a run is never trained over.

    A folder in which no training step completed (it stopped or failed before its first) is reused, saying so.
    """
    path = run.path
    if cfg.resume or not path.exists():
        return
    if not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder; choose another --run_name or --out_dir")
    if run.is_run() and not run.trained():
        if warn:
            log.warning("%s holds a run that never completed a training step; starting it again", path)
        return
    if not run.is_run() and not any(path.iterdir()):
        return
    if run.is_finished():
        what, fix = "a finished run", f"Choose another --run_name, or delete {path} to train it again"
    elif run.is_run():
        what, fix = "an unfinished run", f"Continue it with --resume {path}, or choose another --run_name"
    else:
        what, fix = "files that are not a run", "Choose another --run_name or --out_dir"
    raise FileExistsError(f"{path} already holds {what}; nothing was written. {fix}")


def check_model(cfg: RunConfig, run: RunDir, now: dict[str, Any]) -> None:
    """Raise when the model a resumed run builds differs from the one its ``model.json`` records (keys named)."""
    path = run.model_file
    if not path.is_file():
        return  # a run from before model.json: its config.yaml was compared
    saved = run.description() or {}
    changes = [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in MODEL_KEYS if saved.get(k) != now.get(k)]
    if changes:
        raise ConfigError(
            f"--resume {cfg.resume}: {run.path} holds another model than this config builds ({'; '.join(changes)}), "
            f"so its checkpoints do not continue it. Resume with the run's own data and settings, or start a new run"
        )


def resume_point(cfg: RunConfig, run: RunDir) -> TrainState | None:
    """The newest usable checkpoint of ``run_dir`` when resuming; None to start at step 0.

    ``--resume auto`` on a run that never wrote a checkpoint starts it again (saying so); a run whose
    checkpoints are all unusable is an error naming each problem, never a silent start from step 0.
    """
    if not cfg.resume:
        return None
    run_dir = run.path
    good = latest_good(run_dir)
    if good is not None:
        return load_checkpoint(good)
    found = checkpoint_dirs(run_dir)
    if found:
        raise CheckpointError(
            f"--resume {cfg.resume}: {run_dir} has checkpoints but none is usable ({problems(found)}). "
            f"Start the run again under another --run_name, or delete {run_dir}/checkpoints to restart it from step 0"
        )
    if cfg.resume != "auto":
        raise CheckpointError(f"--resume {cfg.resume}: {run_dir} has no checkpoint to resume from")
    if run.config_file.is_file():
        log.warning("--resume auto: %s stopped before its first checkpoint; starting it from step 0", run_dir)
    return None


def check_same_run(cfg: RunConfig, run: RunDir) -> None:
    """Raise when resuming ``run_dir`` with settings that change what it trains (the keys and both values named).

    Keys in ``type(cfg).RESUMABLE`` may change; keys only one side knows (a newer release's fields) are skipped.
    """
    path = run.config_file
    if not cfg.resume or not path.is_file():
        return
    changes = config_changes(cfg, run.path, type(cfg).RESUMABLE)
    if changes:
        raise ConfigError(
            f"--resume {cfg.resume}: {run.path} was started with other settings ({', '.join(changes)}). Resume with "
            f"the run's own settings (leave --config out: {path} is read), or start a new run (--init-from "
            f"{run.path} to begin from its weights)"
        )


def config_changes(cfg: RunConfig, run_dir: Path, may_change: frozenset[str]) -> list[str]:
    """The settings ``run_dir``'s config.yaml holds that differ from ``cfg``, as "key: saved -> now" (none: []).

    Keys in ``may_change`` are not compared; keys only one side knows (a newer release's fields) are skipped.
    """
    raw = RunDir(run_dir).config_dict()
    if not raw:
        return []
    current = to_dict(cfg)
    # Free-form dict fields (model_kwargs) compare whole: a key only one side has is a difference, not a new field.
    free = [f.name for f in dataclasses.fields(cfg) if isinstance(getattr(cfg, f.name), dict) and f.name in raw]
    saved = {**flatten({k: v for k, v in raw.items() if k not in free}), **{k: raw[k] for k in free}}
    now = {**flatten({k: v for k, v in current.items() if k not in free}), **{k: current[k] for k in free}}
    keys = sorted(k for k in saved.keys() & now.keys() if k not in may_change and not _same(saved[k], now[k]))
    return [f"{k}: {saved[k]!r} -> {now[k]!r}" for k in keys]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b
