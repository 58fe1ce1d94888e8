"""Classification training: the classification task of the engine, its configs, data and batched augmentation."""

from ..engine import EmaConfig, OptimConfig, RunResult
from .config import AugConfig, DataConfig, EvalConfig, TrainConfig
from .task import Classification, train

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
