"""Deployment: export to ONNX, OpenVINO, ExecuTorch and torch.export programs, int8 quantization calibrated on
real images, the runtimes that run the files, and the preprocessing record written beside each exported model.

One module per concern: ``onnx`` (export and the onnxruntime check), ``calib`` (calibration and check images),
``quantize`` (onnxruntime QDQ and PT2E int8), ``runtimes`` (one loader per runtime), ``scoring`` (int8 vs fp32),
``artifact`` (the preprocessing and labels beside the model).
"""

from .onnx import (
    DEFAULT_OPSET,
    DYNAMO_MIN_OPSET,
    EXPORTERS,
    LEGACY_OPSETS,
    TOLERANCES,
    ExportError,
    ExportResult,
    RuntimeUnsupported,
    check_onnx,
    export_onnx,
    exporters_for,
    onnx_session,
    reason,
    tolerance_text,
    written_opset,
)

__all__ = [
    "DEFAULT_OPSET",
    "DYNAMO_MIN_OPSET",
    "EXPORTERS",
    "LEGACY_OPSETS",
    "TOLERANCES",
    "ExportError",
    "ExportResult",
    "RuntimeUnsupported",
    "check_onnx",
    "export_onnx",
    "exporters_for",
    "onnx_session",
    "reason",
    "tolerance_text",
    "written_opset",
]
