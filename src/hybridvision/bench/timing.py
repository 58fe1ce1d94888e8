"""Timing a model forward: warm-up by iterations and by time, per-iteration sync, percentiles."""

from __future__ import annotations

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

    def percentile(self, q: float) -> float:
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


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(
    fn: Callable[[], object],
    batch_size: int,
    *,
    device: torch.device | None = None,
    warmup_iters: int = 3,
    warmup_s: float = 0.5,
    min_iters: int = 5,
    min_s: float = 1.0,
    max_iters: int = 1000,
) -> Timing:
    """Run ``fn`` until both warm-up bounds pass, then time at least ``min_iters`` runs and ``min_s`` seconds."""
    start, n = time.perf_counter(), 0
    while n < warmup_iters or time.perf_counter() - start < warmup_s:
        fn()
        _sync(device)
        n += 1
    times: list[float] = []
    total = 0.0
    while (len(times) < min_iters or total < min_s) and len(times) < max_iters:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        total += times[-1]
    return Timing(batch_size, tuple(times))


def time_forward(model: nn.Module, x: Tensor, **kwargs: object) -> Timing:
    """Time ``model(x)`` in eval and inference mode."""
    model.eval()

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return time_fn(step, x.shape[0], device=x.device, **kwargs)


def gemm_peak_flops(n: int = 2048, seconds: float = 1.0) -> float:
    """Best fp32 GEMM FLOP/s of an n x n matmul on this CPU, measured now (the roofline we compare with)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    timing = time_fn(lambda: a @ b, 1, warmup_iters=2, warmup_s=0.2, min_iters=5, min_s=seconds)
    return 2 * n**3 / min(timing.times)
