"""EfficientMod: published sizes, the official channel pairing and head-dim rule, init, and official checkpoints.

The parity tests load the official-format fixtures in ../shared/reference/ (README there: logits atol 1e-5,
stage features atol 5e-5, the stricter of its two tolerances) and skip with a reason when they are absent.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import load_file

import hybridvision as hv
from hybridvision.checkpoint import SAFE_GLOBALS, CheckpointError
from hybridvision.cli.main import main as cli
from hybridvision.macs import model_cost
from hybridvision.models import InputError
from hybridvision.models.blocks import ModulationBlock, modulate
from hybridvision.models.efficientmod import convert_official

LOGIT_ATOL, STAGE_ATOL = 1e-5, 5e-5

# Parameter counts of the official factories (models/EfficientMod.py @ ec04df6), and published params/MACs.
OFFICIAL_PARAMS = {
    "efficientmod_xxs": 4_736_264,
    "efficientmod_xs": 6_627_544,
    "efficientmod_s": 12_897_184,
    "efficientmod_s_conv": 12_872_336,
}


# ---- Sizes


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_params_exact_and_within_1pct_macs_within_3pct(name):
    card = hv.get_entry(name).card
    cost = model_cost(name)
    assert cost.params == OFFICIAL_PARAMS[name]
    assert abs(cost.params / 1e6 / card["paper_params_m"] - 1) < 0.01
    assert abs(cost.macs / 1e9 / card["paper_gmacs"] - 1) < 0.03


def test_info_json_reports_published_sizes(capsys):
    assert cli(["info", "efficientmod_s", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == OFFICIAL_PARAMS["efficientmod_s"] and abs(data["macs"] / 1.40e9 - 1) < 0.03
    assert data["config"]["layout"][3] == "MMMMAAAA" and data["card"]["paper_top1_distilled"] == 81.9


def test_attention_keeps_official_head_dim_rule():
    """head_dim = max(C // 8, 32): the inner width exceeds C in the narrow stages, as in the official weights."""
    with torch.device("meta"):
        xxs, xs, s = (hv.create_model(f"efficientmod_{v}") for v in ("xxs", "xs", "s"))
    shapes = {k: tuple(v.shape) for k, v in xxs.state_dict().items()}
    assert shapes["stages.2.blocks.6.attn.qkv.weight"] == (768, 128)
    assert shapes["stages.2.blocks.6.attn.proj.weight"] == (128, 256)
    assert "stages.2.blocks.6.attn.qkv.bias" not in shapes
    assert xs.state_dict()["stages.3.blocks.2.attn.qkv.weight"].shape == (864, 288)
    assert s.state_dict()["stages.3.blocks.4.attn.qkv.weight"].shape == (936, 312)
    assert s.state_dict()["stages.3.blocks.4.mlp.fc1.weight"].shape == (1560, 312)  # att_ratio 5 in stage 3


def test_expansion_alternates_and_gelu_only_when_expanding():
    with torch.device("meta"):
        model = hv.create_model("efficientmod_xxs")
    blocks = [b for b in model.stages[2].blocks if isinstance(b, ModulationBlock)]
    assert [b.value.out_features // 128 for b in blocks] == [1, 6, 1, 6, 1, 6]
    assert [type(b.act).__name__ for b in blocks[:2]] == ["Identity", "GELU"]


# ---- The modulation


def test_modulation_tiles_the_context_like_the_official_repeat():
    v, ctx = torch.randn(2, 3, 5, 4 * 6), torch.randn(2, 3, 5, 6)
    tiled = modulate(v, ctx, "repeat")
    assert torch.equal(tiled, v * ctx.repeat(1, 1, 1, 4))
    assert torch.equal(tiled[..., 13], v[..., 13] * ctx[..., 13 % 6])  # channel j meets ctx channel j mod C
    assert torch.equal(modulate(v, ctx, "reshape"), tiled)
    assert not torch.allclose(tiled, v * ctx.repeat_interleave(4, dim=-1))
    assert torch.equal(modulate(v[..., :6], ctx, "reshape"), v[..., :6] * ctx)  # r = 1


def test_repeat_and_reshape_models_are_identical_forward_and_backward():
    x = torch.randn(2, 3, 64, 64)
    grads, outs = [], []
    for mode in ("repeat", "reshape"):
        torch.manual_seed(0)
        model = hv.create_model("efficientmod_test", modulation=mode, drop_path_rate=0.0)
        out = model(x)
        out.square().mean().backward()
        outs.append(out)
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert torch.equal(outs[0], outs[1])
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, atol=1e-7, rtol=1e-5, msg=n)


# ---- Init, drop path, config


def test_conv_init_is_trunc_normal_with_zero_bias():
    """Unlike the official code (convs left at PyTorch's default), every conv gets trunc-normal(0.02), bias 0."""
    model = hv.create_model("efficientmod_xxs")
    convs = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert len(convs) == 1 + 3 + 12  # stem, 3 downsamplings, one context conv per modulation block
    for name, conv in convs.items():
        assert torch.count_nonzero(conv.bias) == 0, name
        if conv.weight.numel() >= 4096:
            assert 0.017 < conv.weight.std().item() < 0.023, name
    gammas = [b.gamma for b in model.modules() if isinstance(b, ModulationBlock)]
    assert all(torch.all(g == 1e-4) for g in gammas)


@pytest.mark.parametrize(("name", "rate"), [("xxs", 0.0), ("xs", 0.0), ("s", 0.02), ("s_conv", 0.02)])
def test_drop_path_defaults_follow_the_official_factories(name, rate):
    with torch.device("meta"):
        model = hv.create_model(f"efficientmod_{name}")
    assert model.config.drop_path_rate == rate
    last = model.stages[-1].blocks[-1].drop_path
    assert getattr(last, "rate", 0.0) == pytest.approx(rate)
    assert isinstance(model.stages[0].blocks[0].drop_path, torch.nn.Identity)


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="modulation must be one of repeat, reshape, got 'tile'"):
        hv.get_config("efficientmod_test", modulation="tile")
    with pytest.raises(ValueError, match="unknown block letter"):
        hv.get_config("efficientmod_test", layout=("M", "MC", "MA", "A"))
    with pytest.raises(ValueError, match="one entry per stage"):
        hv.get_config("efficientmod_test", dims=(16, 24, 32))
    with pytest.raises(ValueError, match="odd"):
        hv.get_config("efficientmod_test", context_kernel=4)


