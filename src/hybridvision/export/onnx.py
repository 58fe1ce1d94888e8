"""Export to ONNX (dynamo exporter, legacy TorchScript exporter as fallback) and check it in onnxruntime.

``export_onnx`` writes atomically: the file appears at its path only once the export (and, with ``check=True``,
the onnxruntime comparison) succeeded, so a failed export never replaces a good file. The check compares
onnxruntime's outputs with PyTorch's fp32 outputs: ``max |ort - torch| <= atol + rtol * max |torch|``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..fileio import atomic_write

log = logging.getLogger(__name__)

# Tolerances of the onnxruntime check, per exported precision (against the fp32 PyTorch model's outputs).
# fp32: the reference fixtures' minimum check (1e-4, far above float32 rounding). fp16: half precision keeps
# about 3 significant digits, so 1e-2 + 1e-2 * max|output|.
TOLERANCES = {torch.float32: (1e-4, 0.0), torch.float16: (1e-2, 1e-2)}

# The opsets each exporter writes as asked (torch 2.13): dynamo writes 18 when asked for less, so it is never
# asked for less; the TorchScript ("legacy") exporter starts at 7, and we use it up to 17.
EXPORTERS = ("auto", "dynamo", "legacy")
DYNAMO_MIN_OPSET = 18
LEGACY_OPSETS = (7, 17)
DEFAULT_OPSET = {"dynamo": 18, "legacy": 17}


class ExportError(RuntimeError):
    """An export that failed or whose outputs differ from PyTorch's beyond the tolerance."""


