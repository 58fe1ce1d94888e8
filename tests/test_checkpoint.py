"""Checkpoint reading, safety, adaptation and our own save/load format."""

from __future__ import annotations

import argparse
import logging
import os

import pytest
import torch
from safetensors.torch import save_file

import hybridvision as hv
from hybridvision.checkpoint import CheckpointError, read_state_dict
from hybridvision.factory import WEIGHTS_ENV
from hybridvision.fileio import atomic_write

TIMM_NAMES = [
    ("conv_expand.", "conv1_1x1."),
    ("conv_dw.", "conv2_kxk."),
    ("conv_project.", "conv3_1x1."),
    ("shortcut.proj.", "shortcut.expand."),
    ("rel_pos.table", "rel_pos.relative_position_bias_table"),
    ("head.pre_logits.0.", "head.pre_logits.fc."),
]


def to_timm_coatnet(state: dict[str, torch.Tensor], head_dim: int, se_early: bool) -> dict[str, torch.Tensor]:
    """Write our CoAtNet state dict in timm's maxxvit naming and layouts (the format timm releases use)."""
    out = {}
    for key, v in state.items():
        k = key
        for ours, theirs in TIMM_NAMES:
            k = k.replace(ours, theirs)
        if se_early:
            k = k.replace(".se.", ".se_early.")
        if k.endswith(("qkv.weight", "qkv.bias")):
            heads = v.shape[0] // (3 * head_dim)
            v = v.reshape(3, heads, head_dim, *v.shape[1:]).transpose(0, 1).reshape(v.shape)
        if k.endswith("relative_position_bias_table"):
            v = v.flatten(1).t()  # (h, 2H-1, 2W-1) -> ((2H-1)(2W-1), h)
        if v.dim() == 2 and k.endswith(("qkv.weight", "proj.weight", "fc1.weight", "fc2.weight")) and "head" not in k:
            v = v[:, :, None, None]  # linear -> 1x1 conv
        out[k] = v
    # timm's first attention block of a stage keeps its norm inside a Sequential with the pool
    first = "blocks.0.norm1."
    return {k.replace(first, first + "norm.") if _first_attn(k, state) else k: v for k, v in out.items()}


def _first_attn(key: str, state) -> bool:
    prefix = key.split("norm1.")[0]
    return key.endswith(("norm1.weight", "norm1.bias")) and f"{prefix}attn.qkv.weight" in state and ".blocks.0." in key


def test_coatnet_0_rw_timm_layout_loads(tmp_path):
    src = hv.create_model("coatnet_0_rw_224").eval()
    timm_sd = to_timm_coatnet(src.state_dict(), 32, se_early=True)
    # shapes timm's released coatnet_0_rw_224 has (research note: 242 keys, 27,435,562 parameters)
    assert len(timm_sd) == 242
    assert timm_sd["stages.2.blocks.0.attn.qkv.weight"].shape == (576, 192, 1, 1)
    assert timm_sd["stages.2.blocks.0.attn.proj.weight"].shape == (384, 192, 1, 1)
    assert "stages.0.blocks.0.se_early.fc1.weight" in timm_sd and "stages.0.blocks.0.conv3_1x1.bias" not in timm_sd
    assert "stages.2.blocks.0.norm1.norm.weight" in timm_sd
    save_file(
        {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in timm_sd.items()},
        tmp_path / "m.safetensors",
    )
    loaded = hv.create_model("coatnet_0_rw_224", pretrained=tmp_path / "m.safetensors").eval()
    ref = hv.create_model("coatnet_0_rw_224").eval()
    ref.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in src.state_dict().items()})
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(loaded(x), ref(x), atol=1e-6, rtol=0)


def test_official_trainer_pth_tar_with_namespace(tmp_path):
    model = hv.create_model("coatnet_test")
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in raw.items()}
    ckpt = {
        "epoch": 3,
        "arch": "x",
        "state_dict": raw,
        "state_dict_ema": ema,
        "args": argparse.Namespace(model="x"),
        "version": 2,
        "optimizer": {"state": {}, "param_groups": []},
    }
    torch.save(ckpt, tmp_path / "ckpt.pth.tar")
    key = "stem.conv1.weight"
    assert torch.equal(read_state_dict(tmp_path / "ckpt.pth.tar")[key], ema[key])
    assert torch.equal(read_state_dict(tmp_path / "ckpt.pth.tar", use_ema=False)[key], raw[key])
    loaded = hv.create_model("coatnet_test", pretrained=tmp_path / "ckpt.pth.tar", pretrained_ema=False)
    assert torch.equal(loaded.state_dict()[key], raw[key])


