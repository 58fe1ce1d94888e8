"""The training engine: everything about a run that is not the task (see ``Task``), for every task."""

from .config import EmaConfig, OptimConfig, RunConfig
from .run import RunResult, init_source, run, weights_dir
from .task import Runtime, Task

__all__ = ["EmaConfig", "OptimConfig", "RunConfig", "RunResult", "Runtime", "Task", "init_source", "run", "weights_dir"]