class RuntimeUnsupported(ExportError):
    """onnxruntime cannot load or run the exported model here (e.g. fp16 kernels missing on this provider)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    exporter: str  # "dynamo" or "legacy"
    max_abs_diff: float | None = None  # onnxruntime vs PyTorch on the check inputs (None: not checked)
    dtype: str = "float32"
    tolerance: str = ""  # the check's tolerance in words
    opset: int = 0  # the ONNX opset the file holds


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_shape: tuple[int, int, int, int],
    *,
    dynamic_batch: bool = False,
    opset: int | None = None,
    exporter: str = "auto",
    check: bool = False,
    reference: nn.Module | None = None,
    check_batches: Sequence[int] = (),
) -> ExportResult:
    """Write ``model`` (eval mode, in its parameters' dtype) as ONNX.

    Args:
        model: the module to export; fp16 modules export fp16 graphs.
        path: output file; written atomically.
        input_shape: example input (B, C, H, W); a backbone checks it first (``InputError`` naming valid sizes).
        dynamic_batch: leave the batch dimension free.
        opset: ONNX opset, written exactly (``exporters_for`` says which exporter can); None: 18 with the dynamo
            exporter, 17 with the legacy one.
        exporter: 'dynamo', 'legacy' or 'auto' (dynamo, then legacy on failure: with ``opset`` None, at 17).
        check: run the file in onnxruntime and compare with ``reference`` (default ``model``) in fp32 before
            the file is put in place; raises ExportError beyond ``TOLERANCES``.
        check_batches: batch sizes to check (default: the example's; with ``dynamic_batch`` also 1 and 3).
    """
    order = exporters_for(exporter, opset)
    model = model.eval()
    dtype = next(model.parameters()).dtype
    x = torch.randn(input_shape, dtype=dtype)
    if callable(getattr(model, "check_input", None)):
        model.check_input(x)  # a size the model cannot take is the caller's to fix, not an export failure
    outcome: dict[str, object] = {}

    def write(tmp: str) -> None:
        outcome["exporter"] = _export_any(order, model, x, Path(tmp), dynamic_batch, opset)
        outcome["opset"] = written_opset(tmp)
        if check:
            batches = check_batches or ((input_shape[0], 1, 3) if dynamic_batch else (input_shape[0],))
            inputs = [torch.randn(b, *input_shape[1:]) for b in batches]
            outcome["diff"] = max(check_onnx(reference or model, tmp, xi, *TOLERANCES[dtype]) for xi in inputs)

    atomic_write(path, write)
    kind = str(outcome["exporter"])
    return ExportResult(
        Path(path),
        kind,
        outcome.get("diff"),  # type: ignore[arg-type]
        str(dtype).removeprefix("torch."),
        tolerance_text(dtype) if check else "",
        int(outcome["opset"] or opset or DEFAULT_OPSET[kind]),  # type: ignore[arg-type]
    )


def exporters_for(exporter: str, opset: int | None) -> list[str]:
    """The exporters to try, in order, so that the file holds ``opset`` exactly (None: each exporter's default).

    Raises ValueError naming what each exporter writes when none can write ``opset``.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; expected 'dynamo', 'legacy' or 'auto'")
    order = ["dynamo", "legacy"] if exporter == "auto" else [exporter]
    if opset is None:
        return order
    low, high = LEGACY_OPSETS
    can = {"dynamo": opset >= DYNAMO_MIN_OPSET, "legacy": low <= opset <= high}
    usable = [kind for kind in order if can[kind]]
    if not usable:
        ranges = f"the legacy exporter writes opsets {low}..{high}, the dynamo exporter {DYNAMO_MIN_OPSET} and newer"
        asked = "" if exporter == "auto" else f" with the {exporter} exporter"
        raise ValueError(f"ONNX opset {opset} cannot be written{asked}: {ranges}")
    return usable


def written_opset(path: str | Path) -> int:
    """The default-domain opset an ONNX file holds (0 when the onnx package is missing to read it)."""
    try:
        import onnx
    except ImportError:
        return 0
    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def tolerance_text(dtype: torch.dtype) -> str:
    """The check's tolerance in words, e.g. 'max|diff| <= 1e-04'."""
    atol, rtol = TOLERANCES[dtype]
    return f"max|diff| <= {atol:.0e}" + (f" + {rtol:.0e} * max|output|" if rtol else "")


def _export_any(order: list[str], model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool, opset: int | None):
    errors = []
    for kind in order:
        try:
            _export(kind, model, x, path, dynamic, opset or DEFAULT_OPSET[kind])
            return kind
        except Exception as e:  # noqa: BLE001 - the next exporter may succeed; all errors are reported
            if kind != order[-1]:
                log.warning("%s exporter failed (%s); trying the next one", kind, reason(e))
            errors.append(f"{kind}: {reason(e)}")
    raise ExportError("ONNX export failed: " + "; ".join(errors))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def reason(error: BaseException) -> str:
    """The first line of the innermost cause of ``error`` (the exporters wrap the real reason in boilerplate),
    without terminal colour codes."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = _ANSI.sub("", str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress prints and warnings (failures still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with _native_stdout_muted(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _native_stdout_muted() -> Iterator[None]:
    """File descriptor 1 on /dev/null: the TorchScript exporter prints the whole graph there (from C++) on failure."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _export(kind: str, model: nn.Module, x: torch.Tensor, path: Path, dynamic_batch: bool, opset: int) -> None:
    with torch.no_grad(), _quiet():
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
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=axes,
            )
        else:
            raise ValueError(f"unknown exporter {kind!r}; expected 'dynamo', 'legacy' or 'auto'")


def onnx_session(path: str | Path, threads: int | None = None, device: str = "cpu"):
    """An onnxruntime session (``threads`` intra-op threads, default: onnxruntime's) on CPU or CUDA."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeUnsupported(
                "this onnxruntime has no CUDAExecutionProvider; install onnxruntime-gpu to run ONNX models on CUDA"
            )
        index = torch.device(device).index or 0
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def check_onnx(model: nn.Module, path: str | Path, x: torch.Tensor, atol: float = 1e-4, rtol: float = 0.0) -> float:
    """Max |onnxruntime - PyTorch fp32| on ``x``; raises ExportError above ``atol + rtol * max|PyTorch|``.

    ``model`` is the fp32 reference; ``x`` is cast to the ONNX input's dtype (e.g. fp16) for onnxruntime.
    """
    got = _run_onnx(path, x)
    with torch.no_grad():
        want = model.eval()(x.float()).float().numpy()
    if got.shape != want.shape:
        raise ExportError(f"onnxruntime output shape {got.shape} != PyTorch {want.shape}")
    diff = float(np.abs(got.astype(np.float32) - want).max())
    limit = atol + rtol * float(np.abs(want).max())
    if not diff <= limit:
        raise ExportError(
            f"onnxruntime output differs from PyTorch by {diff:.3g} (tolerance {atol:g} + {rtol:g} * max|output| "
            f"= {limit:.3g})"
        )
    return diff


def _run_onnx(path: str | Path, x: torch.Tensor) -> np.ndarray:
    try:
        session = onnx_session(path)
        inp = session.get_inputs()[0]
        dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        return session.run(None, {inp.name: x.numpy().astype(dtype)})[0]
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types; report them in one line
        raise RuntimeUnsupported(f"onnxruntime (CPUExecutionProvider) cannot run {Path(path).name}: {reason(e)}") from e
