"""Other implementations measured in the same run, on the same weights: timm's models and onnxruntime.

``plan_jobs`` prepares, in the parent process and before any timing, what the measuring processes need:
- ``timm``: build timm's model, convert its state dict with our model's ``convert_state_dict`` and load it into
  ours, check both give the same outputs (fp32, ``config.atol``), and save both weight files;
- ``onnxruntime``: export our model (same weights, prepared as timed: eval, fused) with a free batch dimension,
  and check onnxruntime's outputs against PyTorch's.
A comparison that cannot run (timm not importable, no timm equivalent, parity failure) is skipped with a note.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..factory import create_model
from ..fileio import save_tensors
from .config import BenchConfig
from .jobs import Job, import_timm, timm_name

log = logging.getLogger(__name__)


class ParityError(RuntimeError):
    """Two implementations give different outputs on the same weights and input."""


@dataclass
class Plan:
    """The jobs of one model (ours first) and what the preparation found."""

    jobs: list[Job]
    parity: dict[tuple[str, str], float] = field(default_factory=dict)  # (impl, backend) -> max |diff|
    notes: list[str] = field(default_factory=list)


def plan_jobs(name: str, chw: tuple[int, int, int], config: BenchConfig, workdir: Path) -> Plan:
    """Jobs for ``name``: ours on the configured backend, then each requested comparison that can run."""
    primary = Job(model=name, input_chw=chw, backend=config.backend)
    exported = config.backend != "torch" or config.precision == "int8"
    if config.backend == "torch" and not config.against and not exported and not config.runtimes:
        return Plan([primary])  # nothing to share: each process builds the seeded model itself
    plan = Plan([])
    ours = _build_ours(name, config)
    timm_job = _plan_timm(name, ours, chw, config, workdir, plan) if "timm" in config.against else None
    weights = workdir / f"{name}.safetensors"
    save_tensors(ours.state_dict(), weights)
    onnx_job = None
    if "onnxruntime" in config.against and config.precision != "fp32":
        plan.notes.append(
            f"{name}: --against onnxruntime skipped: onnxruntime is timed in fp32, this run is {config.precision}"
        )
    elif (config.backend == "onnxruntime" and config.precision == "fp32") or "onnxruntime" in config.against:
        onnx_job = _plan_onnx(name, ours, chw, config, workdir, plan)
    if config.backend == "torch" and config.precision != "int8":
        plan.jobs.append(Job(model=name, input_chw=chw, weights=str(weights)))
    elif exported and not (config.backend == "onnxruntime" and config.precision == "fp32"):
        plan.jobs += _runtime_jobs(name, ours, chw, [(config.backend, config.precision)], config, workdir, plan)
    plan.jobs += [job for job in (onnx_job, timm_job) if job is not None]
    plan.jobs += _runtime_jobs(name, ours, chw, config.runtime_pairs(), config, workdir, plan)
    return plan


def _runtime_jobs(name: str, ours: nn.Module, chw: tuple, pairs: list, config: BenchConfig, workdir: Path, plan):
    """Jobs for (backend, precision) pairs, each exported and checked first (``runtimes.plan_runtime``)."""
    from .runtimes import plan_runtime

    jobs = [plan_runtime(name, ours, chw, backend, precision, config, workdir, plan) for backend, precision in pairs]
    return [job for job in jobs if job is not None]


def _build_ours(name: str, config: BenchConfig) -> nn.Module:
    torch.manual_seed(config.seed)
    return create_model(name, **({"img_size": config.img_size} if config.img_size else {})).eval()


def _plan_timm(name: str, ours: nn.Module, chw: tuple, config: BenchConfig, workdir: Path, plan: Plan) -> Job | None:
    timm, reason = import_timm()
    theirs_name = timm_name(name, config)
    if timm is None:
        plan.notes.append(
            f"{name}: --against timm skipped: timm is not importable ({reason}); install timm (with a "
            "torchvision that imports) to compare"
        )
        return None
    if theirs_name is None:
        plan.notes.append(f"{name}: --against timm skipped: no timm model shares its weights (add --timm-name)")
        return None
    torch.manual_seed(config.seed)
    img = {"img_size": config.img_size} if config.img_size else {}
    theirs = timm.create_model(theirs_name, pretrained=False, **img).eval()
    state = {k: v.detach().clone() for k, v in theirs.state_dict().items()}
    converted = ours.convert_state_dict(dict(state)) if hasattr(ours, "convert_state_dict") else state
    ours.load_state_dict(converted, strict=True)
    try:
        diff = max_abs_diff(ours, theirs, chw, config)
    except ParityError as e:
        plan.notes.append(f"{name}: --against timm skipped: {e}")
        return None
    plan.parity[("timm", "torch")] = diff
    path = workdir / f"{name}.timm.safetensors"
    save_tensors(state, path)
    return Job(model=name, input_chw=chw, impl="timm", weights=str(path), timm_name=theirs_name)


def _plan_onnx(name: str, ours: nn.Module, chw: tuple, config: BenchConfig, workdir: Path, plan: Plan) -> Job | None:
    import copy

    from ..export import ExportError, check_onnx, export_onnx

    if config.device.startswith("cuda") and not _ort_has_cuda():
        plan.notes.append(f"{name}: onnxruntime skipped: no CUDAExecutionProvider (install onnxruntime-gpu)")
        return None
    model = copy.deepcopy(ours).eval()
    if config.fused and callable(getattr(model, "fuse", None)):
        model.fuse()
    path = workdir / f"{name}.onnx"
    try:
        result = export_onnx(model, path, (2, *chw), dynamic_batch=True)
        x = torch.randn(2, *chw)
        plan.parity[("hybridvision", "onnxruntime")] = check_onnx(model, path, x, atol=config.atol)
    except ExportError as e:
        plan.notes.append(f"{name}: onnxruntime skipped: {e}")
        return None
    log.info("%s: exported with the %s exporter", name, result.exporter)
    return Job(model=name, input_chw=chw, backend="onnxruntime", onnx_path=str(path))


def _ort_has_cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def max_abs_diff(ours: nn.Module, theirs: nn.Module, chw: tuple[int, int, int], config: BenchConfig) -> float:
    """Max |ours(x) - theirs(x)| in fp32 on ``config.device``; raises ParityError above ``config.atol``."""
    x = torch.randn(2, *chw, device=config.device)
    with torch.no_grad():
        a = ours.to(config.device).eval()(x).float()
        b = _logits(theirs.to(config.device).eval()(x)).float()
    ours.cpu(), theirs.cpu()
    if a.shape != b.shape:
        raise ParityError(f"output shapes differ: ours {tuple(a.shape)}, theirs {tuple(b.shape)}")
    diff = float((a - b).abs().max())
    if not diff <= config.atol:
        raise ParityError(f"outputs differ by {diff:.3g} on the same weights (tolerance {config.atol:g})")
    return diff


def _logits(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out
