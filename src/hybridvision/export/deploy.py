"""``export_artifact``: one model -> one runtime's file (fp32, fp16 or int8), checked against the fp32 PyTorch model
on real or random images, then put in place with its preprocessing record beside it.

Everything is written into a temporary folder beside the output first; only a file that passed its check (when
asked) replaces the output, so a failed export or check never replaces a good file.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .artifact import Artifact, Preprocess, write_artifact
from .calib import calibration_and_check
from .formats import fp32_program, write_executorch, write_openvino, write_program
from .onnx import ExportError, export_onnx, reason
from .quantize import FLOAT_LAYERS, quantize_onnx, quantize_pt2e
from .runtimes import load_runner
from .scoring import Score, Tolerance, score

FORMATS = {"onnx": ".onnx", "openvino": ".xml", "executorch": ".pte", "pt2": ".pt2"}
RUNTIME_OF = {"onnx": "onnxruntime", "openvino": "openvino", "executorch": "executorch", "pt2": "torch"}
PRECISIONS = ("fp32", "fp16", "int8")
# fp32 and fp16 files against fp32 PyTorch: max|diff| <= atol + rtol * max|output|. fp32: runtimes reorder sums
# (XNNPACK, OpenVINO's oneDNN kernels), far below 1e-4 on our models; fp16 keeps about 3 significant digits.
FLOAT_TOLERANCE = {"fp32": (1e-4, 1e-5), "fp16": (1e-2, 1e-2)}


@dataclass(frozen=True)
class ExportRequest:
    """What to write and how to check it."""

    format: str = "onnx"  # "onnx", "openvino", "executorch" or "pt2"
    precision: str = "fp32"  # "fp32", "fp16" (onnx only) or "int8" (needs calib)
    batch: int = 1  # example batch size (the file's batch when not dynamic)
    dynamic_batch: bool = False  # leave the batch dimension free
    calib: str | None = None  # "fashion-mnist" or an image folder: calibration and check images
    calib_count: int = 256  # calibration images
    check_count: int = 500  # held-out check images
    check: bool = False  # compare with fp32 PyTorch before the file is put in place
    tolerance: Tolerance = Tolerance()  # int8 limits on the check images
    threads: int = 0  # runtime threads for the check (0: the runtime's default)
    seed: int = 0  # which images are drawn


@dataclass(frozen=True)
class ExportOutcome:
    """What was written and what the check found."""

    path: Path  # the model file
    record: Path  # its preprocessing record
    score: Score | None  # on the check images (None: not checked)
    max_abs_diff: float | None  # fp32/fp16: largest |file - PyTorch| on the check images
    float_layers: tuple[str, ...]  # int8: what stays in floating point


def export_artifact(
    model: nn.Module, out: str | Path, spec: Preprocess, labels: tuple[str, ...], name: str, request: ExportRequest
) -> ExportOutcome:
    """Write ``model`` (fp32, eval, fused as wanted) in ``request.format`` to ``out`` with its record beside it."""
    _check_request(request, out)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    calib, held_out, held_labels = _images(spec, labels, request)
    example = torch.randn(request.batch, spec.channels, *spec.input_size)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".hybridvision-export-") as tmp:
        staged = Path(tmp) / out.name
        _write(model, staged, example, calib, request)
        checked = _check(model, staged, held_out, held_labels, request) if request.check else (None, None)
        _put_in_place(staged, out)
    record = Artifact(
        name,
        request.format,
        request.precision,
        RUNTIME_OF[request.format],
        out.name,
        spec,
        labels,
        check=_check_record(checked, request),
    )
    return ExportOutcome(out, write_artifact(record, out), checked[0], checked[1], _float_layers(request))


def _check_request(request: ExportRequest, out: str | Path) -> None:
    if request.format not in FORMATS or request.precision not in PRECISIONS:
        raise ValueError(f"format {request.format!r} / precision {request.precision!r}: see --help for the choices")
    if Path(out).suffix != FORMATS[request.format]:
        raise ValueError(f"--out {out}: a {request.format} file ends in {FORMATS[request.format]}")
    if request.precision == "fp16" and request.format != "onnx":
        raise ValueError("--precision fp16 is exported as ONNX only; use --format onnx, or fp32/int8")
    if request.precision == "int8" and not request.calib:
        raise ValueError("--precision int8 needs calibration images: --calib fashion-mnist or --calib IMAGE_DIR")


def _images(spec: Preprocess, labels: tuple[str, ...], request: ExportRequest) -> tuple:
    """(calibration batch or None, check inputs, their labels or None): float32 model inputs, disjoint sets;
    without ``calib``, random normal check inputs."""
    if request.calib:
        cal, held = calibration_and_check(
            request.calib, spec, labels, request.calib_count, request.check_count, request.seed
        )
        return torch.from_numpy(cal.inputs(spec)), held.inputs(spec), held.labels
    rng = np.random.default_rng(request.seed)
    count = max(request.batch, 4)
    return None, rng.standard_normal((count, spec.channels, *spec.input_size), dtype=np.float32), None


def _write(model: nn.Module, path: Path, example: torch.Tensor, calib: torch.Tensor | None, req: ExportRequest):
    int8 = req.precision == "int8"
    try:
        if req.format == "executorch":
            write_executorch(model, example, path, req.dynamic_batch, calib if int8 else None)
        elif req.format == "pt2":
            program = quantize_pt2e(model, example, calib, req.dynamic_batch) if int8 else None
            write_program(program or fp32_program(model, example, req.dynamic_batch), path)
        else:
            _write_onnx_based(model, path, example, calib, req)
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001 - every exporter raises its own types; the first line names the operator
        raise ExportError(f"{req.format} {req.precision} export failed: {reason(e)}") from e


def _write_onnx_based(model: nn.Module, path: Path, example: torch.Tensor, calib, req: ExportRequest) -> None:
    onnx_path = path if req.format == "onnx" and req.precision != "int8" else path.with_name("fp32.onnx")
    net = copy.deepcopy(model).half() if req.precision == "fp16" else model
    export_onnx(net, onnx_path, tuple(example.shape), dynamic_batch=req.dynamic_batch)
    if req.precision == "int8":
        target = path if req.format == "onnx" else path.with_name("int8.onnx")
        quantize_onnx(onnx_path, target, calib.numpy(), None if req.dynamic_batch else req.batch)
        onnx_path = target
    if req.format == "openvino":
        write_openvino(onnx_path, path)


def _check(
    model: nn.Module, path: Path, x: np.ndarray, labels: np.ndarray | None, req: ExportRequest
) -> tuple[Score | None, float | None]:
    """Run the staged file on the check images; raise ExportError beyond the precision's tolerance."""
    if not req.dynamic_batch:
        keep = len(x) - len(x) % req.batch  # a fixed-batch file sees whole batches only
        if keep == 0:
            raise ExportError(f"the check needs at least {req.batch} images (the file's fixed batch)")
        x, labels = x[:keep], None if labels is None else labels[:keep]
    try:
        run = load_runner(path, req.threads, req.precision)
        got = _batched(run, x, req.batch, req.dynamic_batch)
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001 - a runtime that cannot load or run the file: name it and why
        raise ExportError(f"{RUNTIME_OF[req.format]} cannot run the exported file: {reason(e)}") from e
    with torch.no_grad():
        want = np.concatenate(
            [model.eval()(torch.from_numpy(c)).float().numpy() for c in np.split(x, range(32, len(x), 32))]
        )
    if req.precision == "int8":
        found = score(want, got, labels)
        problems = found.problems(req.tolerance)
        if problems:
            raise ExportError(f"int8 check failed ({found.text()}): " + "; ".join(problems))
        return found, None
    atol, rtol = FLOAT_TOLERANCE[req.precision]
    diff, limit = float(np.abs(got - want).max()), atol + rtol * float(np.abs(want).max())
    if not diff <= limit:
        raise ExportError(
            f"{RUNTIME_OF[req.format]} output differs from PyTorch fp32 by {diff:.3g} (tolerance {atol:g} + "
            f"{rtol:g} * max|output| = {limit:.3g})"
        )
    return score(want, got, labels), diff


def _batched(run, x: np.ndarray, batch: int, dynamic: bool) -> np.ndarray:
    """Outputs of ``run`` over ``x``, ``batch`` images a call; a free batch is also run at batch 1 (first)."""
    first = [run(x[:1])] if dynamic else []
    return np.concatenate(first + [run(x[i : i + batch]) for i in range(len(first), len(x), batch)])


def _put_in_place(staged: Path, out: Path) -> None:
    if staged.suffix == ".xml":
        os.replace(staged.with_suffix(".bin"), out.with_suffix(".bin"))
    os.replace(staged, out)


def _check_record(checked: tuple, request: ExportRequest) -> dict | None:
    found, diff = checked
    if found is None:
        return None
    out = found.as_dict() | {"source": request.calib or "random normal inputs"}
    if diff is not None:
        out["max_abs_diff"] = diff
    if request.precision == "int8":
        out["tolerance"] = request.tolerance.text()
    return out


def _float_layers(request: ExportRequest) -> tuple[str, ...]:
    return FLOAT_LAYERS if request.precision == "int8" else ()
