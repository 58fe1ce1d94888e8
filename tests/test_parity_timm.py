"""Parity with timm's CoAtNet on the reference fixtures (timm's own weights, input and outputs)."""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file

import hybridvision as hv

# ../shared/reference/README.md: logits atol 1e-5, stage features atol 5e-5 (>= 8x above measured noise)
LOGIT_ATOL, STAGE_ATOL = 1e-5, 5e-5


def check(model, reference_dir, expected_name):
    x = load_file(reference_dir / "input_2x3x224x224.safetensors")["input"]
    expected = load_file(reference_dir / expected_name)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        stages = model.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
    torch.testing.assert_close(logits, expected["logits"], atol=LOGIT_ATOL, rtol=0)
    for i, feat in enumerate(stages):
        torch.testing.assert_close(feat, expected[f"stage{i}"], atol=STAGE_ATOL, rtol=0)


def test_coatnet_nano_rw_matches_timm(reference_dir):
    model = hv.create_model("coatnet_nano_rw_224", pretrained=reference_dir / "timm_coatnet_nano_rw_224.safetensors")
    assert sum(p.numel() for p in model.parameters()) == 15_141_244
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 file -> fp32 model
    check(model, reference_dir, "timm_coatnet_nano_rw_224.expected.safetensors")


def test_timm_pth_and_fp32_files_load(reference_dir, tmp_path):
    state = load_file(reference_dir / "timm_coatnet_nano_rw_224.safetensors")
    fp32 = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(fp32, tmp_path / "coatnet.pth")
    save_file(fp32, tmp_path / "coatnet_fp32.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in fp32.items()}, "epoch": 3}, tmp_path / "trainer.pth")
    for name in ("coatnet.pth", "coatnet_fp32.safetensors", "trainer.pth"):
        model = hv.create_model("coatnet_nano_rw_224", pretrained=tmp_path / name)
        check(model, reference_dir, "timm_coatnet_nano_rw_224.expected.safetensors")


def test_fused_model_keeps_parity(reference_dir):
    model = hv.create_model("coatnet_nano_rw_224", pretrained=reference_dir / "timm_coatnet_nano_rw_224.safetensors")
    check(model.eval().fuse(), reference_dir, "timm_coatnet_nano_rw_224.expected.safetensors")
