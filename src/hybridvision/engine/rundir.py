"""A run's folder: the only code that names its files, and the one way to read a run's model back.

Layout::

    RUN/config.yaml          the resolved config (``--resume`` reads and compares it)
    RUN/model.json           the model: registry name, overrides, input channels, task and what inference needs
                             (classes, noise schedule, text encoder ...); written when the model is built, before
                             the first step, so an unfinished run loads without the task's training code
    RUN/train_log.csv        loss, lr, samples/s every ``log_every`` steps
    RUN/eval_log.csv         the task's metrics of the model and its EMA after evaluated epochs
    RUN/tb/                  TensorBoard events (when installed)
    RUN/checkpoints/step_*/  full training state (``--resume``)
    RUN/final/               model.safetensors, model_ema.safetensors, config.json (the same description as
                             model.json; ``load_model``, ``--init-from``)
    RUN/summary.json         wall time, epochs, samples/s, metrics, environment (present: the run finished)

A reader asks ``open_model(path, task=...)`` for a run or a saved ``final/``-style folder and gets a
``SavedModel``: the folder holding the weights (``final/``, else the newest verified checkpoint) and the model's
description. Runs from before ``model.json`` existed are read through ``final/config.json``; an unfinished one
through the ``legacy`` reader its task passes (which knows its ``config.yaml``).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import CONFIG_NAME, EMA_WEIGHTS_NAME, CheckpointError
from ..config import ConfigError, dump_yaml, read_yaml, resolve
from ..factory import create_model
from ..fileio import atomic_write, save_json, save_text
from .checkpoint import CKPT_DIR, checkpoint_dirs, latest_good, problems
from .config import check_run_name


@dataclass(frozen=True)
class RunResult:
    """What ``engine.run`` returns: the run's folder and its summary."""

    run_dir: Path
    summary: dict[str, Any]
    is_main: bool = True  # False on the other processes of a torchrun job


class RunDir:
    """One run's folder (``RunDir(path)``): its files by name, its state, its model description."""

    CONFIG = "config.yaml"
    MODEL = "model.json"
    TRAIN_LOG = "train_log.csv"
    EVAL_LOG = "eval_log.csv"
    SUMMARY = "summary.json"
    FINAL = "final"
    CHECKPOINTS = CKPT_DIR
    TENSORBOARD = "tb"
    # A finished run's record (small files, no weights), in the order it is copied: the summary last marks it done.
    RECORD = (CONFIG, MODEL, TRAIN_LOG, EVAL_LOG, SUMMARY)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def named(cls, out_dir: str | Path, name: str) -> RunDir:
        """``out_dir/name``; a name that would leave ``out_dir`` is a ConfigError (``config.check_run_name``)."""
        check_run_name(out_dir, name)
        return cls(Path(out_dir) / name)

    def __str__(self) -> str:
        return str(self.path)

    # ---- Files

    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def model_file(self) -> Path:
        return self.path / self.MODEL

    @property
    def train_log(self) -> Path:
        return self.path / self.TRAIN_LOG

    @property
    def eval_log(self) -> Path:
        return self.path / self.EVAL_LOG

    @property
    def summary_file(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def final(self) -> Path:
        return self.path / self.FINAL

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    # ---- State

    def is_run(self) -> bool:
        """A training run's folder (it has its config or its model description)."""
        return self.config_file.is_file() or self.model_file.is_file()

    def is_finished(self) -> bool:
        return self.summary_file.is_file() and self.final.is_dir()

    def trained(self) -> bool:
        """Whether the run kept anything of a training step: a checkpoint, final weights, a logged step (steps
        neither logged nor checkpointed left nothing behind)."""
        if checkpoint_dirs(self.path) or self.final.exists() or self.summary_file.exists():
            return True
        if not self.train_log.is_file():
            return False
        with open(self.train_log, newline="") as f:
            return next(csv.DictReader(f), None) is not None

    # ---- Reading and writing

    def read_summary(self) -> dict[str, Any]:
        return json.loads(self.summary_file.read_text())

    def read_config(self, cls: type, task: str = "") -> Any:
        """The saved config as ``cls`` (None without one); ``task``: first check that the run is of that task."""
        if task:
            self.check_task(task)
        if not self.config_file.is_file():
            return None
        try:
            return resolve(cls, str(self.config_file))
        except ConfigError as e:
            raise ConfigError(f"{self.path} is not a {task or cls.__name__} run: its {self.CONFIG} says {e}") from None

    def config_dict(self) -> dict[str, Any]:
        """The saved config as plain YAML data ({} without one); a file that does not parse is one ConfigError line."""
        if not self.config_file.is_file():
            return {}
        return read_yaml(self.config_file.read_text(), str(self.config_file)) or {}

    def write_config(self, cfg: Any) -> None:
        save_text(dump_yaml(cfg), self.config_file)

    def write_model(self, description: dict[str, Any]) -> None:
        save_json(description, self.model_file)

    def write_summary(self, summary: dict[str, Any]) -> None:
        save_json(summary, self.summary_file)

    def description(self) -> dict[str, Any] | None:
        """The model description: ``model.json``, else (older runs) ``final/config.json``, else None."""
        for path in (self.model_file, self.final / CONFIG_NAME):
            if path.is_file():
                return _read_json(path)
        return None

    def task(self) -> str:
        """The task that made this run ("" when its description does not say)."""
        return task_of(self.description() or {})

    def check_task(self, expected: str) -> None:
        """Raise when the run is of another task than ``expected``, naming both."""
        found = self.task()
        if found and found != expected:
            raise CheckpointError(f"{self.path} is a {found} run, not a {expected} run")

    def copy_record(self, dest: str | Path, names: tuple[str, ...] = RECORD) -> None:
        """Copy ``names`` of the run's files that exist to ``dest``, each atomically, in order."""
        for name in names:
            src = self.path / name
            if src.is_file():
                atomic_write(Path(dest) / name, lambda tmp, src=src: shutil.copyfile(src, tmp))

    # ---- Weights

    def weights_dir(self) -> Path:
        """``final/``, else the newest verified checkpoint; a run with neither is a CheckpointError saying why."""
        if self.final.is_dir():
            return self.final
        good = latest_good(self.path)
        if good is not None:
            return good
        broken = checkpoint_dirs(self.path)
        if broken:
            raise CheckpointError(
                f"{self.path} has no final weights and its checkpoints are unusable ({problems(broken)})"
            )
        raise CheckpointError(
            f"{self.path} has no weights yet (no final/ and no checkpoint): it stopped before its first checkpoint"
        )

    def saved_model(self, task: str = "", legacy: Legacy | None = None) -> SavedModel:
        """The run's weights and model description (``task``: refuse a run of another task)."""
        if task:
            self.check_task(task)
        folder = self.weights_dir()
        info = self.description()
        if info is None and legacy is not None:
            info = legacy(self)
        if info is None:
            raise CheckpointError(
                f"{self.path} has no {self.MODEL} and no final weights: it is an unfinished run from an older "
                f"version. Resume it once (--resume {self.path}); the run then records its model"
            )
        return SavedModel(folder, info)

    def load_model(self, *, use_ema: bool = True, task: str = "", legacy: Legacy | None = None) -> LoadedModel:
        """The run's model with its weights (EMA when asked and present), and its description."""
        saved = self.saved_model(task, legacy)
        return saved.load(use_ema=use_ema), saved.info


Legacy = Callable[[RunDir], dict[str, Any] | None]  # a run without a description -> one (a task's older runs)
LoadedModel = tuple[nn.Module, dict[str, Any]]
Build = Callable[[dict[str, Any], Path, bool], nn.Module]  # (description, weights folder, use_ema) -> model


@dataclass(frozen=True)
class SavedModel:
    """A model's weights folder (model.safetensors, maybe model_ema.safetensors) and its description."""

    folder: Path
    info: dict[str, Any]

    @property
    def has_ema(self) -> bool:
        return (self.folder / EMA_WEIGHTS_NAME).is_file()

    def with_overrides(self, **overrides: Any) -> SavedModel:
        """The same weights, rebuilt with ``overrides`` on top of the recorded ones (e.g. another ``img_size``)."""
        return SavedModel(self.folder, {**self.info, "overrides": {**self.info.get("overrides", {}), **overrides}})

    def load(self, *, use_ema: bool = True, build: Build | None = None) -> nn.Module:
        """The model with its weights: EMA when ``use_ema`` and there are EMA weights, else the raw ones.

        ``build(info, folder, use_ema)`` builds and loads a model the registry cannot (default: ``create_model``
        of the registered name and overrides).
        """
        use_ema = use_ema and self.has_ema
        if build is not None:
            return build(self.info, self.folder, use_ema)
        try:
            name, overrides = self.info["model"], self.info.get("overrides", {})
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"{self.folder}: the model description has no {e}") from None
        return create_model(name, pretrained=self.folder, pretrained_ema=use_ema, **overrides)