class Plain:
    """A harmless class that is simply not on the allow-list."""


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_outside_allow_list_is_refused(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        read_state_dict(tmp_path / "evil.pth")
    torch.save({"cfg": Plain(), "state_dict": {"w": torch.zeros(1)}}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="allow-list"):
        read_state_dict(tmp_path / "odd.pth")


def test_corrupt_and_truncated_files(tmp_path):
    model = hv.create_model("coatnet_test")
    hv.save_pretrained(model, tmp_path / "run")
    weights = tmp_path / "run" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        hv.load_model(tmp_path / "run")
    torch.save(model.state_dict(), tmp_path / "m.pth")
    (tmp_path / "m.pth").write_bytes((tmp_path / "m.pth").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_state_dict(tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "missing.safetensors")


def test_wrong_model_is_named(tmp_path):
    torch.save(hv.create_model("coatnet_test").state_dict(), tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="(does not fit|another configuration)"):
        hv.create_model("coatnet_nano_rw_224", pretrained=tmp_path / "m.pth")


def test_adaptation_head_channels_and_size(tmp_path):
    src = hv.create_model("coatnet_test").eval()
    torch.save(src.state_dict(), tmp_path / "m.pth")
    x = torch.randn(2, 3, 64, 64)
    # another class count: trunk loads, classifier is fresh
    m = hv.create_model("coatnet_test", pretrained=tmp_path / "m.pth", num_classes=3).eval()
    torch.testing.assert_close(m.forward_features(x), src.forward_features(x))
    assert m(x).shape == (2, 3)
    # a checkpoint without a classifier loads into a model with one (fresh head), and back
    hv.save_pretrained(hv.create_model("coatnet_test", num_classes=0), tmp_path / "headless")
    m0 = hv.create_model("coatnet_test", pretrained=tmp_path / "headless" / "model.safetensors").eval()
    assert m0(x).shape == (2, 10)
    assert hv.create_model("coatnet_test", pretrained=tmp_path / "m.pth", num_classes=0)(x).shape == (2, 32)
    # one input channel: first conv summed over RGB, so a grey image equals the RGB-replicated one
    grey = torch.randn(2, 1, 64, 64)
    m1 = hv.create_model("coatnet_test", pretrained=tmp_path / "m.pth", in_chans=1).eval()
    torch.testing.assert_close(m1(grey), src(grey.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-5)
    # another native size: tables resampled at load, same as run-time resampling
    big = torch.randn(1, 3, 96, 96)
    m2 = hv.create_model("coatnet_test", pretrained=tmp_path / "m.pth", img_size=96).eval()
    torch.testing.assert_close(m2(big), src(big), atol=1e-5, rtol=1e-5)


def test_a_classifier_that_does_not_fit_is_dropped_with_a_warning(tmp_path, caplog):
    torch.save(hv.create_model("coatnet_test").state_dict(), tmp_path / "m.pth")
    with caplog.at_level(logging.INFO, logger="hybridvision.checkpoint"):
        hv.create_model("coatnet_test", pretrained=tmp_path / "m.pth", num_classes=3)
    [record] = [r for r in caplog.records if "classifier" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "coatnet_test: dropped the checkpoint's classifier head.fc (10 classes)" in record.getMessage()
    assert "the model has 3 classes" in record.getMessage()


def test_pretrained_true_reads_the_weights_folder_and_says_where_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(CheckpointError, match=rf"no weights for 'coatnet_test' in {tmp_path}.*downloads nothing"):
        hv.create_model("coatnet_test", pretrained=True)
    with pytest.raises(CheckpointError, match=rf"{tmp_path / 'coatnet_test'}/ .*{WEIGHTS_ENV}.*pretrained='path"):
        hv.create_model("coatnet_test", pretrained=True)
    src = hv.create_model("coatnet_test").eval()
    hv.save_pretrained(src, tmp_path / "coatnet_test")
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(hv.create_model("coatnet_test", pretrained=True).eval()(x), src(x))
    assert hv.create_model("coatnet_test", pretrained=False).state_dict().keys() == src.state_dict().keys()


def test_save_pretrained_roundtrip(tmp_path):
    model = hv.create_model("coatnet_test", num_classes=5, drop_path_rate=0.1).eval()
    hv.save_pretrained(model, tmp_path / "out")
    again = hv.load_model(tmp_path / "out").eval()
    assert again.config == model.config
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(again(x), model(x))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def failing(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
