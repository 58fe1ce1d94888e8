"""The measurement core: prepare a model as configured, then time one batch size ("the meat of the loop").

``measure`` is backend-neutral: it takes a ``run(x)`` callable (a torch module in inference mode, a compiled
graph, or an onnxruntime session) and a pre-allocated input on the device, so input creation and host-to-device
copies never enter the timed region.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .config import BenchConfig
from .memory import MemoryMeter
from .timing import Timing, block_size, timed_loop, warm_up


@dataclass(frozen=True)
class Bounds:
    """Iteration and time bounds of the warm-up and timed loops."""

    warmup_iters: int = 50
    warmup_s: float = 2.0
    iters: int = 200
    min_s: float = 1.0
    max_s: float = 60.0

    @classmethod
    def from_config(cls, config: BenchConfig) -> Bounds:
        return cls(config.warmup_iters, config.warmup_s, config.iters, config.min_s, config.max_s)


def prepare_model(model: nn.Module, config: BenchConfig) -> tuple[nn.Module, bool]:
    """Eval mode, optional BatchNorm folding, layout, device and (without autocast) dtype; returns (model, fused)."""
    model.eval()
    fused = bool(config.fused and callable(getattr(model, "fuse", None)))
    if fused:
        model.fuse()
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    if hasattr(model, "memory_format"):
        model.memory_format = fmt  # the layout our backbones convert inputs to
    model = model.to(device=config.device, memory_format=fmt)
    if config.precision != "fp32" and not config.amp:
        model = model.to(config.dtype)
    return model, fused


def make_input(batch_size: int, chw: tuple[int, int, int], config: BenchConfig) -> Tensor:
    """A synthetic batch on the device, in the configured layout (and dtype, when weights are cast)."""
    x = torch.randn(batch_size, *chw, device=config.device)
    if config.precision != "fp32" and not config.amp:
        x = x.to(config.dtype)
    if config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def torch_runner(model: nn.Module, config: BenchConfig) -> Callable[[Tensor], Any]:
    """``run(x)``: inference mode, autocast when asked, through ``torch.compile(fullgraph=True)`` when asked."""
    fn: Callable[[Tensor], Any] = model
    if config.compile:
        options: dict[str, Any] = {"fullgraph": True, "dynamic": False, "backend": config.compile_backend}
        if config.compile_backend == "inductor":
            options["mode"] = config.compile_mode
        fn = torch.compile(model, **options)
    autocast = config.amp and config.precision != "fp32"
    device_type = torch.device(config.device).type

    def run(x: Tensor) -> Any:
        with torch.inference_mode(), torch.autocast(device_type, dtype=config.dtype, enabled=autocast):
            return fn(x)

    return run


def onnx_runner(path: str, config: BenchConfig) -> Callable[[np.ndarray], Any]:
    """``run(x)`` through an onnxruntime session with the same thread count as torch."""
    from ..export import onnx_session

    session = onnx_session(path, threads=config.threads or torch.get_num_threads(), device=config.device)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def file_runner(job: Any, config: BenchConfig) -> Callable[[np.ndarray], Any]:
    """``run(x)`` through the runtime of ``job.model_file`` (``export.runtimes``), with torch's thread count; a
    torch.export program (PT2E int8) runs through ``torch.compile``, which lowers it to int8 kernels."""
    from ..export.runtimes import load_runner

    threads = config.threads or torch.get_num_threads()
    return load_runner(job.model_file, threads, job.precision_of(config), compile=job.backend == "torch")


def measure(
    run: Callable[[Any], Any],
    x: Any,
    *,
    batch_size: int,
    latency: bool,
    bounds: Bounds,
    sync: Callable[[], None],
    memory: MemoryMeter,
) -> dict[str, Any]:
    """First call (compilation, lazy init), warm-up, latency percentiles (if asked), throughput, peak memory."""
    memory.reset()
    t0 = time.perf_counter()
    run(x)
    sync()
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = warm_up(lambda: run(x), sync, bounds.warmup_iters, bounds.warmup_s, bounds.max_s)
    per_iter = (time.perf_counter() - t0) / max(warm, 1)
    out: dict[str, Any] = {"batch_size": batch_size, "first_call_s": first_s, "warmup_iters": warm}
    if latency:
        timing = Timing(batch_size, tuple(timed_loop(lambda: run(x), sync, bounds.iters, bounds.min_s, bounds.max_s)))
        out |= {"latency_p50_ms": timing.p50_ms, "latency_p90_ms": timing.p90_ms, "latency_p99_ms": timing.p99_ms}
        per_iter = statistics.median(timing.times)
    block = block_size(per_iter)
    times = timed_loop(lambda: run(x), sync, bounds.iters, bounds.min_s, bounds.max_s, block=block)
    out |= {"throughput_img_s": batch_size / statistics.median(times), "iters": len(times) * block}
    out["peak_mem_mb"] = memory.peak_mb()
    return out
