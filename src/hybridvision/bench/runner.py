"""``run_bench``: plan, measure in fresh processes, aggregate, compare.

For each model, the repeats are interleaved across implementations (ours, onnxruntime, timm, ours, ...), so
slow drifts of machine load hit every implementation alike. Each repeat is a fresh process; a result row holds
the median over repeats of each repeat's statistic, with the repeats' min and max as the spread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..env import environment
from ..macs import model_cost
from ..registry import get_entry
from .against import plan_jobs
from .config import BenchConfig, check_runtime, expand_models
from .jobs import Job
from .results import new_row, with_environment
from .tables import primary_rows
from .timing import gemm_peak_flops
from .worker import RESULT_MARKER, job_payload, run_job

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding `hybridvision/`

Progress = Callable[[str, int, int], None]  # (description, done, total)


@dataclass
class BenchResult:
    config: BenchConfig
    environment: dict[str, Any]
    rows: list[dict[str, Any]]
    notes: list[str]
    gemm_peak_flops: float | None


def run_bench(config: BenchConfig, progress: Progress | None = None) -> BenchResult:
    """Measure every model of ``config``; see ``BenchConfig`` for the protocol's knobs."""
    check_runtime(config)
    for module in config.plugins:
        importlib.import_module(module)
    names = expand_models(config.models)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with _threads(config.threads), tempfile.TemporaryDirectory(prefix="hybridvision-bench-") as workdir:
        env = environment(config.device)
        peak = _gemm_peak(config) if config.roofline else None
        for i, name in enumerate(names):
            step = _step_progress(progress, name, i, len(names), config.repeats)
            model_rows, model_notes = _bench_model(name, config, Path(workdir), peak, step)
            rows += model_rows
            notes += model_notes
    _add_ratios(rows)
    return BenchResult(config, env, rows, notes, peak)


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """Use ``count`` torch threads inside (0: leave as is), and restore the caller's count after."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _gemm_peak(config: BenchConfig) -> float:
    """The device's GEMM peak in the run's precision (fp32 on CPU), with the same thread count."""
    dtype = torch.float32 if config.device == "cpu" else config.dtype
    return gemm_peak_flops(seconds=max(0.2, min(config.min_s, 2.0)), device=config.device, dtype=dtype)


def _step_progress(progress: Progress | None, name: str, index: int, count: int, repeats: int) -> Callable:
    def step(label: str, done: int, total: int) -> None:
        if progress is not None:
            progress(f"[{index + 1}/{count}] {name}: {label}", done, total)

    return step


def _bench_model(name: str, config: BenchConfig, workdir: Path, peak: float | None, step: Callable) -> tuple:
    cost = model_cost(name, img_size=config.img_size)
    chw = tuple(cost.input_shape[1:])
    step("preparing", 0, 1)
    plan = plan_jobs(name, chw, config, workdir)
    total = len(plan.jobs) * config.repeats
    raw: dict[int, list[dict[str, Any]]] = {j: [] for j in range(len(plan.jobs))}
    for repeat in range(config.repeats):
        for j, job in enumerate(plan.jobs):
            step(f"{_label(job)} repeat {repeat + 1}/{config.repeats}", repeat * len(plan.jobs) + j, total)
            raw[j].append(execute(dataclasses.replace(job, repeat=repeat), config))
    step("done", total, total)
    rows = []
    for j, job in enumerate(plan.jobs):
        parity = plan.parity.get(job.key)
        rows += aggregate(job, raw[j], config, cost, peak, parity)
    if not plan.jobs or plan.jobs[0].impl != "hybridvision" or plan.jobs[0].backend != config.backend:
        rows.insert(0, _failed_row(name, config, cost, "; ".join(plan.notes) or "not measured"))
    return rows, plan.notes


def _label(job: Job) -> str:
    label = job.impl if job.backend == "torch" else f"{job.impl} ({job.backend})"
    return f"{label} {job.precision}" if job.precision else label


def execute(job: Job, config: BenchConfig) -> dict[str, Any]:
    """One repeat: in a fresh ``python -m hybridvision.bench.worker`` process, or here when not isolated."""
    if not config.isolate:
        try:
            return run_job(job, config)
        except Exception as e:  # noqa: BLE001 - same reporting as a failed process
            return {"pid": os.getpid(), "error": f"{type(e).__name__}: {e}"}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "hybridvision.bench.worker"]
    try:
        proc = subprocess.run(
            cmd,
            input=job_payload(job, config),
            capture_output=True,
            text=True,
            env=env,
            timeout=config.timeout_s or None,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"measuring process timed out after {config.timeout_s:g} s (timeout_s)"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    return {"error": f"measuring process exited with code {proc.returncode}: {tail or 'no output'}"}


# ---- Aggregation


def _setting(job: Job, config: BenchConfig, cost: Any, fused: bool | None) -> dict[str, Any]:
    onnx = job.backend != "torch"  # an exported file: NCHW input, its own runtime, never torch.compile
    compiled = (config.compile and not onnx) or (job.model_file is not None and job.backend == "torch")
    return {
        "model": job.model,
        "family": get_entry(job.model).family,
        "impl": job.impl,
        "backend": job.backend,
        "device": config.device,
        "precision": job.precision_of(config),
        "amp": config.amp and job.precision_of(config) not in ("fp32", "int8"),
        "layout": "nchw" if onnx or job.model_file else config.layout,
        "compiled": compiled,
        "compile_mode": config.compile_mode if config.compile and not onnx else "",
        "fused": fused,
        "img_size": cost.input_shape[-1],
        "params": cost.params,
        "macs": cost.macs,
        "mem_kind": "cpu_peak_rss" if onnx or config.device == "cpu" else "cuda_max_allocated",
    }


def aggregate(
    job: Job, repeats: list[dict], config: BenchConfig, cost: Any, peak: float | None, parity: float | None
) -> list[dict[str, Any]]:
    """One row per batch size: medians over the repeats that succeeded, min/max as spread."""
    good = [r for r in repeats if "error" not in r]
    env = good[0]["environment"] if good else environment(config.device)
    if good:
        env = env | {"load_avg_1m": max(float(r["environment"]["load_avg_1m"]) for r in good)}
    fused = good[0]["fused"] if good else None
    base = _setting(job, config, cost, fused) | {"parity_max_abs_diff": parity}
    base["pids"] = ";".join(str(r.get("pid", "")) for r in repeats)
    rows = []
    for batch in sorted(config.batch_sizes):
        per = [res for r in good for res in r["results"] if res["batch_size"] == batch]
        ok = [res for res in per if res["status"] == "ok"]
        row = base | {"batch_size": batch, "repeats": len(ok)} | _stats(ok, config, cost, peak)
        row["status"] = _status(repeats, per, ok)
        rows.append(with_environment(new_row(**row), env))
    return rows


def _stats(ok: list[dict], config: BenchConfig, cost: Any, peak: float | None) -> dict[str, Any]:
    if not ok:
        return {}
    med = lambda key: statistics.median(r[key] for r in ok)  # noqa: E731
    tput = [r["throughput_img_s"] for r in ok]
    out = {
        "throughput_img_s": statistics.median(tput),
        "throughput_min_img_s": min(tput),
        "throughput_max_img_s": max(tput),
        "peak_mem_mb": med("peak_mem_mb"),
        "iters": round(med("iters")),
        "warmup_iters": round(med("warmup_iters")),
    }
    if config.compile:
        out["compile_s"] = med("first_call_s")
    if "latency_p50_ms" in ok[0]:
        p50 = [r["latency_p50_ms"] for r in ok]
        out |= {
            "latency_p50_ms": statistics.median(p50),
            "latency_p50_min_ms": min(p50),
            "latency_p50_max_ms": max(p50),
        }
        out |= {"latency_p90_ms": med("latency_p90_ms"), "latency_p99_ms": med("latency_p99_ms")}
    if peak:
        out["gemm_peak_gflops"] = peak / 1e9
        out["peak_fraction"] = cost.macs * out["throughput_img_s"] / (peak / 2)  # MAC/s over peak MAC/s
    return out


def _status(repeats: list[dict], per: list[dict], ok: list[dict]) -> str:
    errors = [r["error"] for r in repeats if "error" in r]
    if errors:
        return f"error: {errors[0]}" + (f" ({len(errors)}/{len(repeats)} repeats)" if len(repeats) > 1 else "")
    failed = [res["status"] for res in per if res["status"] != "ok"]
    return "ok" if ok and not failed else (failed[0] if failed else "not measured")


def _failed_row(name: str, config: BenchConfig, cost: Any, reason: str) -> dict[str, Any]:
    job = Job(model=name, input_chw=tuple(cost.input_shape[1:]), backend=config.backend)
    row = _setting(job, config, cost, None) | {"batch_size": min(config.batch_sizes), "repeats": 0}
    return with_environment(new_row(**row, status=f"error: {reason}"), environment(config.device))


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """rel_* = this row / our primary row of the same model and batch (the first row of each model)."""
    primary = primary_rows(rows)
    for row in rows:
        ref = primary[(row["model"], row["batch_size"])]
        row["rel_throughput"] = _ratio(row["throughput_img_s"], ref["throughput_img_s"])
        row["rel_latency_p50"] = _ratio(row["latency_p50_ms"], ref["latency_p50_ms"])


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None
