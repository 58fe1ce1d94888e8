"""A measuring process: ``python -m hybridvision.bench.worker`` reads one job as JSON on stdin and prints its
result as one JSON line on stdout (after ``RESULT_MARKER``), so every repeat starts from a fresh interpreter:
no allocator state, compiled graphs or warm caches carried over from another model.

The same ``run_job`` runs in-process when isolation is off (``BenchConfig.isolate=False``).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from typing import Any

import numpy as np
import torch

from ..config import from_dict, to_dict
from ..env import environment
from .config import BenchConfig
from .jobs import Job
from .measure import Bounds, file_runner, make_input, measure, onnx_runner, prepare_model, torch_runner
from .memory import MemoryMeter
from .timing import device_sync

RESULT_MARKER = "HYBRIDVISION_BENCH_RESULT "


def setup_process(config: BenchConfig) -> None:
    """Threads, plugin imports, cuDNN autotuning for fixed shapes, seed."""
    if config.threads:
        torch.set_num_threads(config.threads)
    for module in config.plugins:
        importlib.import_module(module)
    if config.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
        index = torch.device(config.device).index
        if index is not None:
            torch.cuda.set_device(index)
    torch.manual_seed(config.seed)


def build_model(job: Job, config: BenchConfig) -> torch.nn.Module:
    """Our model (seeded, or loading the shared weights) or the timm model with the same weights."""
    img = {"img_size": config.img_size} if config.img_size else {}
    torch.manual_seed(config.seed)
    if job.impl == "timm":
        from safetensors.torch import load_file

        from .jobs import import_timm

        timm, reason = import_timm()
        if timm is None:
            raise RuntimeError(f"timm is not importable in the measuring process: {reason}")
        model = timm.create_model(job.timm_name, pretrained=False, **img)
        if job.weights:
            model.load_state_dict(load_file(job.weights), strict=True)
        return model
    from ..factory import create_model

    return create_model(job.model, pretrained=job.weights, **img)


def run_job(job: Job, config: BenchConfig) -> dict[str, Any]:
    """Measure ``job`` at every batch size (increasing); a batch that fails (e.g. out of memory) is reported."""
    setup_process(config)
    bounds = Bounds.from_config(config)
    if job.model_file:
        run = file_runner(job, config)
        sync, memory = device_sync(None), MemoryMeter("cpu", host_only=True)

        def new_input(b: int) -> Any:
            return np.random.default_rng(config.seed).standard_normal((b, *job.input_chw), dtype=np.float32)

        fused = config.fused
    elif job.backend == "onnxruntime":
        run = onnx_runner(str(job.onnx_path), config)
        sync, memory = device_sync(None), MemoryMeter("cpu", host_only=True)

        def new_input(b: int) -> Any:
            return np.random.default_rng(config.seed).standard_normal((b, *job.input_chw), dtype=np.float32)

        fused = config.fused
    else:
        model, fused = prepare_model(build_model(job, config), config)
        run = torch_runner(model, config)
        sync, memory = device_sync(config.device), MemoryMeter(config.device)

        def new_input(b: int) -> Any:
            return make_input(b, job.input_chw, config)

    results = []
    for batch in sorted(config.batch_sizes):
        try:
            x = new_input(batch)
            out = measure(run, x, batch_size=batch, latency=batch == 1, bounds=bounds, sync=sync, memory=memory)
            results.append(out | {"status": "ok"})
        except (torch.cuda.OutOfMemoryError, MemoryError):
            results.append({"batch_size": batch, "status": "out of memory"})
        finally:
            x = None
            if config.device.startswith("cuda"):
                torch.cuda.empty_cache()
    return {"pid": os.getpid(), "fused": fused, "environment": environment(config.device), "results": results}


def job_payload(job: Job, config: BenchConfig) -> str:
    return json.dumps({"job": dataclasses.asdict(job), "config": to_dict(config)})


def main() -> int:
    data = json.loads(sys.stdin.read())
    job_data = data["job"] | {"input_chw": tuple(data["job"]["input_chw"])}
    job, config = Job(**job_data), from_dict(BenchConfig, data["config"])
    try:
        result = run_job(job, config)
    except Exception as e:  # noqa: BLE001 - reported to the parent as this job's status, never swallowed
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        result = {"pid": os.getpid(), "error": f"{type(e).__name__}: {first}"}
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