def test_input_sizes_multiple_of_32():
    model = hv.create_model("efficientmod_xxs").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 192)).shape == (1, 1000)
    with pytest.raises(InputError, match="multiple of 32.*height 192 or 224"):
        model(torch.randn(1, 3, 200, 224))


def test_nano_for_32x32_data():
    model = hv.create_model("efficientmod_nano").eval()
    assert 1e6 < sum(p.numel() for p in model.parameters()) < 3e6
    assert model.config.img_hw == (32, 32) and model.config.num_classes == 10
    x = torch.randn(2, 3, 32, 32)
    assert [f.shape[-1] for f in model.forward_intermediates(x, intermediates_only=True)] == [16, 16, 8, 4, 2]
    assert model(x).shape == (2, 10)


def test_fuse_folds_layer_scale():
    model = hv.create_model("efficientmod_test").eval()
    for b in model.modules():
        if isinstance(b, ModulationBlock):
            torch.nn.init.uniform_(b.gamma, 0.1, 0.5)
    x = torch.randn(2, 3, 64, 64)
    ref = model(x)
    model.fuse()
    assert all(b.gamma is None for b in model.modules() if isinstance(b, ModulationBlock))
    torch.testing.assert_close(model(x), ref, atol=1e-6, rtol=1e-5)


# ---- Official checkpoints


def check_parity(model, reference_dir, expected_name):
    x = load_file(reference_dir / "input_2x3x224x224.safetensors")["input"]
    expected = load_file(reference_dir / expected_name)
    model.eval()
    with torch.no_grad():
        logits, stages = model(x), model.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
    torch.testing.assert_close(logits, expected["logits"], atol=LOGIT_ATOL, rtol=0)
    for i, feat in enumerate(stages):
        torch.testing.assert_close(feat, expected[f"stage{i}"], atol=STAGE_ATOL, rtol=0, msg=f"stage{i}")


@pytest.mark.parametrize("ema", [True, False])
def test_official_pth_tar_parity(reference_dir, ema):
    path = reference_dir / "efficientmod_xxs.pth.tar"
    model = hv.create_model("efficientmod_xxs", pretrained=path, pretrained_ema=ema)
    check_parity(model, reference_dir, "efficientmod_xxs.expected.safetensors")


def test_official_fp16_safetensors_parity(reference_dir):
    model = hv.create_model("efficientmod_s", pretrained=reference_dir / "efficientmod_s.safetensors")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    check_parity(model, reference_dir, "efficientmod_s.expected.safetensors")
    check_parity(model.fuse(), reference_dir, "efficientmod_s.expected.safetensors")


