"""Export to ONNX (dynamo exporter, legacy TorchScript exporter as fallback) and check it in onnxruntime."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """An export that failed or whose outputs differ from PyTorch's beyond the tolerance."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    exporter: str  # "dynamo" or "legacy"
    max_abs_diff: float | None = None  # onnxruntime vs PyTorch on the check input


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_shape: tuple[int, int, int, int],
    *,
    dynamic_batch: bool = False,
    opset: int = 18,
    exporter: str = "auto",
) -> ExportResult:
    """Write ``model`` (eval mode) as ONNX; ``exporter`` is 'dynamo', 'legacy' or 'auto' (dynamo, then legacy)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    x = torch.randn(input_shape)
    order = ["dynamo", "legacy"] if exporter == "auto" else [exporter]
    errors = []
    for kind in order:
        try:
            _export(kind, model, x, path, dynamic_batch, opset)
            return ExportResult(path, kind)
        except Exception as e:  # noqa: BLE001 - the next exporter may succeed; all errors are reported
            log.warning("%s exporter failed: %s", kind, str(e).splitlines()[0] if str(e) else type(e).__name__)
            errors.append(f"{kind}: {e}")
    raise ExportError("ONNX export failed:\n" + "\n".join(errors))


def _export(kind: str, model: nn.Module, x: torch.Tensor, path: Path, dynamic_batch: bool, opset: int) -> None:
    quiet = contextlib.redirect_stdout(io.StringIO())
    with torch.no_grad(), quiet:
        if kind == "dynamo":
            shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
            program = torch.onnx.export(
                model,
                (x,),
                dynamo=True,
                dynamic_shapes=shapes,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
            )
            program.save(str(path))
        elif kind == "legacy":
            axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=False,
                opset_version=min(opset, 17),
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=axes,
            )
        else:
            raise ValueError(f"unknown exporter {kind!r}; expected 'dynamo', 'legacy' or 'auto'")


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session (``threads`` intra-op threads, default: onnxruntime's)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def check_onnx(model: nn.Module, path: str | Path, x: torch.Tensor, atol: float = 1e-4) -> float:
    """Max |onnxruntime - PyTorch| on ``x``; raises ExportError above ``atol``."""
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    got = session.run(None, {name: x.numpy()})[0]
    with torch.no_grad():
        want = model.eval()(x).numpy()
    if got.shape != want.shape:
        raise ExportError(f"onnxruntime output shape {got.shape} != PyTorch {want.shape}")
    diff = float(np.abs(got - want).max())
    if not diff <= atol:
        raise ExportError(f"onnxruntime output differs from PyTorch by {diff:.3g} (tolerance {atol:g})")
    return diff
