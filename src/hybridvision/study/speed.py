"""Inference speed of a study's points, measured together at the end: batch-1 latency and batch-N throughput.

All points are timed in one process through the bench package's timing core, interleaved round after round
(``bench.interleave``), so load from other processes hits every point alike; each point's number is the median
over rounds. fp32, eval and inference mode, channels_last, fresh weights (speed does not depend on them).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import torch

from ..bench.interleave import interleaved
from ..bench.timing import device_sync
from ..factory import create_model
from .config import SpeedConfig
from .grid import Plan, Point


def _forward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """One eval-mode, inference-mode forward, finished on the device before it returns."""
    sync = device_sync(x.device)

    def run() -> object:
        with torch.inference_mode():
            out = model(x)
        sync()
        return out

    return run


def _build(plan: Plan, point: Point, device: str) -> torch.nn.Module:
    r = plan.recipe
    kwargs = {**point.kwargs, "num_classes": plan.study.num_classes, "in_chans": r.data.channels}
    torch.manual_seed(0)
    model = create_model(point.model, img_size=r.img_size, **kwargs).eval()
    return model.to(device=device, memory_format=torch.channels_last)


def speed_device(cfg: SpeedConfig) -> str:
    """The device the points are timed on ("auto": the GPU when there is one)."""
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def measure_speed(plan: Plan, points: Sequence[Point] | None = None) -> dict[str, dict[str, float]]:
    """{label: {"latency_ms": batch-1 p50, "throughput_img_s": at speed.batch_size}} for every point."""
    cfg: SpeedConfig = plan.study.speed
    device = speed_device(cfg)
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        points = list(points or plan.points)
        models = {p.label: _build(plan, p, device) for p in points}
        r = plan.recipe
        out: dict[str, dict[str, float]] = {p.label: {} for p in points}
        for batch, key in ((1, "latency_ms"), (cfg.batch_size, "throughput_img_s")):
            x = torch.randn(batch, r.data.channels, r.img_size, r.img_size, device=device)
            x = x.contiguous(memory_format=torch.channels_last)
            candidates = {label: _forward(m, x) for label, m in models.items()}
            timings = interleaved(candidates, batch, rounds=cfg.rounds, min_s=cfg.seconds, min_iters=3)
            for label, runs in timings.items():
                values = [t.p50_ms if batch == 1 else t.img_per_s for t in runs]
                out[label][key] = round(statistics.median(values), 3 if batch == 1 else 1)
        return out
    finally:
        torch.set_num_threads(threads)
