"""AsCAN: the budgets we promise, the paper's design space as overrides, and every block kind end to end."""

from __future__ import annotations

import pytest
import torch

import hybridvision as hv
from hybridvision.cli.main import main as cli
from hybridvision.macs import model_cost
from hybridvision.models import InputError
from hybridvision.models.ascan import CONV_BLOCKS, AsCANConfig
from hybridvision.models.blocks import (
    ConvNeXtBlock,
    DropPath,
    FusedMBConv,
    MBConv,
    ModulationBlock,
    MultiAxisAttention,
    ParallelTransformerBlock,
    PartitionAttention,
    RelPosBias,
)

STUDY = {
    "ascan_t": dict(layout=("CC", "CCCT", "CCTT", "CTTT")),
    "ascan_t_symmetric": dict(layout=("CC", "CCCC", "CCTT", "TTTT")),
    "ascan_t_tc": dict(layout=("CC", "TCCC", "TTCC", "TTTC")),
    "ascan_t_coat_cccc": dict(layout=("CC", "CCCC", "CCCC", "CCCC")),
    "ascan_t_coat_ccct": dict(layout=("CC", "CCCC", "CCCC", "TTTT")),
    "ascan_t_coat_cctt": dict(layout=("CC", "CCCC", "TTTT", "TTTT")),
    "ascan_t_coat_cttt": dict(layout=("CC", "TTTT", "TTTT", "TTTT")),
    "ascan_t_mbconv": dict(conv_block="mbconv"),
    "ascan_t_convnext": dict(conv_block="convnext"),
    "ascan_t_window": dict(attention="window"),
    "ascan_t_grid": dict(attention="grid"),
}


def meta(name: str, **kw) -> torch.nn.Module:
    with torch.device("meta"):
        return hv.create_model(name, **kw)


# ---- Budgets (the targets; counted on the meta device)


def test_size_budgets():
    t, b, large = model_cost("ascan_t"), model_cost("ascan_b"), model_cost("ascan_l")
    assert t.macs <= 5.5e9, t.macs
    assert 2.5 <= b.macs / t.macs <= 3.5, b.macs / t.macs
    assert abs(large.params / 173e6 - 1) <= 0.03, large.params
    assert abs(large.macs / 30.7e9 - 1) <= 0.03, large.macs
    nano = model_cost("ascan_nano")
    assert nano.input_shape == (1, 3, 32, 32)
    assert 1e6 <= nano.params <= 3e6 and 30e6 <= nano.macs <= 40e6, (nano.params, nano.macs)


def test_stochastic_depth_defaults():
    for name, rate in (("ascan_t", 0.3), ("ascan_b", 0.4), ("ascan_l", 0.5)):
        assert hv.get_config(name).drop_path_rate == rate
        last = meta(name).stages[-1].blocks[-1].drop_path
        assert isinstance(last, DropPath) and last.rate == pytest.approx(rate)


