"""Launching training runs from tests: as a subprocess (to kill it), under torchrun, and comparing their weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")
TESTS = str(ROOT / "tests")
HYBRIDVISION_TRAIN = ("-m", "hybridvision", "train")
TOY_TASK = (str(ROOT / "tests" / "toy_task.py"),)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join((SRC, TESTS)), "OMP_NUM_THREADS": "1"}


def spawn(argv: list[str], entry: tuple[str, ...] = HYBRIDVISION_TRAIN, **kw) -> subprocess.Popen:
    """A training process (``hybridvision train`` by default, or a script such as the toy task)."""
    return subprocess.Popen([sys.executable, *entry, *argv], env=_env(), **kw)


def torchrun(argv: list[str], entry: tuple[str, ...] = HYBRIDVISION_TRAIN) -> None:
    """The same run on two processes (gloo on CPU); fails the test with the tail of stderr."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run([*cmd, *entry, *argv], env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def kill_after_checkpoint(proc: subprocess.Popen, run: Path, step: int, timeout: float = 120) -> None:
    """SIGKILL ``proc`` as soon as a checkpoint at ``step`` or later exists in ``run``."""
    from hybridvision.engine.checkpoint import checkpoint_dirs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        done = checkpoint_dirs(run)
        if done and int(done[0].name[5:]) >= step:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"


def weights(run: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(run / "final" / name))


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0.0:
            assert torch.equal(a[k], b[k]), f"{k} differs (max {(a[k].float() - b[k].float()).abs().max():.3g})"
        else:
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)
