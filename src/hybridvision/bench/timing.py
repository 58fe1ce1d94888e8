"""Timing loops: warm-up by iterations and by time, per-iteration sync for latency, blocks for throughput.

Latency loops synchronise the device after every call, so each sample is one complete forward. Throughput loops
enqueue a block of calls and synchronise once at its end (host and device overlap, as in real serving); each
sample is the block's time divided by its length. Every loop stops at ``max_s`` even if its minimums are not
reached, so a slow model on a slow machine still finishes; the number of iterations actually run is recorded.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Timing:
    """Per-iteration wall times (seconds) of one setting, with the summary statistics users compare."""

    batch_size: int
    times: tuple[float, ...]
    warmup_iters: int = 0  # warm-up iterations run before the timed ones

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the per-iteration times (q in 0..100)."""
        ordered = sorted(self.times)
        idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[idx]

    @property
    def p50_ms(self) -> float:
        return self.percentile(50) * 1e3

    @property
    def p90_ms(self) -> float:
        return self.percentile(90) * 1e3

    @property
    def p99_ms(self) -> float:
        return self.percentile(99) * 1e3

    @property
    def img_per_s(self) -> float:
        return self.batch_size / statistics.median(self.times)


def device_sync(device: torch.device | str | None) -> Callable[[], None]:
    """A function that waits for ``device`` to finish its queued work (a no-op on CPU)."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def warm_up(fn: Callable[[], object], sync: Callable[[], None], iters: int, seconds: float, max_s: float) -> int:
    """Run ``fn`` until both ``iters`` calls and ``seconds`` have passed (or ``max_s``); returns the calls made."""
    start, n = time.perf_counter(), 0
    while n < iters or time.perf_counter() - start < seconds:
        fn()
        sync()
        n += 1
        if time.perf_counter() - start >= max_s:
            break
    return n


def timed_loop(
    fn: Callable[[], object],
    sync: Callable[[], None],
    min_iters: int,
    min_s: float,
    max_s: float,
    block: int = 1,
    max_iters: int = 100_000,
) -> list[float]:
    """Per-iteration seconds; each sample is a block of ``block`` calls with one sync at its end."""
    times: list[float] = []
    total = 0.0
    while (len(times) * block < min_iters or total < min_s) and total < max_s and len(times) * block < max_iters:
        t0 = time.perf_counter()
        for _ in range(block):
            fn()
        sync()
        elapsed = time.perf_counter() - t0
        times.append(elapsed / block)
        total += elapsed
    return times


def block_size(seconds_per_iter: float, target_s: float = 0.05, largest: int = 64) -> int:
    """Calls per throughput block so that a block lasts about ``target_s`` (1 for slow calls)."""
    if seconds_per_iter <= 0:
        return largest
    return max(1, min(largest, math.floor(target_s / seconds_per_iter)))


def time_fn(
    fn: Callable[[], object],
    batch_size: int,
    *,
    device: torch.device | str | None = None,
    warmup_iters: int = 3,
    warmup_s: float = 0.5,
    min_iters: int = 5,
    min_s: float = 1.0,
    max_iters: int = 1000,
    max_s: float = float("inf"),
) -> Timing:
    """Warm ``fn`` up, then time at least ``min_iters`` calls and ``min_s`` seconds, one sync per call."""
    sync = device_sync(device)
    warm = warm_up(fn, sync, warmup_iters, warmup_s, max_s)
    times = timed_loop(fn, sync, min_iters, min_s, max_s, max_iters=max_iters)
    return Timing(batch_size, tuple(times), warm)


def time_forward(model: nn.Module, x: Tensor, **kwargs: object) -> Timing:
    """Time ``model(x)`` in eval and inference mode."""
    model.eval()

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return time_fn(step, x.shape[0], device=x.device, **kwargs)


def gemm_peak_flops(
    n: int = 2048, seconds: float = 1.0, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> float:
    """Best GEMM FLOP/s of an n x n matmul on ``device`` in ``dtype``, measured now (the roofline we compare with)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    timing = time_fn(lambda: a @ b, 1, device=device, warmup_iters=2, warmup_s=0.2, min_iters=5, min_s=seconds)
    return 2 * n**3 / min(timing.times)