def test_official_repeat_modulation_keeps_parity(reference_dir):
    path = reference_dir / "efficientmod_s.safetensors"
    model = hv.create_model("efficientmod_s", pretrained=path, modulation="repeat")
    check_parity(model, reference_dir, "efficientmod_s.expected.safetensors")


def trainer_checkpoint(raw: dict, ema: dict, args: argparse.Namespace, metric: object = 77.1) -> dict:
    """Everything the official (timm 0.6) CheckpointSaver writes, with realistic value types."""
    param = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.AdamW([param], lr=4e-3, weight_decay=0.05)
    param.grad = torch.ones(3)
    opt.step()
    scaler = {
        "scale": 65536.0,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 2000,
        "_growth_tracker": 7,
    }
    return {
        "epoch": 299,
        "arch": "efficientMod_xxs",
        "state_dict": raw,
        "optimizer": opt.state_dict(),
        "version": 2,
        "args": args,
        "amp_scaler": scaler,
        "state_dict_ema": ema,
        "metric": metric,
    }


def trainer_args() -> argparse.Namespace:
    return argparse.Namespace(
        model="efficientMod_xxs", lr=4e-3, batch_size=256, epochs=300, model_ema=True, model_ema_decay=0.9998,
        input_size=None, mean=None, scale=[0.08, 1.0], ratio=[0.75, 1.3333], distillation_type="soft",
        teacher_model="regnety_160", amp=True, device="cuda:0", world_size=8, output="",
    )  # fmt: skip


def test_ema_and_raw_weights_are_selectable(reference_dir, tmp_path):
    """A full trainer file: EMA by default, raw with pretrained_ema=False; only argparse.Namespace is needed."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        official = torch.load(reference_dir / "efficientmod_xxs.pth.tar", weights_only=True)["state_dict"]
    raw = OrderedDict((k, v + 0.01) for k, v in official.items())  # the EMA file's raw weights differ
    torch.save(trainer_checkpoint(raw, official, trainer_args()), tmp_path / "model_best.pth.tar")
    assert argparse.Namespace in SAFE_GLOBALS
    ema_model = hv.create_model("efficientmod_xxs", pretrained=tmp_path / "model_best.pth.tar")
    check_parity(ema_model, reference_dir, "efficientmod_xxs.expected.safetensors")
    raw_model = hv.create_model("efficientmod_xxs", pretrained=tmp_path / "model_best.pth.tar", pretrained_ema=False)
    key = "layers.0.blocks.1.mlp.fc1.weight"
    assert torch.equal(raw_model.state_dict()["stages.0.blocks.1.value.weight"], raw[key])


@pytest.mark.parametrize("intruder", ["path", "numpy"])
def test_trainer_file_with_other_classes_is_refused(tmp_path, intruder):
    state = hv.create_model("efficientmod_test").state_dict()
    args = trainer_args()
    metric = 77.1
    if intruder == "path":
        args.output = pathlib.PurePosixPath("/runs/xxs")  # not on the allow-list
    else:
        metric = __import__("numpy").float64(77.1)
    torch.save(trainer_checkpoint(state, state, args, metric), tmp_path / "ckpt.pth.tar")
    with pytest.raises(CheckpointError, match="refused to unpickle.*allow-list"):
        hv.create_model("efficientmod_test", pretrained=tmp_path / "ckpt.pth.tar")


def test_converter_maps_every_official_key(reference_dir):
    state = load_file(reference_dir / "efficientmod_s.safetensors")
    ours = convert_official(state)
    with torch.device("meta"):
        model = hv.create_model("efficientmod_s")
    assert set(ours) == set(model.state_dict()) and len(ours) == 368
    assert torch.equal(ours["stages.1.downsample.proj.weight"], state["layers.0.downsample.proj.weight"])
    assert torch.equal(ours["stages.2.blocks.8.attn.qkv.weight"], state["layers.2.blocks.8.attn.qkv.weight"])
    dw = "layers.3.blocks.0.mlp.context_layer.context_list.0.bias"
    assert torch.equal(ours["stages.3.blocks.0.context.dw.bias"], state[dw])
    assert torch.equal(ours["head.fc.weight"], state["head.weight"])


def test_wrong_variant_and_new_head(reference_dir):
    path = reference_dir / "efficientmod_xxs.pth.tar"
    with pytest.raises(CheckpointError, match="another configuration|does not fit"):
        hv.create_model("efficientmod_s", pretrained=path)
    model = hv.create_model("efficientmod_xxs", pretrained=path, num_classes=10, in_chans=1).eval()
    assert model(torch.randn(1, 1, 224, 224)).shape == (1, 10)
