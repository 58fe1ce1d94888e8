"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler's notice): finish the step, checkpoint, exit.

The handler only records the signal; the training loop looks at it after every optimizer step. A second signal
stops at once (Python's KeyboardInterrupt), for when the step itself hangs.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from .checkpoint import CKPT_DIR

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The run stopped on a signal after writing a checkpoint; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int, run_dir: Path, step: int) -> None:
        self.signum, self.run_dir, self.step = signum, run_dir, step
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} after step {step}; its checkpoint is in {run_dir / CKPT_DIR}. "
            f"Continue with the same command and --resume {run_dir}"
        )


class StopFlag:
    """The first SIGINT/SIGTERM received (0 while none)."""

    def __init__(self) -> None:
        self.signum = 0

    def __call__(self, signum: int, frame: object) -> None:
        if self.signum:
            raise KeyboardInterrupt  # asked twice: stop now, without the checkpoint
        self.signum = signum
        name = signal.Signals(signum).name
        log.warning("%s received: finishing this step, then writing a checkpoint (send it again to stop at once)", name)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Record SIGINT/SIGTERM in a ``StopFlag`` while inside (main thread only; elsewhere the flag stays 0)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.signal(s, flag) for s in SIGNALS}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