def test_no_depthwise_conv_and_paper_blocks_in_the_default_model():
    model = meta("ascan_t")
    assert not [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    blocks = [b for s in model.stages for b in s.blocks]
    letters = "".join("T" if isinstance(b, ParallelTransformerBlock) else "C" for b in blocks)
    assert letters == "CC" + "CCCT" + "CCTT" + "CTTT"
    assert all(isinstance(b, (FusedMBConv, ParallelTransformerBlock)) for b in blocks)
    heads = {b.attn.num_heads for b in blocks if isinstance(b, ParallelTransformerBlock)}
    assert heads == {128 // 32, 256 // 32, 512 // 32}


def test_feature_info_covers_the_stem_and_every_stage_including_the_last_attention_stage():
    model = meta("ascan_t")
    levels = [(f["num_chs"], f["reduction"]) for f in model.feature_info]
    assert levels == [(64, 2), (64, 4), (128, 8), (256, 16), (512, 32)]
    assert isinstance(model.stages[-1].blocks[-1], ParallelTransformerBlock)
    assert [f["reduction"] for f in meta("ascan_nano").feature_info] == [1, 2, 4, 8, 16]
    assert (model.num_features, model.head_hidden_size) == (512, 1280)  # trunk width, then the head's embedding


# ---- The design space


@pytest.mark.parametrize("name", sorted(STUDY))
def test_named_study_points(name):
    entry = hv.get_entry(name)
    for key, value in STUDY[name].items():
        assert getattr(entry.config, key) == value
    if name != "ascan_t":
        assert entry.card["study_of"] == "ascan_t" and entry.description
        base = hv.get_config("ascan_t")
        assert (entry.config.dims, entry.config.depths) == (base.dims, base.depths)


def test_study_points_are_listed(capsys):
    assert cli(["models", "ascan*", "--no-cost"]) == 0
    out = capsys.readouterr().out
    for name in [*STUDY, "ascan_b", "ascan_l", "ascan_nano", "ascan_test"]:
        assert name in out


def test_study_points_are_one_override_away():
    model = meta("ascan_t", layout="CC-CCCC-CCTT-TTTT", conv_block="convnext", attention="window")
    assert model.config == hv.get_config("ascan_t_symmetric", conv_block="convnext", attention="window")
    assert isinstance(model.stages[3].blocks[0].attn, PartitionAttention)
    assert isinstance(model.stages[1].blocks[0], ConvNeXtBlock)


@pytest.mark.parametrize(
    "layout",
    [
        ("TT", "TTTT", "TTTT", "TTTT"),  # all attention, a T block downsamples every stage
        ("C", "C", "C", "C"),  # all conv
        ("T", "CT", "TC", "CTCTC"),  # any order, any length
        ("CT", "TTTTTT"),  # fewer stages
        ("C", "T", "CT", "TC", "C"),  # more stages
    ],
)
def test_any_layout_builds_a_working_model(layout):
    dims = (16, 32, 32, 48, 64)[: len(layout)]
    model = hv.create_model("ascan_test", layout=layout, dims=dims).eval()
    stride = 2 ** (len(layout) + 1)
    x = torch.randn(2, 3, 2 * stride, stride)
    assert model(x).shape == (2, 10)
    feats = model.forward_intermediates(x, intermediates_only=True)
    assert [f.shape[1:] for f in feats] == [
        (f["num_chs"], x.shape[2] // f["reduction"], x.shape[3] // f["reduction"]) for f in model.feature_info
    ]
    kinds = "".join("T" if isinstance(b, ParallelTransformerBlock) else "C" for s in model.stages for b in s.blocks)
    assert kinds == "".join(layout)


def test_config_errors_name_the_problem():
    options = "fused_mbconv, mbconv, convnext, modulation"
    with pytest.raises(ValueError, match=f"conv_block must be one of {options}, got 'fused'"):
        AsCANConfig(conv_block="fused")
    with pytest.raises(
        ValueError,
        match="conv_block 'modulation' needs a whole expand_ratio.*got 2.5; set expand_ratio to a whole number",
    ):
        AsCANConfig(conv_block="modulation", expand_ratio=2.5)
    with pytest.raises(ValueError, match="attention must be one of global, window, grid, got 'swin'"):
        AsCANConfig(attention="swin")
    with pytest.raises(ValueError, match="layout has 3 stages but dims has 4"):
        AsCANConfig(layout=("CC", "CT", "TT"))
    with pytest.raises(ValueError, match="unknown block letter"):
        hv.get_config("ascan_t", layout="CC-CCCX-CCTT-CTTT")
    with pytest.raises(ValueError, match=r"stage 1 \('CCCT'\).*width 48 is not a multiple of head_dim 32"):
        AsCANConfig(dims=(64, 48, 256, 512))
    with pytest.raises(ValueError, match="at least one stage"):
        AsCANConfig(layout=(), dims=())
    with pytest.raises(ValueError, match="positive"):
        AsCANConfig(window_size=0)
    assert AsCANConfig(dims=(64, 48, 256, 512), layout=("CC", "CCCC", "CCTT", "CTTT")).dims[1] == 48  # no T there


# ---- Every block kind, end to end


KINDS = {MBConv: "mbconv", FusedMBConv: "fused_mbconv", ConvNeXtBlock: "convnext", ModulationBlock: "modulation"}


def test_every_conv_block_option_is_tested():
    assert sorted(KINDS.values()) == sorted(CONV_BLOCKS)


@pytest.mark.parametrize("conv_block", CONV_BLOCKS)
@pytest.mark.parametrize("attention", ["global", "window", "grid"])
def test_every_block_kind_runs_and_fuses(conv_block, attention, randomize_batchnorms):
    layout = ("C", "TC", "CT", "CTT")  # T blocks that downsample and T blocks that do not
    model = hv.create_model("ascan_test", layout=layout, conv_block=conv_block, attention=attention, window_size=2)
    model.eval()
    randomize_batchnorms(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (ConvNeXtBlock, ModulationBlock)):
                m.gamma.normal_()  # a layer scale far from its 1e-6 / 1e-4 init, so its folding is exercised
    kinds = KINDS
    assert {kinds[type(b)] for s in model.stages for b in s.blocks if type(b) in kinds} == {conv_block}
    attn_type = {"global": "Attention", "window": "PartitionAttention", "grid": "MultiAxisAttention"}[attention]
    assert {type(b.attn).__name__ for s in model.stages for b in s.blocks if hasattr(b, "attn")} == {attn_type}
    x = torch.randn(2, 3, 64, 64)
    ref = model(x)
    model.fuse()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-4)
    layer_scales = [m.gamma for m in model.modules() if isinstance(m, (ConvNeXtBlock, ModulationBlock))]
    assert all(g is None for g in layer_scales)  # folded into the last linear layer


@pytest.mark.parametrize("conv_block", CONV_BLOCKS)
def test_every_block_kind_gives_features_matching_forward_intermediates(conv_block):
    """Each C block downsamples at a stage's start: every level has feature_info's shape, and features_only agrees."""
    kw = dict(layout=("CC", "CC", "CT", "CC"), conv_block=conv_block)  # first blocks of every stage are C blocks
    torch.manual_seed(0)
    model = hv.create_model("ascan_test", **kw).eval()
    x = torch.randn(2, 3, 64, 96)
    full = model.forward_intermediates(x, intermediates_only=True)
    assert [f.shape[1:] for f in full] == [
        (f["num_chs"], 64 // f["reduction"], 96 // f["reduction"]) for f in model.feature_info
    ]
    torch.manual_seed(0)  # the same initial weights
    feats = hv.create_model("ascan_test", features_only=True, out_indices=(1, 2, 4), **kw).eval()
    for got, i in zip(feats(x), (1, 2, 4), strict=True):
        torch.testing.assert_close(got, full[i], atol=0, rtol=0)


E1 = dict(layout="CC-CCCC-CCCC-CCCC", conv_block="modulation")  # configs/study/effmod_block.yaml's modulation point


def test_modulation_c_blocks_on_nano_stages():
    """ascan_nano's E1 point: EfficientMod's block (r = expand_ratio) in every C slot, each stage's first strided."""
    model = meta("ascan_nano", **E1)
    blocks = [b for s in model.stages for b in s.blocks]
    assert len(blocks) == 14 and all(isinstance(b, ModulationBlock) for b in blocks)
    firsts = [s.blocks[0] for s in model.stages]
    assert [b.context.dw.stride for b in firsts] == [(2, 2)] * 4
    assert [b.value.out_features for b in firsts] == [4 * d for d in (24, 32, 64, 160)]
    assert all(b.pool is None and b.context.dw.stride == (1, 1) for s in model.stages for b in s.blocks[1:])


def first_block_shapes(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input shape, output shape) of each stage's first block in one forward pass."""
    seen = []
    hooks = [
        s.blocks[0].register_forward_hook(lambda m, a, out: seen.append((a[0].shape, out.shape))) for s in model.stages
    ]
    model(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("name, size", [("ascan_nano", 32), ("ascan_test", 224)])
def test_modulation_c_blocks_train_and_downsample(name, size):
    """Forward and backward at the nano size and at 224: logits, a gradient for every weight, and each stage's
    strided first block halving the map while widening it to the stage's width."""
    torch.manual_seed(0)
    model = hv.create_model(name, **E1).train()
    x = torch.randn(2, 3, size, size)
    logits = model(x)
    assert logits.shape == (2, 10)
    logits.square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and g.shape == p.shape for g, p in zip(grads.values(), model.parameters(), strict=True))
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert grads["stages.3.blocks.0.context.dw.weight"].abs().sum() > 0  # the strided context path is trained
    c = model.config
    side = size // c.stem_stride
    want = [
        ((2, i, side >> k, side >> k), (2, o, side >> (k + 1), side >> (k + 1)))
        for k, (i, o) in enumerate(zip((c.stem_dims[1], *c.dims[:-1]), c.dims))
    ]
    with torch.no_grad():
        assert first_block_shapes(model.eval(), x) == want


def test_modulation_nano_feature_levels():
    """features_only on the E1 point: the stem and four stages at 1/1 .. 1/16 of a 32x32 input, with the stage
    widths, equal to the full model's intermediates."""
    torch.manual_seed(0)
    model = hv.create_model("ascan_nano", **E1).eval()
    torch.manual_seed(0)
    feats = hv.create_model("ascan_nano", features_only=True, **E1).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got, full = feats(x), model.forward_intermediates(x, intermediates_only=True)
    assert [tuple(f.shape[1:]) for f in got] == [(24, 32, 32), (24, 16, 16), (32, 8, 8), (64, 4, 4), (160, 2, 2)]
    for a, b in zip(got, full, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_modulation_c_blocks_at_224():
    """ascan_t with modulation C blocks builds and runs at 224 (meta device): logits and every level's shape."""
    model = meta("ascan_t", conv_block="modulation")
    x = torch.empty(1, 3, 224, 224, device="meta")
    assert model(x).shape == (1, 1000)
    levels = model.forward_intermediates(x, intermediates_only=True)
    assert [tuple(f.shape[1:]) for f in levels] == [
        (64, 112, 112),
        (64, 56, 56),
        (128, 28, 28),
        (256, 14, 14),
        (512, 7, 7),
    ]
    assert sum(isinstance(b, ModulationBlock) for s in model.stages for b in s.blocks) == 8


# ---- Input sizes


def test_window_attention_input_sizes():
    model = hv.create_model("ascan_test", attention="grid", window_size=3).eval()
    with pytest.raises(InputError, match=r"input height 64 .*stages.1.* windows of 3\. Nearest valid heights: 96"):
        model(torch.randn(1, 3, 64, 96))
    assert model(torch.randn(1, 3, 96, 96)).shape == (1, 10)
    with pytest.raises(InputError, match="multiple of 32"):  # the stride check comes first
        model(torch.randn(1, 3, 100, 96))
    assert hv.create_model("ascan_test").eval()(torch.randn(1, 3, 64, 96)).shape == (1, 10)  # global: any multiple


def test_set_input_size_keeps_window_tables():
    model = hv.create_model("ascan_test", attention="window", window_size=2).eval()
    model.set_input_size(128)
    tables = [m for m in model.modules() if isinstance(m, RelPosBias)]
    assert tables and all(m.size == (2, 2) and not m.global_grid for m in tables)
    assert isinstance(model.stages[1].blocks[1].attn, PartitionAttention)
    assert not any(isinstance(m, MultiAxisAttention) for m in model.modules())


def test_nano_takes_32x32_and_explains_28x28():
    model = hv.create_model("ascan_nano", in_chans=1).eval()
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert model.forward_features(torch.randn(1, 1, 32, 32)).shape == (1, 160, 2, 2)
    with pytest.raises(InputError, match="Nearest valid sizes: height 16 or 32"):
        model(torch.randn(2, 1, 28, 28))


# ---- Checkpoints


def test_checkpoint_round_trip_and_adaptation(tmp_path):
    model = hv.create_model("ascan_test", attention="grid", window_size=2).eval()
    x = torch.randn(1, 3, 64, 64)
    hv.save_pretrained(model, tmp_path)
    torch.testing.assert_close(hv.load_model(tmp_path).eval()(x), model(x))
    # fine-tuning set-up: other classes, grey input, larger size (global tables resample, window tables stay)
    kw = dict(attention="grid", window_size=2, num_classes=5, in_chans=1, img_size=128)
    tuned = hv.create_model("ascan_test", pretrained=tmp_path, **kw).eval()
    assert tuned(torch.randn(1, 1, 128, 128)).shape == (1, 5)
    torch.testing.assert_close(tuned.stages[3].blocks[1].mlp.fc1.weight, model.stages[3].blocks[1].mlp.fc1.weight)
