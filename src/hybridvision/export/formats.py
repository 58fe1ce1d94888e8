"""Writing the runtimes' own files from a model (or from its ONNX file), each atomically.

- OpenVINO IR (``.xml`` + ``.bin``): converted from the ONNX file (fp32, or the QDQ int8 file, whose
  QuantizeLinear/DequantizeLinear pairs OpenVINO runs as int8), saved without its default fp16 weight compression;
- ExecuTorch (``.pte``): ``torch.export`` lowered to XNNPACK; int8 through XNNPACK's PT2E quantizer
  (per-channel symmetric int8 weights, int8 activations), calibrated like the other int8 paths;
- torch.export program (``.pt2``): fp32, or the PT2E int8 program of ``quantize.quantize_pt2e``.
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from ..fileio import atomic_write
from .quantize import _quiet, batch_dims, quantize_pt2e
from .runtimes import telemetry_off


def write_openvino(onnx_path: str | Path, out: str | Path) -> None:
    """Convert ``onnx_path`` to OpenVINO IR at ``out`` (``.xml``; its ``.bin`` beside it), weights as stored."""
    telemetry_off()
    import openvino as ov

    out = Path(out)
    with _quiet():
        model = ov.convert_model(str(onnx_path))
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".ov-") as tmp:
        xml = Path(tmp) / out.name
        ov.save_model(model, str(xml), compress_to_fp16=False)
        os.replace(xml.with_suffix(".bin"), out.with_suffix(".bin"))  # weights first: the .xml names them
        os.replace(xml, out)


def write_executorch(
    model: nn.Module, example: torch.Tensor, out: str | Path, dynamic_batch: bool, calib: torch.Tensor | None
) -> None:
    """Lower ``model`` to an ExecuTorch program with the XNNPACK backend; int8 when ``calib`` is given."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    model = _contiguous(model)
    with torch.no_grad(), _quiet():
        if calib is None:
            program = torch.export.export(model.eval(), (example,), dynamic_shapes=batch_dims(dynamic_batch))
        else:
            program = quantize_pt2e(model, example, calib, dynamic_batch, quantizer=xnnpack_quantizer())
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        lowered = edge.to_executorch(_planned_for(dict(program.range_constraints)))
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(lowered.buffer))


def _planned_for(ranges: dict):
    """ExecuTorch's lowering config, planning memory for the shapes' exported ranges (the whole free batch).

    While lowering, torch's fake convolution asks which kernel a batch would use (a batch of 16 or more picks
    another one) and narrows the batch's range to what the example batch implied: 1..15 for an example of 2.
    ExecuTorch then plans the input for 15 images and refuses 16. The XNNPACK kernels take any batch, so the
    ranges ``torch.export`` recorded are put back before the memory plan is made.
    """
    from executorch.exir import ExecutorchBackendConfig
    from executorch.exir.passes.sym_shape_eval_pass import ConstraintBasedSymShapeEvalPass

    class ExportedRanges(ConstraintBasedSymShapeEvalPass):
        def call(self, graph_module):
            for node in graph_module.graph.nodes:
                value = node.meta.get("val")
                for dim in getattr(value, "shape", ()) if node.op == "placeholder" else ():
                    if isinstance(dim, torch.SymInt) and dim.node.expr in ranges:
                        dim.node.shape_env.var_to_range[dim.node.expr] = ranges[dim.node.expr]
            return super().call(graph_module)

    return ExecutorchBackendConfig(sym_shape_eval_pass=ExportedRanges())


def _contiguous(model: nn.Module) -> nn.Module:
    """``model``, or a copy in NCHW: XNNPACK's layout pass rejects channels_last weights (``bench`` runs NHWC)."""
    if not any(p.dim() == 4 and not p.is_contiguous() for p in model.parameters()):
        return model
    return copy.deepcopy(model).to(memory_format=torch.contiguous_format)


def xnnpack_quantizer():
    """XNNPACK's PT2E quantizer: symmetric per-channel int8 weights, static int8 activations.

    Squeeze-excitation stays in float: quantized, it makes XNNPACK's int8 runtime refuse the program when it sets
    the shapes (``xnn_status_invalid_parameter``, ``execute()`` error 0x1) on every AsCAN and CoAtNet model, and
    its two small linear layers on the pooled channels cost next to nothing.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    from ..models.blocks.conv import SqueezeExcite

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    return quantizer.set_module_type(SqueezeExcite, None)


def write_program(program, out: str | Path) -> None:
    """Save a ``torch.export`` program (fp32 or PT2E int8) to ``out`` (``.pt2``)."""
    buffer = io.BytesIO()  # torch.export.save wants a buffer or a name ending in .pt2, not a temporary name
    torch.export.save(program, buffer)
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))


def fp32_program(model: nn.Module, example: torch.Tensor, dynamic_batch: bool):
    """The fp32 ``torch.export`` program of ``model``."""
    with torch.no_grad(), _quiet():
        return torch.export.export(model.eval(), (example,), dynamic_shapes=batch_dims(dynamic_batch))
