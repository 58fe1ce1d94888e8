"""The environment block every result row carries: code version, library versions, hardware, threads, flags.

``environment()`` always returns the keys in ``ENV_FIELDS`` (empty strings for what does not apply), so result
files keep a fixed schema whether they come from a CPU or a GPU machine.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import os
import platform
import re
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


def repository_root() -> Path:
    """The source checkout this package runs from (src/hybridvision/env.py -> the repository), where the shipped
    ``assets/`` and ``configs/`` live."""
    return Path(__file__).resolve().parents[2]


def git_sha() -> str:
    root = repository_root()
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


# ---- Running out of memory

_ASKED = re.compile(r"tried to allocate (\d+) bytes|Tried to allocate ([\d.]+ [KMGTP]?i?B)")


def memory_error(error: BaseException) -> str:
    """One line for an allocation failure (CPU allocator, CUDA, MPS or Python's MemoryError), naming how much was
    asked for; "" when ``error`` is something else."""
    text = str(error)
    cpu = "can't allocate memory" in text
    if not (isinstance(error, (MemoryError, torch.OutOfMemoryError)) or cpu or "out of memory" in text.lower()):
        return ""
    match = _ASKED.search(text)
    amount = (_bytes(int(match[1])) if match[1] else match[2]) if match else ""
    asked = f" ({amount} asked for in one allocation)" if amount else ""
    where = "CPU memory" if cpu or isinstance(error, MemoryError) else "device memory"
    return f"out of {where}{asked}"


def _bytes(n: int) -> str:
    """4000000000000 -> '3.6 TiB'."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    power = min(len(units) - 1, int(math.log(max(n, 1), 1024)))
    return f"{n / 1024**power:.1f} {units[power]}"
