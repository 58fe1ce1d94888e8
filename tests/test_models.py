"""Registry-driven model tests: every ``*_test`` variant runs; every named model builds and is counted."""

from __future__ import annotations

import math

import pytest
import torch

import hybridvision as hv
from hybridvision.models import InputError
from hybridvision.models.blocks import RelPosBias
from hybridvision.profile import model_cost

TEST_MODELS = hv.list_models("*_test")
ALL_MODELS = hv.list_models()


def make(name: str, **kw) -> torch.nn.Module:
    return hv.create_model(name, **kw)


def batch(model, b: int = 2, size: int | None = None) -> torch.Tensor:
    h, w = model.config.img_hw if size is None else (size, size)
    return torch.randn(b, model.config.in_chans, h, w)


def test_every_family_has_a_test_variant():
    families = {hv.get_entry(n).family for n in ALL_MODELS}
    assert families == {hv.get_entry(n).family for n in TEST_MODELS}


@pytest.mark.parametrize("name", TEST_MODELS)
def test_forward_shape_and_finite(name):
    model = make(name).eval()
    out = model(batch(model))
    assert out.shape == (2, model.config.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", TEST_MODELS)
def test_backward_reaches_every_parameter(name):
    model = make(name, drop_path_rate=0.1).train()
    model(batch(model)).logsumexp(-1).mean().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, f"no grad for {n}"
        assert torch.isfinite(p.grad).all(), f"non-finite grad for {n}"


@pytest.mark.parametrize("name", TEST_MODELS)
def test_intermediates_match_feature_info(name):
    model = make(name).eval()
    x = batch(model)
    feats = model.forward_intermediates(x)
    assert len(feats) == len(model.feature_info) == len(model.stages)
    for f, info in zip(feats, model.feature_info):
        assert f.shape == (2, info.channels, x.shape[2] // info.reduction, x.shape[3] // info.reduction)
    assert model.feature_info[-1].channels == model.forward_features(x).shape[1]
    last_two = model.forward_intermediates(x, indices=2)
    assert [t.shape for t in last_two] == [t.shape for t in feats[-2:]]
    assert torch.equal(model.forward_intermediates(x, indices=[-1])[0], feats[-1])
    with pytest.raises(ValueError, match="out of range"):
        model.forward_intermediates(x, indices=[len(feats)])


@pytest.mark.parametrize("name", TEST_MODELS)
def test_forward_head_pre_logits_and_reset_classifier(name):
    model = make(name).eval()
    x = batch(model)
    pooled = model.forward_head(model.forward_features(x), pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.num_classes == 7 and model.config.num_classes == 7
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)
    assert make(name, num_classes=0)(x).shape == (2, model.num_features)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_bad_inputs_raise_clear_errors(name):
    model = make(name).eval()
    x = batch(model)
    s = model.stride
    with pytest.raises(InputError, match="4-D"):
        model(x[0])
    with pytest.raises(InputError, match="input channels"):
        model(torch.randn(2, model.config.in_chans + 1, *x.shape[2:]))
    with pytest.raises(InputError, match="floating-point"):
        model((x * 100).to(torch.uint8))
    with pytest.raises(InputError, match=f"multiple of {s}.*Nearest valid sizes: height {x.shape[2]} or"):
        model(torch.randn(2, model.config.in_chans, x.shape[2] + 1, x.shape[3]))
    with pytest.raises(InputError, match="multiple"):
        model.forward_intermediates(torch.randn(2, model.config.in_chans, s // 2, s))


@pytest.mark.parametrize("name", TEST_MODELS)
def test_other_input_sizes_and_in_chans(name):
    model = make(name, in_chans=1).eval()
    s = model.stride
    for h, w in [(2 * s, 3 * s), (s, s)]:
        assert model(torch.randn(1, 1, h, w)).shape == (1, model.config.num_classes)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_layout_and_eval_determinism(name):
    model = make(name).eval()
    x = batch(model)
    a = model(x)
    assert torch.equal(a, model(x))
    b = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    model.memory_format = torch.contiguous_format
    torch.testing.assert_close(a, model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_fuse_keeps_outputs(name, randomize_batchnorms):
    model = make(name).eval()
    randomize_batchnorms(model)
    x = batch(model)
    ref = model(x)
    assert model.fuse() is model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules() if not _unfoldable(model, m))
    torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-4)
    with pytest.raises(RuntimeError, match="eval"):
        make(name).train().fuse()


def _unfoldable(model, bn) -> bool:
    # a BatchNorm followed by an activation or SE before the next conv cannot be folded
    for m in model.modules():
        if getattr(m, "pre_norm", None) is bn or (getattr(m, "se_early", False) and getattr(m, "norm2", None) is bn):
            return True
    return False


@pytest.mark.parametrize("name", TEST_MODELS)
def test_set_input_size_resizes_tables(name):
    model = make(name).eval()
    s = model.stride
    new = model.config.img_hw[0] + 2 * s
    x = torch.randn(1, model.config.in_chans, new, new)
    before = model(x)  # run-time resampling
    model.set_input_size(new)
    assert model.config.img_size == (new, new)
    for info, stage in zip(model.feature_info, model.stages):
        for m in stage.modules():
            if isinstance(m, RelPosBias) and m.global_grid:
                assert m.size == (new // info.reduction, new // info.reduction)
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_init_is_deliberate(name):
    """No conv/linear is left at PyTorch's default init (the official EfficientMod bug): biases start at ~0
    (the default draws U(+-1/sqrt(fan_in))) and weight scales are sane."""
    model = make(name)
    for n, m in model.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and not n.startswith("head"):
            fan_in = m.weight[0].numel()
            fan_out = m.weight.shape[0] * m.weight[0, 0].numel() // getattr(m, "groups", 1)
            assert 0 < m.weight.std().item() < 3.0 / math.sqrt(min(fan_in, fan_out)), f"{n}: weight std off"
            if m.bias is not None:
                assert m.bias.abs().max().item() < 1e-4, f"{n}: bias left at the default init"


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if "paper_params_m" in hv.get_entry(n).card])
def test_paper_sizes(name):
    """Paper configs land within 2% of the paper's params and 3% of its MACs at 224 (built on meta)."""
    card = hv.get_entry(name).card
    cost = model_cost(name)
    assert abs(cost.params / 1e6 / card["paper_params_m"] - 1) < 0.02, cost.params
    if "paper_gmacs" in card:
        assert abs(cost.macs / 1e9 / card["paper_gmacs"] - 1) < 0.03, cost.macs


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if not n.endswith("_test")])
def test_full_size_models_build(name):
    with torch.device("meta"):
        model = make(name)
    assert model.feature_info[-1].reduction == model.stride
    assert sum(p.numel() for p in model.parameters()) > 1e6