def open_model(path: str | Path, *, task: str = "", legacy: Legacy | None = None) -> SavedModel:
    """A run's model (final weights or newest verified checkpoint), or a saved folder's (``config.json``).

    ``task`` ("classification", "segmentation", "diffusion"): a run or folder of another task is refused with one
    line naming both; ``legacy`` reads older unfinished runs (see ``RunDir.saved_model``).
    """
    path = Path(path)
    run = RunDir(path)
    if run.is_run():
        return run.saved_model(task, legacy)
    if (path / CONFIG_NAME).is_file():
        info = _read_json(path / CONFIG_NAME)
        found = task_of(info)
        if task and found and found != task:
            raise CheckpointError(f"{path} holds a {found} model, not a {task} model")
        return SavedModel(path, info)
    raise CheckpointError(
        f"{path} is neither a run folder ({RunDir.CONFIG}, {RunDir.MODEL}) nor a saved model ({CONFIG_NAME})"
    )


def run_config(path: str | Path, cls: type, task: str) -> Any:
    """A run's own training config as ``cls`` (None for a saved model's folder); a run of another task is refused."""
    run = RunDir(path)
    return run.read_config(cls, task) if run.is_run() else None


def init_source(path: str) -> Path:
    """Weights to start from (``--init-from``): a run's ``final/``, else its newest good checkpoint, else the path.

    A run whose checkpoints are all unusable is an error naming them, not a search for weights elsewhere.
    """
    p = Path(path)
    if RunDir(p).final.is_dir() or checkpoint_dirs(p):
        return RunDir(p).weights_dir()
    if not p.exists():
        raise CheckpointError(f"--init-from {path}: no such run directory or weights file")
    return p


def task_of(info: dict[str, Any]) -> str:
    """The task a model description names; descriptions from before it was recorded are told by their keys."""
    if info.get("task"):
        return str(info["task"])
    if "noise" in info:  # older diffusion runs: the noise schedule
        return "diffusion"
    return "classification" if "architecture" in info else ""  # older classifiers: timm's fields


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not readable JSON ({e.__class__.__name__}); is the run folder intact?"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a model description (expected a JSON object)")
    return data
