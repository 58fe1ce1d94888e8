"""Peak memory of one measurement: CUDA allocator peak on GPU, peak resident set size (RSS) on CPU.

On Linux the RSS high-water mark (``VmHWM``) can be reset by writing ``5`` to ``/proc/self/clear_refs``, so each
batch size gets its own peak. Where that is not possible the process-lifetime peak from ``getrusage`` is used
(every repeat runs in a fresh process and batch sizes run in increasing order, so it is still the right peak).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class MemoryMeter:
    """``reset()`` before a measurement, ``peak_mb()`` after it."""

    def __init__(self, device: torch.device | str, host_only: bool = False) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda" and not host_only
        self.kind = "cuda_max_allocated" if self.cuda else "cpu_peak_rss"

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            _CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS
        except OSError:
            pass

    def peak_mb(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process since the last reset, in MiB."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB on Linux
