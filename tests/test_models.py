"""Registry-driven model tests: every test variant runs and round-trips; every named model builds and is counted.

timm's own model-contract tests, ported, live in tests/test_timm_contract.py.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import hybridvision as hv
from hybridvision.macs import model_cost
from hybridvision.models import InputError
from hybridvision.models.blocks import RelPosBias

TEST_MODELS = hv.list_models(test=True, task="classification")
ALL_MODELS = hv.list_models(task="classification")


def make(name: str, **kw) -> torch.nn.Module:
    return hv.create_model(name, **kw)


def batch(model, b: int = 2, size: int | None = None) -> torch.Tensor:
    h, w = model.config.img_hw if size is None else (size, size)
    return torch.randn(b, model.config.in_chans, h, w)


def test_test_variants_are_a_registry_flag():
    assert {"ascan_test", "coatnet_test", "efficientmod_test"} <= set(TEST_MODELS)
    assert all(hv.get_entry(n).test for n in TEST_MODELS) and not hv.get_entry("coatnet_nano").test
    full = hv.list_models(test=False, task="classification")
    assert not set(full) & set(TEST_MODELS) and sorted(full + TEST_MODELS) == ALL_MODELS
    assert hv.list_models("coatnet*", test=True) == ["coatnet_test"]
    families = {hv.get_entry(n).family for n in ALL_MODELS}
    assert families == {hv.get_entry(n).family for n in TEST_MODELS}  # every family has one


@pytest.mark.parametrize("name", TEST_MODELS)
def test_forward_shape_and_finite(name):
    model = make(name).eval()
    out = model(batch(model))
    assert out.shape == (2, model.config.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", TEST_MODELS)
def test_backward_reaches_every_parameter(name):
    model = make(name, drop_path_rate=0.1, drop_rate=0.1).train()
    model(batch(model)).logsumexp(-1).mean().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, f"no grad for {n}"
        assert torch.isfinite(p.grad).all(), f"non-finite grad for {n}"


@pytest.mark.parametrize("name", TEST_MODELS)
def test_intermediates_match_feature_info(name):
    model = make(name).eval()
    x = batch(model)
    final, feats = model.forward_intermediates(x)
    assert len(feats) == len(model.feature_info) == len(model.stages) + 1  # the stem, then every stage
    assert [f["module"] for f in model.feature_info] == ["stem"] + [f"stages.{i}" for i in range(len(model.stages))]
    for f, info in zip(feats, model.feature_info):
        assert f.shape == (2, info["num_chs"], x.shape[2] // info["reduction"], x.shape[3] // info["reduction"])
    torch.testing.assert_close(final, model.forward_features(x), atol=0, rtol=0)
    last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [t.shape for t in last_two] == [t.shape for t in feats[-2:]]
    assert torch.equal(model.forward_intermediates(x, indices=[-1], intermediates_only=True)[0], feats[-1])
    early, (stem, first) = model.forward_intermediates(x, indices=[0, 1], stop_early=True)
    assert torch.equal(stem, feats[0]) and torch.equal(first, feats[1]) and torch.equal(early, feats[1])
    nhwc = model.forward_intermediates(x, indices=[1], output_fmt="NHWC", intermediates_only=True)[0]
    assert torch.equal(nhwc, feats[1].permute(0, 2, 3, 1))
    normed = model.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)[0]
    torch.testing.assert_close(normed, final, atol=0, rtol=0)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_feature_index_errors_say_what_to_pass(name):
    model = make(name).eval()
    x = batch(model)
    levels = len(model.feature_info)
    with pytest.raises(InputError, match=f"feature index {levels} is out of range: this model has {levels}"):
        model.forward_intermediates(x, indices=[levels])
    with pytest.raises(InputError, match=r"indices=\[\] selects no feature level; pass None for all of them"):
        model.forward_intermediates(x, indices=[])
    with pytest.raises(InputError, match="asks for the last 0 feature levels"):
        model.forward_intermediates(x, indices=0)
    with pytest.raises(ValueError, match="output_fmt must be one of NCHW, NHWC, got 'NLC'"):
        model.forward_intermediates(x, output_fmt="NLC")


@pytest.mark.parametrize("name", TEST_MODELS)
def test_forward_head_pre_logits_and_reset_classifier(name):
    model = make(name).eval()
    x = batch(model)
    features = model.forward_features(x)
    assert features.shape[1] == model.num_features
    pooled = model.forward_head(features, pre_logits=True)
    assert pooled.shape == (2, model.head_hidden_size)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.num_classes == 7 and model.config.num_classes == 7
    assert model.get_classifier() is model.head.fc and model.get_classifier().out_features == 7
    model.reset_classifier(0)
    torch.testing.assert_close(model(x), pooled)
    model.reset_classifier(0, global_pool="")
    assert model(x).shape == (2, model.head_hidden_size, *features.shape[2:]) and model.config.global_pool == ""
    assert make(name, num_classes=0)(x).shape == (2, model.head_hidden_size)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_global_pool_choices(name):
    model = make(name, num_classes=0, global_pool="max").eval()
    x = batch(model)
    features = model.forward_features(x)
    unpooled = make(name, num_classes=0, global_pool="").eval()
    unpooled.load_state_dict(model.state_dict())
    per_position = unpooled(x)  # (B, F, H, W): the head at every position
    if isinstance(model.head.norm, torch.nn.Identity) and isinstance(model.head.pre_logits, torch.nn.Identity):
        # nothing between the pool and the (removed) classifier, so pooling the per-position map is the same
        torch.testing.assert_close(model(x), per_position.amax((2, 3)))
    assert model(x).shape == (2, model.head_hidden_size) and features.shape[1] == model.num_features
    with pytest.raises(ValueError, match="global_pool must be one of avg, max, avgmax, '', got 'mean'"):
        make(name, global_pool="mean")


@pytest.mark.parametrize("name", TEST_MODELS)
def test_reset_classifier_keeps_device_and_dtype(name):
    model = make(name).eval().double()
    model.reset_classifier(3)
    assert model.get_classifier().weight.dtype == torch.float64
    assert model(batch(model).double()).dtype == torch.float64
    with torch.device("meta"):
        meta = make(name)
    meta.reset_classifier(4)
    assert meta.get_classifier().weight.is_meta


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
    with pytest.raises(InputError, match="empty batch"):
        model(x[:0])
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        with pytest.raises(InputError, match=rf"{dtype}.*x\.to\(torch\.float32\).*model\.to\({dtype}\)"):
            model(x.to(dtype))
    with pytest.raises(InputError, match="float64"):
        model.forward_intermediates(x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast runs fp32 weights on low-precision inputs
        assert model(x[:1].bfloat16()).shape == (1, model.config.num_classes)


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
    assert model.fuse() is model and model.fused
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
def test_save_load_round_trip(name, tmp_path):
    model = make(name, num_classes=5, drop_path_rate=0.1).eval()
    hv.save_pretrained(model, tmp_path)
    again = hv.load_model(tmp_path).eval()
    assert again.config == model.config and not again.fused
    x = batch(model)
    assert torch.equal(again(x), model(x))


@pytest.mark.parametrize("name", TEST_MODELS)
def test_fused_model_round_trip(name, tmp_path, randomize_batchnorms):
    model = make(name).eval()
    randomize_batchnorms(model)
    model.fuse()
    hv.save_pretrained(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["fused"] is True
    again = hv.load_model(tmp_path)
    assert again.fused and not again.training
    assert again.state_dict().keys() == model.state_dict().keys()
    x = batch(model)
    assert torch.equal(again(x), model(x))


@pytest.mark.parametrize("name", TEST_MODELS)
def test_pruned_models_are_not_saved(name, tmp_path):
    model = make(name)
    assert model.prune_intermediate_layers([1, -4]) == [1] * 2 and len(model.stages) == 1
    with pytest.raises(ValueError, match="pruned.*save it before pruning"):
        hv.save_pretrained(model, tmp_path)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_group_matcher_covers_the_trunk_in_depth_order(name):
    import re

    model = make(name)
    for coarse in (True, False):
        matcher = model.group_matcher(coarse=coarse)
        blocks = [pattern for pattern, _ in matcher["blocks"]]
        for n, _ in model.named_parameters():
            if not n.startswith("head."):
                assert re.match(matcher["stem"], n) or any(re.match(b, n) for b in blocks), n


@pytest.mark.parametrize("name", TEST_MODELS)
def test_set_input_size_resizes_tables(name):
    model = make(name).eval()
    s = model.stride
    new = model.config.img_hw[0] + 2 * s
    x = torch.randn(1, model.config.in_chans, new, new)
    before = model(x)  # run-time resampling
    model.set_input_size(new)
    assert model.config.img_size == (new, new) and model.pretrained_cfg["input_size"][1:] == (new, new)
    for info, stage in zip(model.feature_info[1:], model.stages):
        for m in stage.modules():
            if isinstance(m, RelPosBias) and m.global_grid:
                assert m.size == (new // info["reduction"], new // info["reduction"])
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


@pytest.mark.parametrize("name", hv.list_models(test=False, task="classification"))
def test_full_size_models_build(name):
    with torch.device("meta"):
        model = make(name)
    assert model.stride == model.config.stride  # the config's arithmetic agrees with the built stages
    assert model.pretrained_cfg["first_conv"] + ".weight" in model.state_dict()
    assert sum(p.numel() for p in model.parameters()) > 1e6
