"""The training engine: everything about a run that is not the task (see ``Task``), for every task.

``Task`` and ``Runtime`` load when first asked for: code that only reads runs (``rundir``) never imports them.
"""

from importlib import import_module
from typing import Any

from .config import EmaConfig, OptimConfig, RunConfig
from .run import run
from .rundir import RunDir, RunResult, init_source

__all__ = ["EmaConfig", "OptimConfig", "RunConfig", "RunDir", "RunResult", "Runtime", "Task", "init_source", "run"]

_FROM_TASK = ("Runtime", "Task")


def __getattr__(name: str) -> Any:
    if name in _FROM_TASK:
        return getattr(import_module(".task", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
