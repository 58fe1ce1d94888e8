"""The environment block every result row carries: code version, library versions, hardware, threads, flags.

``environment()`` always returns the keys in ``ENV_FIELDS`` (empty strings for what does not apply), so result
files keep a fixed schema whether they come from a CPU or a GPU machine.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import torch

ENV_FIELDS = (
    "git_sha",
    "timestamp",
    "python",
    "torch",
    "cuda",
    "cudnn",
    "onnxruntime",
    "timm",
    "device",  # device name: the GPU, or the CPU model
    "gpu_driver",
    "gpu_clocks",  # SM/memory clocks (MHz) and power limit (W) when nvidia-smi reports them
    "cpu",
    "cpu_capability",
    "threads",
    "load_avg_1m",
    "cudnn_benchmark",
    "tf32_matmul",
)


def git_sha() -> str:
    root = Path(__file__).resolve().parents[2]  # the repository (src/hybridvision/env.py)
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    """Installed version of a distribution without importing it ('' when absent)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _nvidia_smi(index: int) -> tuple[str, str]:
    """(driver version, 'sm MHz / mem MHz / power W') from nvidia-smi, or empty strings."""
    query = "driver_version,clocks.sm,clocks.mem,power.limit"
    cmd = ["nvidia-smi", f"--id={index}", f"--query-gpu={query}", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "", ""
    parts = [p.strip() for p in out.stdout.strip().split(",")]
    if out.returncode != 0 or len(parts) != 4:
        return "", ""
    return parts[0], f"sm {parts[1]} MHz / mem {parts[2]} MHz / {parts[3]} W"


def environment(device: str = "cpu") -> dict[str, str | int | float]:
    """git SHA, versions, device name, threads and the numerics flags that change speed."""
    env: dict[str, str | int | float] = dict.fromkeys(ENV_FIELDS, "")
    env |= {
        "git_sha": git_sha(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": package_version("onnxruntime") or package_version("onnxruntime-gpu"),
        "timm": package_version("timm"),
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "device": cpu_name(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        driver, clocks = _nvidia_smi(index)
        env |= {
            "device": torch.cuda.get_device_name(index),
            "cuda": torch.version.cuda or "",
            "cudnn": str(torch.backends.cudnn.version() or ""),
            "gpu_driver": driver,
            "gpu_clocks": clocks,
            "cudnn_benchmark": str(torch.backends.cudnn.benchmark),
            "tf32_matmul": str(torch.backends.cuda.matmul.allow_tf32),
        }
    return env
