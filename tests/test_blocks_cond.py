"""Conditioning-ready blocks: 2-D RoPE, qk-norm, cross-attention, embedding modulation, norm choices, Stage."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hybridvision.models.blocks import (
    NORMS,
    Attention,
    ConvNeXtBlock,
    ConvStem,
    CrossAttention,
    FusedMBConv,
    MBConv,
    ParallelTransformerBlock,
    QKNorm,
    Rope2d,
    Stage,
    apply_rope,
    group_count,
    init_conv_fan_out,
    init_transformer,
    make_norm2d,
    rope_angles,
)

EMB, CTX = 12, 20  # embedding width, context width


def rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """RoPE of vectors x (N, d) at 2-D positions pos (N, 2)."""
    angles = rope_angles(pos, x.shape[-1])
    return apply_rope(x, angles.cos(), angles.sin())


def parallel_block(dim: int = 32, *, emb_dim: int = EMB, emb_mode: str = "add", cross: bool = True, stride: int = 1):
    attn = Attention(dim, dim, num_heads=2, head_dim=16, rope=True, qk_norm=True)
    cross_attn = CrossAttention(dim, dim, context_dim=CTX, num_heads=2, head_dim=16, qk_norm=True) if cross else None
    return ParallelTransformerBlock(
        dim, dim, attn=attn, cross_attn=cross_attn, emb_dim=emb_dim, emb_mode=emb_mode, stride=stride
    )


def perturb_emb(block: nn.Module) -> None:
    with torch.no_grad():
        for name, p in block.named_parameters():
            if "emb_proj" in name:
                p.normal_(0, 0.5)


# ---- RoPE


def test_rope_is_a_rotation_of_relative_offsets():
    q, k = torch.randn(6, 16), torch.randn(6, 16)
    pos_q = torch.tensor([[0, 0], [1, 2], [3, 1], [5, 5], [2, 7], [4, 0]])
    pos_k = torch.tensor([[2, 1], [0, 0], [6, 3], [1, 4], [2, 2], [0, 5]])
    rq, rk = rotate(q, pos_q), rotate(k, pos_k)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    shift = torch.tensor([7, -3])
    scores = (rq * rk).sum(-1)
    torch.testing.assert_close((rotate(q, pos_q + shift) * rotate(k, pos_k + shift)).sum(-1), scores)
    assert not torch.allclose(scores, (q * k).sum(-1), atol=1e-3)  # it does rotate


def test_rope_rows_turn_the_first_half_and_columns_the_second():
    x = torch.randn(1, 16)
    first, second = x.clone(), x.clone()
    first[:, 8:], second[:, :8] = 0, 0
    torch.testing.assert_close(rotate(first, torch.tensor([[0, 5]])), first)  # column moves: row half stays
    torch.testing.assert_close(rotate(second, torch.tensor([[5, 0]])), second)  # row moves: column half stays
    assert not torch.allclose(rotate(first, torch.tensor([[5, 0]])), first)


def test_rope_tables_follow_the_grid_and_cache_the_last_size():
    rope = Rope2d(16)
    cos, sin = rope.tables(3, 4, torch.device("cpu"))
    assert cos.shape == (12, 2, 4) and rope.tables(3, 4, torch.device("cpu"))[0] is cos
    ys, xs = torch.meshgrid(torch.arange(3), torch.arange(4), indexing="ij")
    ref = rope_angles(torch.stack([ys.flatten(), xs.flatten()], -1), 16)
    torch.testing.assert_close(cos, ref.cos())
    assert rope.tables(4, 3, torch.device("cpu"))[0].shape == (12, 2, 4) and rope._cache[0][:2] == (4, 3)
    with pytest.raises(ValueError, match="multiple of 4"):
        Rope2d(18)


def test_attention_with_rope_and_qk_norm_matches_reference_math():
    attn = Attention(16, 24, num_heads=2, head_dim=8, rope=True, qk_norm=True)
    with torch.no_grad():
        attn.qk_norm.q.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 16, 3, 5)
    t = x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)
    q, k, v = (u.unflatten(-1, (2, 8)).transpose(1, 2) for u in attn.qkv(t).chunk(3, -1))  # 3 x (B, h, N, d)
    q, k = attn.qk_norm.q(q), attn.qk_norm.k(k)
    ys, xs = torch.meshgrid(torch.arange(3), torch.arange(5), indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], -1)
    q, k = rotate(q, pos), rotate(k, pos)
    o = ((q @ k.transpose(-1, -2)) / 8**0.5).softmax(-1) @ v  # (B, h, N, d)
    ref = attn.proj(o.transpose(1, 2).flatten(2)).transpose(1, 2).reshape(2, 24, 3, 5)
    torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)


def test_plain_attention_keeps_its_modules():
    names = [n for n, _ in Attention(16, num_heads=2, head_dim=8, rel_pos_size=(3, 3)).named_modules()]
    assert names == ["", "qkv", "rel_pos", "proj"]


# ---- qk-norm and cross-attention


def test_qk_norm_gives_unit_rms_heads_times_weight():
    norm = QKNorm(8)
    with torch.no_grad():
        norm.q.weight.uniform_(0.5, 2.0)
    q_in, k_in = torch.randn(2, 3, 5, 8) * 7, torch.randn(2, 3, 5, 8) * 0.1
    q, k = norm(q_in, k_in)
    for x, y, w in ((q_in, q, norm.q.weight), (k_in, k, norm.k.weight)):
        ms = x.pow(2).mean(-1)
        unit = (ms / (ms + 1e-6)).sqrt()  # 1 up to the eps
        torch.testing.assert_close((y / w).pow(2).mean(-1).sqrt(), unit)
        torch.testing.assert_close(unit, torch.ones_like(unit), atol=1e-3, rtol=0)


def test_cross_attention_shape_and_mask():
    attn = CrossAttention(16, 24, context_dim=CTX, num_heads=2, head_dim=8).eval()
    x, ctx = torch.randn(2, 16, 3, 4), torch.randn(2, 7, CTX)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[0, 5:], mask[1, 2:] = False, False
    out = attn(x, ctx, mask)
    assert out.shape == (2, 24, 3, 4)
    changed = ctx.clone()
    changed[~mask] = torch.randn(int((~mask).sum()), CTX) * 10
    torch.testing.assert_close(attn(x, changed, mask), out)  # masked-out keys have no influence
    assert not torch.allclose(attn(x, changed), attn(x, ctx))  # without the mask they do
    torch.testing.assert_close(attn(x, ctx, torch.ones(2, 7, dtype=torch.bool)), attn(x, ctx))


# ---- Embedding modulation


@pytest.mark.parametrize("mode", ["add", "scale_shift"])
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: FusedMBConv(32, 24, stride=2, **kw),
        lambda **kw: ConvNeXtBlock(32, 24, stride=2, layer_scale=1.0, **kw),
        lambda **kw: parallel_block(32, cross=False, stride=2, **kw),
    ],
    ids=["fused_mbconv", "convnext", "parallel"],
)
def test_zero_init_embedding_starts_unconditioned(make, mode):
    torch.manual_seed(0)
    plain = make(emb_dim=0).eval()
    torch.manual_seed(0)
    cond = make(emb_dim=EMB, emb_mode=mode).eval()
    x = torch.randn(2, 32, 8, 8)
    emb = torch.randn(2, EMB)
    assert torch.equal(cond(x, emb=emb), plain(x))
    perturb_emb(cond)
    y1, y2 = cond(x, emb=emb), cond(x, emb=emb.flip(0))
    assert not torch.allclose(y1, plain(x)) and not torch.allclose(y1, y2)


def test_family_init_schemes_keep_the_embedding_projection_at_zero():
    for block, init in ((parallel_block(32), init_transformer), (FusedMBConv(8, 8, emb_dim=EMB), init_conv_fan_out)):
        init(block)
        emb_params = [p for n, p in block.named_parameters() if "emb_proj" in n]
        assert emb_params and all(not p.any() for p in emb_params)


def test_embedding_enters_fused_mbconv_between_norm_and_activation():
    block = FusedMBConv(8, 8, emb_dim=EMB, emb_mode="scale_shift").eval()
    perturb_emb(block)
    x, emb = torch.randn(2, 8, 6, 6), torch.randn(2, EMB)
    e = block.conv_expand
    scale, shift = F.linear(F.silu(emb), e.emb_proj.weight, e.emb_proj.bias).chunk(2, -1)
    h = F.gelu(e.norm(e.conv(x)) * (1 + scale[:, :, None, None]) + shift[:, :, None, None])
    ref = x + block.conv_project(block.se(h))
    torch.testing.assert_close(block(x, emb=emb), ref)


def test_parallel_block_sums_self_cross_and_mlp_branches():
    block = parallel_block(32).eval()
    perturb_emb(block)
    x, emb, ctx = torch.randn(2, 32, 4, 4), torch.randn(2, EMB), torch.randn(2, 5, CTX)
    y = block.emb_proj(block.norm(block.act(x)), emb)
    ref = x + block.attn(y) + block.cross_attn(y, ctx) + block.mlp(y)
    torch.testing.assert_close(block(x, emb=emb, context=ctx), ref)


def test_missing_or_unexpected_conditioning_raises_clearly():
    x, emb, ctx = torch.randn(1, 32, 4, 4), torch.randn(1, EMB), torch.randn(1, 3, CTX)
    with pytest.raises(ValueError, match=r"emb_dim=12 .*forward\(x, emb=\.\.\.\)"):
        FusedMBConv(32, 32, emb_dim=EMB)(x)
    with pytest.raises(ValueError, match="emb_dim=0.*emb_dim=12"):
        FusedMBConv(32, 32)(x, emb=emb)
    with pytest.raises(ValueError, match=r"needs the context.*forward\(x, context=\.\.\.\)"):
        parallel_block(32)(x, emb=emb)
    with pytest.raises(ValueError, match="without cross_attn but got context"):
        parallel_block(32, cross=False)(x, emb=emb, context=ctx)
    with pytest.raises(ValueError, match="context_mask without context"):
        parallel_block(32, cross=False)(x, emb=emb, context_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="emb_mode"):
        FusedMBConv(32, 32, emb_dim=EMB, emb_mode="film")


# ---- Norm choices


def test_norm_factory():
    assert [group_count(c) for c in (64, 48, 20, 33, 7)] == [32, 24, 20, 11, 7]
    gn = make_norm2d("group", 48)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 24
    rms = make_norm2d("rms", 8)
    with torch.no_grad():
        rms.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 8, 3, 3)
    ref = x / x.pow(2).mean(1, keepdim=True).add(1e-5).sqrt() * rms.weight[:, None, None]
    torch.testing.assert_close(rms(x), ref)
    with pytest.raises(ValueError, match="unknown norm"):
        make_norm2d("instance", 8)


@pytest.mark.parametrize("norm", NORMS)
def test_norm_choice_and_fuse_folds_only_batchnorm(norm, randomize_batchnorms):
    stem = ConvStem(3, (16, 16), out_norm=True, norm=norm)
    blocks = [FusedMBConv(16, 16, norm=norm), stem, MBConv(16, 16, norm=norm)]
    expected = type(make_norm2d(norm, 16))
    for block in blocks:
        block.eval()
        randomize_batchnorms(block)
        x = torch.randn(2, block.conv1.in_channels if isinstance(block, ConvStem) else 16, 8, 8)
        ref = block(x)
        norms = [m for m in block.modules() if isinstance(m, expected)]
        assert len(norms) >= 2
        for m in list(block.modules()):
            if hasattr(m, "fuse"):
                m.fuse()
        left = [m for m in block.modules() if isinstance(m, expected)]
        assert left == ([] if norm == "batch" else norms)
        torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-4)


# ---- Stage


class Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[set[str]] = []

    def forward(self, x: torch.Tensor, **cond: torch.Tensor) -> torch.Tensor:
        self.seen.append(set(cond))
        return x + 1


def test_stage_passes_only_given_conditioning():
    rec = Recorder()
    stage = Stage([rec, MBConv(8, 8)])
    stage(torch.randn(1, 8, 4, 4))  # MBConv takes no conditioning: called as block(x)
    Stage([rec])(torch.randn(1, 8, 4, 4), emb=torch.randn(1, EMB))
    Stage([rec])(torch.randn(1, 8, 4, 4), context=torch.randn(1, 3, CTX), context_mask=torch.ones(1, 3).bool())
    assert rec.seen == [set(), {"emb"}, {"context", "context_mask"}]


def test_stage_runs_conditioned_blocks_and_checkpoints():
    blocks = [FusedMBConv(16, 32, stride=2, emb_dim=EMB), parallel_block(32), ConvNeXtBlock(32, emb_dim=EMB)]
    stage = Stage(blocks)
    for b in blocks:
        perturb_emb(b)
    x, emb, ctx = torch.randn(2, 16, 8, 8), torch.randn(2, EMB), torch.randn(2, 5, CTX)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    y = x
    for b in blocks:
        y = b(y, emb=emb, context=ctx, context_mask=mask)
    out = stage(x, emb=emb, context=ctx, context_mask=mask)
    torch.testing.assert_close(out, y)
    grads = torch.autograd.grad(out.square().sum(), list(stage.parameters()))
    stage.grad_checkpointing = True
    out2 = stage(x, emb=emb, context=ctx, context_mask=mask)
    torch.testing.assert_close(out2, out)
    for g, g2 in zip(grads, torch.autograd.grad(out2.square().sum(), list(stage.parameters()))):
        torch.testing.assert_close(g2, g)


# ---- Layout and compile


def test_channels_last_input_agrees():
    block = parallel_block(32, emb_mode="scale_shift").eval()
    conv = FusedMBConv(32, 32, norm="rms", emb_dim=EMB, emb_mode="scale_shift").eval()
    for b in (block, conv):
        perturb_emb(b)
    x, emb, ctx = torch.randn(2, 32, 6, 6), torch.randn(2, EMB), torch.randn(2, 4, CTX)
    xl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(block(xl, emb=emb, context=ctx), block(x, emb=emb, context=ctx), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(conv(xl, emb=emb), conv(x, emb=emb), atol=1e-5, rtol=1e-5)


def test_compiled_conditioned_parallel_block_has_no_graph_breaks():
    block = parallel_block(32, emb_mode="scale_shift").eval()
    perturb_emb(block)
    x, emb, ctx = torch.randn(2, 32, 4, 4), torch.randn(2, EMB), torch.randn(2, 5, CTX)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    compiled = torch.compile(block, fullgraph=True)
    torch.testing.assert_close(
        compiled(x, emb=emb, context=ctx, context_mask=mask), block(x, emb=emb, context=ctx, context_mask=mask)
    )
