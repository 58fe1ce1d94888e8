"""Semantic FPN, the second decode head: mmseg's FPN neck + FPNHead, on every family's test backbone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hybridvision as hv
from hybridvision.models.blocks import ConvNormAct
from hybridvision.seg import HeadConfig, SegModel, SegModelConfig
from hybridvision.seg.heads import FPNNeck, SemanticFPNHead

FPN = HeadConfig(kind="fpn", neck_channels=12, fpn_channels=8, aux_channels=0)


def seg(backbone: str, head: HeadConfig = FPN) -> SegModel:
    return SegModel(SegModelConfig(backbone=backbone, num_classes=5, in_chans=1, img_size=64, head=head))


@pytest.mark.parametrize("backbone", hv.list_models(test=True, task="classification"))
def test_every_family_gives_full_size_scores_and_gradients(backbone):
    model = seg(backbone)
    assert isinstance(model.decode, SemanticFPNHead)
    x = torch.randn(2, 1, 64, 64)
    logits = model(x)
    assert logits.shape == (2, 5, 64, 64) and torch.isfinite(logits).all()
    logits.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"


def test_branch_depth_per_level_is_mmseg_fpnhead():
    """Strides 4/8/16/32: 1/1/2/3 conv-BN-ReLU and 0/1/2/3 2x upsamples (mmseg FPNHead's scale_heads)."""
    head = SemanticFPNHead([8, 16, 32, 64], [4, 8, 16, 32], neck_channels=12, channels=6, num_classes=3, dropout=0.0)
    convs = [sum(isinstance(m, ConvNormAct) for m in branch) for branch in head.scale_heads]
    ups = [sum(isinstance(m, torch.nn.Upsample) for m in branch) for branch in head.scale_heads]
    assert convs == [1, 1, 2, 3] and ups == [0, 1, 2, 3]
    assert head.scale_heads[0][0].conv.in_channels == 12 and head.scale_heads[3][2].conv.in_channels == 6
    feats = [torch.randn(2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate((8, 16, 32, 64))]
    assert head(feats).shape == (2, 3, 32, 32)  # at the finest level


def test_neck_is_lateral_then_top_down_nearest_sums_then_3x3():
    neck = FPNNeck([3, 5], channels=4)
    fine, coarse = torch.randn(1, 3, 8, 8), torch.randn(1, 5, 4, 4)
    top = neck.laterals[1](coarse)
    merged = neck.laterals[0](fine) + F.interpolate(top, scale_factor=2.0, mode="nearest")
    out = neck([fine, coarse])
    torch.testing.assert_close(out[0], neck.outs[0](merged))
    torch.testing.assert_close(out[1], neck.outs[1](top))


def test_fuse_keeps_the_output(randomize_batchnorms):
    model = seg("coatnet_test")
    randomize_batchnorms(model)
    x = torch.randn(2, 1, 64, 64)
    want = model.eval()(x)
    torch.testing.assert_close(model.fuse()(x), want, atol=1e-4, rtol=1e-4)


def test_an_unknown_head_names_the_choices():
    with pytest.raises(ValueError, match="upernet, fpn"):
        HeadConfig(kind="fcn")


def test_head_fpn_is_short_for_head_kind_on_the_command_line(capsys):
    from hybridvision.cli.main import main

    assert main(["seg", "train", "--head", "fpn", "--head.fpn_channels", "16", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "kind: fpn" in out and "fpn_channels: 16" in out
