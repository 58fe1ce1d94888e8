"""AsCAN's blocks against their defining math: FusedMBConv, ConvNeXt, modulation, the parallel T block, window/grid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hybridvision.models.blocks import (
    Attention,
    ClassifierHead,
    ConvNeXtBlock,
    ConvNormAct,
    Downsample,
    FusedMBConv,
    Mlp,
    ModulationBlock,
    MultiAxisAttention,
    ParallelTransformerBlock,
    PartitionAttention,
    RelPosBias,
    make_attention,
    partition,
    unpartition,
)


def bn(x: torch.Tensor, norm: torch.nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)


def test_fused_mbconv_is_the_paper_block(randomize_batchnorms):
    """y = x + BN(P(SE(GELU(BN(Conv3x3_x4(x)))))), no depthwise conv, SE 0.25 of the input width."""
    block = FusedMBConv(16, 16).eval()
    randomize_batchnorms(block)
    e, p = block.conv_expand, block.conv_project
    assert e.conv.kernel_size == (3, 3) and e.conv.groups == 1 and e.conv.out_channels == 64
    assert p.conv.kernel_size == (1, 1) and block.se.fc1.out_features == 4
    x = torch.randn(2, 16, 8, 8)
    h = F.gelu(bn(F.conv2d(x, e.conv.weight, padding=1), e.norm))
    s = torch.sigmoid(block.se.fc2(F.gelu(block.se.fc1(h.mean((2, 3))))))
    ref = x + bn(F.conv2d(h * s[:, :, None, None], p.conv.weight), p.norm)
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)


def test_fused_mbconv_downsamples_with_pooled_projected_shortcut():
    block = FusedMBConv(16, 32, stride=2).eval()
    assert isinstance(block.shortcut, Downsample) and block.conv_expand.conv.stride == (2, 2)
    x = torch.randn(2, 16, 8, 8)
    assert block(x).shape == (2, 32, 4, 4)
    ref_shortcut = block.shortcut.proj(F.avg_pool2d(x, 2))
    branch = block.conv_project(block.se(block.conv_expand(x)))
    torch.testing.assert_close(block(x), ref_shortcut + branch)
    assert FusedMBConv(16, 32, expand_from="out").conv_expand.conv.out_channels == 128
    with pytest.raises(ValueError, match="expand_from"):
        FusedMBConv(16, 32, expand_from="mid")


@pytest.mark.parametrize("stride", [1, 2])
def test_fused_mbconv_fuse_keeps_outputs(stride, randomize_batchnorms):
    block = FusedMBConv(8, 16, stride=stride).eval()
    randomize_batchnorms(block)
    x = torch.randn(2, 8, 8, 8)
    ref = block(x)
    for m in list(block.modules()):
        if isinstance(m, ConvNormAct):
            m.fuse()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in block.modules())
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-4)


def test_convnext_block_math_and_layer_scale_folding():
    block = ConvNeXtBlock(8, 8, layer_scale=0.5).eval()
    torch.nn.init.normal_(block.gamma)
    x = torch.randn(2, 8, 9, 9)
    y = F.conv2d(x, block.conv_dw.weight, block.conv_dw.bias, padding=3, groups=8).permute(0, 2, 3, 1)
    y = block.mlp.fc2(F.gelu(block.mlp.fc1(F.layer_norm(y, (8,), block.norm.weight, block.norm.bias, 1e-6))))
    ref = x + (y * block.gamma).permute(0, 3, 1, 2)
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)
    block.fuse()
    assert block.gamma is None and "gamma" not in block.state_dict()
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)
    block.fuse()  # idempotent
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)
    wide = ConvNeXtBlock(8, 16, stride=2)
    assert wide(x[..., :8, :8]).shape == (2, 16, 4, 4) and wide.conv_dw.groups == 8


def test_strided_modulation_block_is_the_unstrided_one_sampled_on_2x2_constant_maps():
    """AsCAN's conv_block 'modulation' downsamples as ConvNeXtBlock: strided depthwise context, pooled shortcut.

    On a map that is constant over 2x2 cells, average pooling equals taking the top-left pixel, so the strided
    block (pooled value and shortcut, stride-2 depthwise conv) must equal the stride-1 block with the same weights
    read at even positions. The widths differ (8 -> 16), so g, v, p and the projected shortcut all widen.
    """
    strided = ModulationBlock(8, out_dim=16, stride=2, expand_ratio=3, layer_scale_init=0.5).eval()
    plain = ModulationBlock(8, out_dim=16, stride=1, expand_ratio=3).eval()
    assert isinstance(strided.shortcut, Downsample) and strided.context.dw.stride == (2, 2)
    torch.nn.init.normal_(strided.gamma)
    state = {k.replace("shortcut.proj.", "shortcut."): v for k, v in strided.state_dict().items()}
    plain.load_state_dict(state)
    x = F.interpolate(torch.randn(2, 8, 5, 6), scale_factor=2.0, mode="nearest")  # (B, 8, 10, 12), 2x2 cells
    want = plain(x)[..., ::2, ::2]  # (B, 16, 5, 6)
    torch.testing.assert_close(strided(x), want, atol=1e-5, rtol=1e-5)
    # Elsewhere the value reads the average of each 2x2 cell, not its top-left pixel.
    y = torch.randn(2, 8, 10, 12)
    assert not torch.allclose(strided(y), plain(y)[..., ::2, ::2], atol=1e-3)
    strided.fuse()  # the layer scale folds into p, as in EfficientMod
    torch.testing.assert_close(strided(x), want, atol=1e-5, rtol=1e-5)


def test_parallel_block_is_x_plus_attn_plus_mlp_of_ln_gelu():
    attn = Attention(16, num_heads=2, head_dim=8, rel_pos_size=(4, 4))
    block = ParallelTransformerBlock(16, attn=attn).eval()
    torch.nn.init.normal_(block.norm.weight)
    torch.nn.init.normal_(block.norm.bias)
    x = torch.randn(2, 16, 4, 4)
    xhat = F.layer_norm(F.gelu(x).permute(0, 2, 3, 1), (16,), block.norm.weight, block.norm.bias, 1e-6)
    xhat = xhat.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
    torch.testing.assert_close(block(x), x + attn(xhat) + block.mlp(xhat), atol=1e-5, rtol=1e-5)


def test_parallel_block_downsamples_both_branches():
    attn = Attention(16, 32, num_heads=4, head_dim=8, rel_pos_size=(4, 4))
    block = ParallelTransformerBlock(16, 32, attn=attn, stride=2).eval()
    x = torch.randn(2, 16, 8, 8)
    xhat = F.avg_pool2d(block.norm(F.gelu(x)), 2)
    ref = block.shortcut.proj(F.avg_pool2d(x, 2)) + attn(xhat) + block.mlp(xhat)
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)
    assert block(x).shape == (2, 32, 4, 4) and isinstance(block.mlp, Mlp) and block.mlp.fc2.out_features == 32


@pytest.mark.parametrize("mode", ["window", "grid"])
def test_partition_round_trip_and_groups(mode):
    x = torch.arange(2 * 3 * 6 * 4, dtype=torch.float32).view(2, 3, 6, 4)
    parts = partition(x, (3, 2), mode)
    assert parts.shape == (2 * 2 * 2, 3, 3, 2)
    assert torch.equal(unpartition(parts, (6, 4), mode), x)
    if mode == "window":  # the first window is the top-left 3x2 block
        assert torch.equal(parts[0], x[0, :, :3, :2])
    else:  # the first grid group takes every 2nd row and every 2nd column
        assert torch.equal(parts[0], x[0, :, ::2, ::2])
    with pytest.raises(ValueError, match="does not split"):
        partition(x, (4, 2), mode)


def test_window_attention_is_attention_per_window():
    wa = PartitionAttention(8, num_heads=2, head_dim=4, window_size=3, mode="window").eval()
    torch.nn.init.normal_(wa.attn.rel_pos.table)
    x = torch.randn(2, 8, 6, 9)
    out = wa(x)
    for i in range(2):
        for j in range(3):
            win = x[:, :, 3 * i : 3 * i + 3, 3 * j : 3 * j + 3]
            torch.testing.assert_close(out[:, :, 3 * i : 3 * i + 3, 3 * j : 3 * j + 3], wa.attn(win))


def test_grid_attention_is_attention_over_strided_tokens():
    ga = PartitionAttention(8, num_heads=2, head_dim=4, window_size=3, mode="grid").eval()
    torch.nn.init.normal_(ga.attn.rel_pos.table)
    x = torch.randn(2, 8, 6, 9)
    out = ga(x)  # groups: 3x3 tokens spaced (2, 3) apart
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(out[:, :, i::2, j::3], ga.attn(x[:, :, i::2, j::3]))


def test_multi_axis_is_window_plus_grid_and_small_maps_are_global():
    ma = MultiAxisAttention(8, 16, num_heads=2, head_dim=8, window_size=4).eval()
    x = torch.randn(1, 8, 8, 8)
    torch.testing.assert_close(ma(x), ma.window(x) + ma.grid(x))
    # a map smaller than the window is one window: window attention becomes global attention there
    wa = ma.window
    small = torch.randn(1, 8, 2, 3)
    torch.testing.assert_close(wa(small), wa.attn(small))


def test_window_table_is_cropped_for_smaller_windows():
    rp = RelPosBias(2, (5, 5), global_grid=False)
    torch.nn.init.normal_(rp.table)
    bias = rp(3, 2)[0]  # (heads, 6, 6): a 3x2 window
    for q in range(6):
        for k in range(6):
            dy, dx = q // 2 - k // 2, q % 2 - k % 2
            assert torch.equal(bias[:, q, k], rp.table[:, 4 + dy, 4 + dx])


def test_make_attention_kinds():
    assert isinstance(make_attention("global", 16, 32, head_dim=8, grid=(7, 7)), Attention)
    win = make_attention("window", 16, 32, head_dim=8, grid=(7, 7), window_size=7)
    assert isinstance(win, PartitionAttention) and win.attn.num_heads == 4 and not win.attn.rel_pos.global_grid
    assert isinstance(make_attention("grid", 16, 32, head_dim=8, grid=(7, 7)), MultiAxisAttention)
    with pytest.raises(ValueError, match="unknown attention 'swin'"):
        make_attention("swin", 16, 32, head_dim=8, grid=(7, 7))


def test_head_projects_before_pooling_and_folds(randomize_batchnorms):
    head = ClassifierHead(24, 5, pre_pool=ConvNormAct(8, 24, 1)).eval()
    randomize_batchnorms(head)
    x = torch.randn(2, 8, 4, 4)
    pc = head.pre_pool
    pooled = F.gelu(bn(F.conv2d(x, pc.conv.weight), pc.norm)).mean((2, 3))
    torch.testing.assert_close(head(x, pre_logits=True), pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(head(x), head.fc(pooled), atol=1e-5, rtol=1e-5)
    pc.fuse()
    assert isinstance(pc.norm, torch.nn.Identity)
    torch.testing.assert_close(head(x), head.fc(pooled), atol=1e-5, rtol=1e-5)
    head.reset(3)
    assert head(x).shape == (2, 3) and head.num_features == 24
