"""Where a resumed run continues from, and whether it is the same run: the checks before any work is redone."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import yaml

from ..checkpoint import CheckpointError
from ..config import ConfigError, flatten, to_dict
from .checkpoint import TrainState, checkpoint_dirs, latest_good, load_checkpoint, verify
from .config import RunConfig

log = logging.getLogger(__name__)


def resume_point(cfg: RunConfig, run_dir: Path) -> TrainState | None:
    """The newest usable checkpoint of ``run_dir`` when resuming; None to start at step 0.

    ``--resume auto`` on a run that never wrote a checkpoint starts it again (saying so); a run whose
    checkpoints are all unusable is an error naming each problem, never a silent start from step 0.
    """
    if not cfg.resume:
        return None
    good = latest_good(run_dir)
    if good is not None:
        return load_checkpoint(good)
    found = checkpoint_dirs(run_dir)
    if found:
        problems = "; ".join(f"{d.name}: {verify(d)}" for d in found)
        raise CheckpointError(
            f"--resume {cfg.resume}: {run_dir} has checkpoints but none is usable ({problems}). "
            f"Start the run again under another --run_name, or delete {run_dir}/checkpoints to restart it from step 0"
        )
    if cfg.resume != "auto":
        raise CheckpointError(f"--resume {cfg.resume}: {run_dir} has no checkpoint to resume from")
    if (run_dir / "config.yaml").is_file():
        log.warning("--resume auto: %s stopped before its first checkpoint; starting it from step 0", run_dir)
    return None


def check_same_run(cfg: RunConfig, run_dir: Path) -> None:
    """Raise when resuming ``run_dir`` with settings that change what it trains (the keys and both values named).

    Keys in ``type(cfg).RESUMABLE`` may change; keys only one side knows (a newer release's fields) are skipped.
    """
    path = run_dir / "config.yaml"
    if not cfg.resume or not path.is_file():
        return
    changes = config_changes(cfg, run_dir, type(cfg).RESUMABLE)
    if changes:
        raise ConfigError(
            f"--resume {cfg.resume}: {run_dir} was started with other settings ({', '.join(changes)}). Resume with "
            f"the run's own settings (leave --config out: {path} is read), or start a new run (--init-from "
            f"{run_dir} to begin from its weights)"
        )


def config_changes(cfg: RunConfig, run_dir: Path, may_change: frozenset[str]) -> list[str]:
    """The settings ``run_dir/config.yaml`` holds that differ from ``cfg``, as "key: saved -> now" (none: []).

    Keys in ``may_change`` are not compared; keys only one side knows (a newer release's fields) are skipped.
    """
    path = run_dir / "config.yaml"
    if not path.is_file():
        return []
    raw, current = yaml.safe_load(path.read_text()) or {}, to_dict(cfg)
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
