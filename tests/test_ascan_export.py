"""Window/grid attention and the study's conv blocks survive torch.compile(fullgraph), torch.export and ONNX.

(The registry tests cover ``ascan_test`` itself; this covers the partition code paths it does not use.)
"""

from __future__ import annotations

import pytest
import torch

import hybridvision as hv
from hybridvision.export import check_onnx, export_onnx

OVERRIDES = dict(layout=("C", "TC", "CT", "CTT"), attention="grid", conv_block="convnext", window_size=2)


def model_and_input(b: int = 2):
    model = hv.create_model("ascan_test", **OVERRIDES).eval()
    return model, torch.randn(b, 3, 64, 64)


def test_grid_variant_has_no_graph_breaks():
    model, x = model_and_input()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), model(x))


def test_grid_variant_exports_with_dynamic_batch(tmp_path):
    model, x = model_and_input()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
    torch.testing.assert_close(program.module()(x[:1]), model(x[:1]))
    pytest.importorskip("onnxruntime")
    result = export_onnx(model, tmp_path / "grid.onnx", tuple(x.shape), dynamic_batch=True)
    for b in (1, 3):
        assert check_onnx(model, result.path, torch.randn(b, 3, 64, 64), atol=1e-4) < 1e-4
