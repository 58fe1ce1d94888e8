"""What a task gives the engine: a model, training batches, a loss, and an evaluation with named metrics.

The engine (``engine.run``) owns everything else about a run. A task is written once per kind of problem
(classification, segmentation, diffusion); the engine calls, in this order and on every process:

1. ``setup(rt)``: read data; ``rt`` says which device/process this is and how to autocast;
2. ``build_model()``: a fresh model (weights from ``cfg.init_from`` when set), on the CPU;
3. per optimizer step, per micro-batch: ``batches(index_lists)`` yields a batch; the engine moves the
   batch to the device and calls ``loss(model, batch, gen)`` inside autocast (``gen`` is a CPU generator seeded by
   the micro-batch's position, so augmentation repeats exactly on resume and under any process count);
4. at evaluation time: ``evaluate(model)`` -> ``{"metric": value}`` for the model and for its EMA.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..factory import model_config_dict
from .config import RunConfig
from .distributed import Dist


@dataclass(frozen=True)
class Runtime:
    """Where and how this process runs: its place in the job, its device, and the autocast to use."""

    dist: Dist
    autocast: Callable[[], AbstractContextManager]  # () -> context manager (bf16/fp16 autocast, or a no-op)
    run_dir: Path | None = None  # the run's directory (for what a task writes besides the engine's files)

    @property
    def device(self) -> torch.device:
        return self.dist.device


class Task(ABC):
    """Base class of the engine's tasks; subclasses set ``metric`` and implement the five abstract methods."""

    metric: str = ""  # the evaluation metric a run reports (a key of ``evaluate``'s dict), e.g. "top1"
    higher_is_better: bool = True
    kind: str = ""  # the task a run's model.json records, e.g. "segmentation" ("" = the class name, lowercased)

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.rt: Runtime | None = None
        self.unreadable: set[str] = set()  # files the task skipped (train and evaluation); each counted once

    @property
    def name(self) -> str:
        """Names the run directory (``NNN-<name>``)."""
        return self.cfg.model or type(self).__name__.lower()

    def setup(self, rt: Runtime) -> None:
        """Read or generate the data; called once per process before ``build_model``."""
        self.rt = rt

    @abstractmethod
    def build_model(self) -> nn.Module: ...

    @abstractmethod
    def train_size(self) -> int:
        """Training samples in one epoch."""
        ...

    @abstractmethod
    def batches(self, index_lists: Sequence[Sequence[int]]) -> Iterator[Any]:
        """For each list of sample indices, a batch: tensors in any nesting (unreadable files go to ``unreadable``)."""
        ...

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any, gen: torch.Generator) -> Tensor:
        """The mean loss of one micro-batch (already on the device); ``model`` may be wrapped (DDP/compiled)."""
        ...

    @abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Named metrics of ``model`` on the evaluation data (reduced over processes), ``self.metric`` among them."""
        ...

    def run_info(self) -> dict[str, Any]:
        """Facts of the run for ``summary.json`` besides the metrics (e.g. the class names)."""
        return {}

    def model_config(self, model: nn.Module) -> dict[str, Any]:
        """What rebuilds the model and serves it without this task (default: a registered model's name and
        overrides); a task adds what inference needs (class names, a noise schedule, a text encoder ...)."""
        return model_config_dict(model)

    def description(self, model: nn.Module) -> dict[str, Any]:
        """``RUN/model.json`` and ``final/config.json``: ``model_config`` with the task and the input channels."""
        info = {**self.model_config(model), "task": self.kind or type(self).__name__.lower()}
        in_chans = getattr(getattr(model, "config", None), "in_chans", None)
        return info if in_chans is None else {**info, "in_chans": in_chans}

    def batch_samples(self, batch: Any) -> int:
        """Samples in a batch (for img/s): the length of its first tensor."""
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        return int(first.shape[0]) if isinstance(first, Tensor) else 0
