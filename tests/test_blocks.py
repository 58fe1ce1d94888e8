"""Fast paths of the shared blocks against plain reference math."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hybridvision.models.blocks import (
    Attention,
    DropPath,
    LayerNorm2d,
    MBConv,
    RelPosBias,
    TransformerBlock,
    drop_path_rates,
    make_divisible,
    relative_index,
    resize_table,
)


def reference_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """Per-head loop, explicit softmax: the slow math SDPA must reproduce."""
    B, C, H, W = x.shape
    t = x.flatten(2).transpose(1, 2)  # (B, N, C)
    q, k, v = attn.qkv(t).chunk(3, dim=-1)
    outs = []
    bias = attn.rel_pos(H, W)[0] if attn.rel_pos is not None else None
    for h in range(attn.num_heads):
        sl = slice(h * attn.head_dim, (h + 1) * attn.head_dim)
        logits = q[..., sl] @ k[..., sl].transpose(1, 2) / attn.head_dim**0.5
        if bias is not None:
            logits = logits + bias[h]
        outs.append(logits.softmax(-1) @ v[..., sl])
    o = attn.proj(torch.cat(outs, -1))  # (B, N, C_out)
    return o.transpose(1, 2).reshape(B, -1, H, W)


def test_attention_matches_reference_math():
    attn = Attention(24, 40, num_heads=3, head_dim=16, rel_pos_size=(5, 6)).eval()
    torch.nn.init.normal_(attn.rel_pos.table, std=0.5)
    x = torch.randn(2, 24, 5, 6)
    torch.testing.assert_close(attn(x), reference_attention(attn, x), atol=1e-5, rtol=1e-5)
    # another grid than the table's: resampled table, same math
    x2 = torch.randn(2, 24, 7, 4)
    torch.testing.assert_close(attn(x2), reference_attention(attn, x2), atol=1e-5, rtol=1e-5)


def test_relative_index_is_query_minus_key():
    h, w = 3, 4
    idx = relative_index(h, w).view(h * w, h * w)
    for qi in range(h * w):
        for ki in range(h * w):
            dy, dx = qi // w - ki // w, qi % w - ki % w
            assert idx[qi, ki] == (dy + h - 1) * (2 * w - 1) + (dx + w - 1)


def test_rel_pos_bias_and_resize():
    rp = RelPosBias(2, (3, 3))
    torch.nn.init.normal_(rp.table)
    bias = rp(3, 3)
    assert bias.shape == (1, 2, 9, 9)
    assert torch.equal(bias[0, :, 4, 4], rp.table[:, 2, 2])  # zero offset -> centre cell
    assert torch.equal(resize_table(rp.table.data, (3, 3)), rp.table.data)
    big = resize_table(rp.table.data, (5, 5))
    assert big.shape == (2, 9, 9)
    assert torch.allclose(big[:, 4, 4], rp.table[:, 2, 2])  # centre stays the centre
    assert torch.allclose(big[:, 0, 0], rp.table[:, 0, 0])  # extreme offsets stay extreme
    rp.resize_((5, 5))
    assert rp.size == (5, 5) and rp(5, 5).shape == (1, 2, 25, 25)


def test_layernorm2d_matches_channel_norm():
    ln = LayerNorm2d(6, eps=1e-6)
    torch.nn.init.normal_(ln.weight)
    torch.nn.init.normal_(ln.bias)
    x = torch.randn(2, 6, 4, 5)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref)
    torch.testing.assert_close(ln(x.contiguous(memory_format=torch.channels_last)), ref)


def test_transformer_block_downsamples_both_branches():
    block = TransformerBlock(16, 32, stride=2, head_dim=8, rel_pos_size=(4, 4)).eval()
    out = block(torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 32, 4, 4)
    assert block.attn.num_heads == 4  # expand_first: heads from the output width
    narrow = TransformerBlock(16, 32, stride=2, head_dim=8, expand_first=False, rel_pos_size=(4, 4))
    assert narrow.attn.num_heads == 2 and narrow.attn.proj.in_features == 16


def test_mbconv_stride_modes_agree_in_shape_and_differ_in_math():
    x = torch.randn(2, 8, 16, 16)
    outs = {}
    for mode in ("pool", "1x1", "dw"):
        torch.manual_seed(0)
        block = MBConv(8, 16, stride=2, stride_mode=mode).eval()
        outs[mode] = block(x)
        assert outs[mode].shape == (2, 16, 8, 8)
    assert not torch.allclose(outs["pool"], outs["dw"])


def test_mbconv_widths():
    assert MBConv(8, 16, expand_from="out").conv_expand.out_channels == 64
    assert MBConv(8, 16, expand_from="in").conv_expand.out_channels == 32
    assert MBConv(8, 16, expand_from="in").se.fc1.out_features == 8  # 0.25 of the expanded width
    assert MBConv(8, 16, expand_from="out").se.fc1.out_features == 4  # 0.25 of the output width


def test_drop_path():
    dp = DropPath(0.5).train()
    x = torch.ones(1000, 3, 2, 2)
    y = dp(x)
    kept = (y[:, 0, 0, 0] > 0).float().mean().item()
    assert 0.4 < kept < 0.6 and torch.allclose(y[y > 0], torch.full_like(y[y > 0], 2.0))
    assert torch.equal(dp.eval()(x), x)
    rates = drop_path_rates(0.3, [2, 3])
    assert rates[0][0] == 0.0 and abs(rates[1][-1] - 0.3) < 1e-9 and [len(r) for r in rates] == [2, 3]


def test_make_divisible():
    assert make_divisible(256) == 256 and make_divisible(100) == 104 and make_divisible(3) == 8
