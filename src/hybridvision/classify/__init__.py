"""Classification training: the classification task of the engine, its configs, data and batched augmentation.

``Classification`` and ``train`` load when first asked for, so evaluating a run (``classify.evaluate``) never
imports the training task.
"""

from importlib import import_module
from typing import Any

from ..engine import EmaConfig, OptimConfig, RunResult
from .config import AugConfig, DataConfig, EvalConfig, TrainConfig

__all__ = [
    "AugConfig",
    "Classification",
    "DataConfig",
    "EmaConfig",
    "EvalConfig",
    "OptimConfig",
    "RunResult",
    "TrainConfig",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in ("Classification", "train"):
        return getattr(import_module(".task", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
