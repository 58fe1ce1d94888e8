"""Static int8: per-channel int8 weights and activations calibrated on real images, two ways.

- ``quantize_onnx``: onnxruntime's ``quantize_static`` on an fp32 ONNX file, QDQ format (QuantizeLinear /
  DequantizeLinear pairs that runtimes fuse into int8 kernels; OpenVINO reads the same file), weights symmetric
  int8 per output channel, activations asymmetric uint8 per tensor (the u8 x s8 form x86 VNNI instructions take),
  min/max calibration.
- ``quantize_pt2e``: ``torch.export`` + torchao's PT2E flow with the x86 inductor quantizer (the same scheme:
  per-channel int8 weights, uint8 activations); ``torch.compile`` turns its graph into int8 kernels.

What stays in floating point, and why (``FLOAT_LAYERS``): only convolutions and linear layers (the GEMMs that
hold nearly all the MACs) run in int8. Softmax, LayerNorm/GroupNorm and the attention's two activation x
activation matmuls (q·kᵀ and probabilities·v) stay float: softmax and the norms divide by data-dependent sums
that one per-tensor scale cannot cover, the attention logits have a wide, input-dependent range, and the
probabilities are mostly near zero with a few near one, so uint8 rounds most of them to zero; together they are
a small share of the MACs. Elementwise ops (GELU, sigmoid, adds, the modulation's products) stay float too: they
are memory-bound, and requantizing around each would cost more than it saves.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

FLOAT_LAYERS = (
    "softmax",
    "layer/group norm",
    "attention matmuls (q·kᵀ, probabilities·v)",
    "elementwise activations and residual adds",
)
ORT_INT8_OPS = ("Conv", "MatMul", "Gemm")  # quantized where one input is a weight (an initializer)
CALIB_BATCH = 16  # calibration batch when the model's batch is free


def quantize_onnx(
    fp32_path: str | Path, out_path: str | Path, calib: np.ndarray, batch: int | None = None
) -> list[str]:
    """Write a QDQ int8 copy of ``fp32_path`` calibrated on ``calib`` (N, C, H, W float32, normalised).

    ``batch``: the file's fixed batch size (None: free, calibrated in batches of ``CALIB_BATCH``). Returns the
    names of the MatMul nodes kept in float (the attention's activation x activation products).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="hybridvision-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        with _quiet():
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        kept = activation_matmuls(model)
        with _quiet():
            quantize_static(
                str(prepared),
                str(out_path),
                _Reader(model.graph.input[0].name, calib, batch or CALIB_BATCH),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(ORT_INT8_OPS),
                nodes_to_exclude=kept,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
    return kept


def activation_matmuls(model) -> list[str]:
    """MatMul nodes neither of whose inputs is a weight: the attention's q·kᵀ and probabilities·v."""
    weights = {init.name for init in model.graph.initializer}
    weights |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not any(i in weights for i in n.input)]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: ``get_next()`` -> {input name: batch} or None at the end."""

    def __init__(self, name: str, data: np.ndarray, batch: int) -> None:
        self.name, self.data, self.batch = name, data, batch
        self.start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start + self.batch > len(self.data):
            return None  # a fixed-batch file takes only full batches; the remainder is not seen
        chunk = self.data[self.start : self.start + self.batch]
        self.start += self.batch
        return {self.name: np.ascontiguousarray(chunk)}

    def rewind(self) -> None:
        self.start = 0


def quantize_pt2e(model: nn.Module, example: torch.Tensor, calib: torch.Tensor, dynamic_batch: bool, quantizer=None):
    """The int8 ``torch.export`` program of ``model`` (eval, fused), calibrated on ``calib`` (N, C, H, W).

    ``quantizer``: a PT2E quantizer (default: torchao's ``X86InductorQuantizer``, per-channel weights, static
    activations). Returns the converted ExportedProgram (batch free when ``dynamic_batch``).
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    shapes = batch_dims(dynamic_batch)
    with torch.no_grad(), _quiet():
        graph = torch.export.export(model.eval(), (example,), dynamic_shapes=shapes).module()
        prepared = prepare_pt2e(graph, quantizer if quantizer is not None else x86_quantizer())
        for chunk in calib.split(CALIB_BATCH if dynamic_batch else example.shape[0]):
            if dynamic_batch or chunk.shape[0] == example.shape[0]:
                prepared(chunk)
        converted = convert_pt2e(prepared)
        return torch.export.export(converted, (example,), dynamic_shapes=shapes)


def x86_quantizer():
    """torchao's X86InductorQuantizer with its default static config (per-channel int8 weights, u8 activations)."""
    with _quiet():
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    return xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())


MAX_BATCH = 64  # upper bound of a free batch in torch.export programs (ExecuTorch plans its memory for it)


def batch_dims(dynamic_batch: bool, max_batch: int = MAX_BATCH) -> dict | None:
    """torch.export's dynamic_shapes for a free batch dimension (1..``max_batch``) of the one input ``x``."""
    return {"x": {0: torch.export.Dim("batch", min=1, max=max_batch)}} if dynamic_batch else None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the quantizers' progress logs and prints (torchao reports its optional GPU kernels at import)."""
    names = ("root", "torchao", "onnxruntime", "torch.export", "torch._export")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
