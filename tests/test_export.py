"""torch.compile(fullgraph=True), torch.export and ONNX (onnxruntime parity) on a test variant of every family."""

from __future__ import annotations

import pytest
import torch

import hybridvision as hv
from hybridvision.export import check_onnx, export_onnx

TEST_MODELS = hv.list_models(test=True, task="classification")


def sample(model, b=2):
    return torch.randn(b, model.config.in_chans, *model.config.img_hw)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_no_graph_breaks(name):
    """fullgraph=True fails on any graph break; the eager backend checks that without code generation."""
    model = hv.create_model(name).eval()
    x = sample(model)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.parametrize("name", TEST_MODELS)
def test_inductor_compile_matches_eager(name):
    torch._dynamo.reset()
    model = hv.create_model(name).eval()
    x = sample(model)
    with torch.no_grad():
        compiled = torch.compile(model, fullgraph=True)
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_torch_export(name):
    model = hv.create_model(name).eval()
    x = sample(model)
    program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}})
    torch.testing.assert_close(program.module()(x), model(x))
    torch.testing.assert_close(program.module()(x[:1]), model(x[:1]))


@pytest.mark.parametrize("name", TEST_MODELS)
def test_onnx_export_runs_in_onnxruntime(name, tmp_path):
    pytest.importorskip("onnxruntime")
    model = hv.create_model(name).eval()
    result = export_onnx(
        model, tmp_path / f"{name}.onnx", (2, model.config.in_chans, *model.config.img_hw), dynamic_batch=True
    )
    assert result.exporter == "dynamo"
    for b in (1, 3):  # dynamic batch
        assert check_onnx(model, result.path, sample(model, b), atol=1e-4) < 1e-4
