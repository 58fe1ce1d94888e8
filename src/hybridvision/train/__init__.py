"""Classification training: typed configs, batched augmentation, resumable multi-process runs, reports."""

from .config import AugConfig, DataConfig, EmaConfig, EvalConfig, OptimConfig, TrainConfig
from .run import RunResult, train

__all__ = ["AugConfig", "DataConfig", "EmaConfig", "EvalConfig", "OptimConfig", "RunResult", "TrainConfig", "train"]
