"""Our model exported to a runtime (onnxruntime, OpenVINO, ExecuTorch, or a PT2E int8 program for torch.compile),
in fp32 or int8, prepared in the parent process before any timing.

Each file is written with ``export.deploy.export_artifact`` and checked there against the fp32 PyTorch model:
fp32 files within ``FLOAT_TOLERANCE`` (1e-4 + 1e-5 * max|output| on random inputs), int8 files at least
``int8_min_sqnr_db`` of output SQNR on held-out images of ``calib`` (calibrated on others). A file that cannot be
written or misses its tolerance is skipped with a note naming why; it is never timed.
"""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from ..export.calib import card_preprocess, numbered_labels
from ..export.deploy import FORMATS, ExportRequest, export_artifact
from ..export.onnx import ExportError
from ..export.scoring import Tolerance
from .config import BenchConfig, installed
from .jobs import Job

FORMAT_OF = {"onnxruntime": "onnx", "openvino": "openvino", "executorch": "executorch", "torch": "pt2"}


def plan_runtime(
    name: str, ours: nn.Module, chw: tuple, backend: str, precision: str, config: BenchConfig, workdir: Path, plan
) -> Job | None:
    """The job timing ``ours`` through ``backend`` in ``precision``, or None with a note in ``plan``."""
    label = f"{backend} {precision}"
    if not installed(backend):
        plan.notes.append(f"{name}: {label} skipped: {backend} is not installed")
        return None
    model = copy.deepcopy(ours).eval()
    if config.fused and callable(getattr(model, "fuse", None)):
        model.fuse()
    fmt = FORMAT_OF[backend]
    path = workdir / f"{name}.{backend}.{precision}{FORMATS[fmt]}"
    int8 = precision == "int8"
    request = ExportRequest(
        format=fmt,
        precision=precision,
        batch=2,
        dynamic_batch=True,
        calib=config.calib if int8 else None,
        calib_count=config.calib_count,
        check_count=config.calib_count,
        check=True,
        tolerance=Tolerance.sqnr_only(config.int8_min_sqnr_db),
        threads=config.threads,
        seed=config.seed,
    )
    labels = numbered_labels(model.config.num_classes)
    try:
        outcome = export_artifact(model, path, card_preprocess(model, labels), labels, name, request)
    except (ExportError, OSError, ValueError) as e:
        plan.notes.append(f"{name}: {label} skipped: {e}")
        return None
    job = Job(model=name, input_chw=chw, backend=backend, precision=precision, model_file=str(path))
    if outcome.max_abs_diff is not None:
        plan.parity[job.key] = outcome.max_abs_diff
    if int8 and outcome.score is not None:
        plan.notes.append(f"{name}: {label} checked against fp32: {outcome.score.text()}")
    return job
