"""Transformer blocks on NCHW maps: sequential pre-norm (ViT, CoAtNet) and parallel (ViT-22B, AsCAN)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from .attention import Attention
from .cond import EmbModulation, check_context, check_emb, make_emb_modulation
from .conv import make_pool, shortcut
from .drop import drop_path
from .mlp import Mlp
from .norm import LayerNorm2d


class TransformerBlock(nn.Module):
    """Sequential pre-norm transformer block: ``x += Attn(LN(x)); x += MLP(LN(x))`` (ViT, CoAtNet, EfficientMod).

    With stride 2 (first block of a CoAtNet stage, eq. 4) both branches are pooled:
    ``x = Proj(Pool(x)) + Attn(Pool(LN(x)))``. ``expand_first`` sizes the attention from the output width
    (qkv widens) rather than the input width (the output projection widens).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int | None = None,
        *,
        stride: int = 1,
        num_heads: int | None = None,
        head_dim: int = 32,
        expand_first: bool = True,
        rel_pos_size: tuple[int, int] | None = None,
        mlp_ratio: float = 4.0,
        pool: str = "avg2",
        qkv_bias: bool = True,
        shortcut_bias: bool = True,
        norm_eps: float = 1e-6,
        act: Callable[[], nn.Module] = nn.GELU,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        out_dim = out_dim or in_dim
        heads = num_heads or (out_dim if expand_first else in_dim) // head_dim
        self.shortcut = shortcut(in_dim, out_dim, stride, pool=pool, bias=shortcut_bias)
        self.norm1 = LayerNorm2d(in_dim, eps=norm_eps)
        self.pool = make_pool(pool) if stride == 2 else nn.Identity()
        self.attn = Attention(
            in_dim, out_dim, num_heads=heads, head_dim=head_dim, qkv_bias=qkv_bias, rel_pos_size=rel_pos_size
        )
        self.norm2 = LayerNorm2d(out_dim, eps=norm_eps)
        self.mlp = Mlp(out_dim, int(out_dim * mlp_ratio), act=act)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        x = self.shortcut(x) + self.drop_path(self.attn(self.pool(self.norm1(x))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ParallelTransformerBlock(nn.Module):
    """Parallel attention and MLP (ViT-22B; AsCAN's T block, §3.1): ``y = x + Attn(x^) + MLP(x^)``.

    ``x^ = LN(GELU(x))``, shared by both branches (the paper's order: activation, then LayerNorm). ``attn`` is
    any NCHW self-attention mapping ``in_dim`` to ``out_dim`` channels on the (pooled) map, e.g. from
    ``window.make_attention``. With stride 2, ``x^`` is pooled and the shortcut is pooled and projected, as in
    CoAtNet eq. 4; stochastic depth drops both branches together (they are one residual function).

    Conditioning (a diffusion UNet's T block): ``emb_dim > 0`` modulates ``x^`` by an embedding, adaLN-style
    (``cond.EmbModulation``, zero at init, before the pool), and a ``cross_attn`` (e.g. ``CrossAttention``
    from ``in_dim`` to ``out_dim``) runs as a third parallel branch on ``x^`` and the ``context`` sequence:
    ``y = x + Attn(x^) + CrossAttn(x^, context) + MLP(x^)`` (AsCAN Fig. 2c).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int | None = None,
        *,
        attn: nn.Module,
        stride: int = 1,
        mlp_ratio: float = 4.0,
        pool: str = "avg2",
        norm_eps: float = 1e-6,
        act: Callable[[], nn.Module] = nn.GELU,
        emb_dim: int = 0,
        emb_mode: str = "add",
        cross_attn: nn.Module | None = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        out_dim = out_dim or in_dim
        self.shortcut = shortcut(in_dim, out_dim, stride, pool=pool)
        self.act = act()
        self.norm = LayerNorm2d(in_dim, eps=norm_eps)
        self.pool = make_pool(pool) if stride == 2 else nn.Identity()
        self.attn = attn
        self.mlp = Mlp(in_dim, int(out_dim * mlp_ratio), out_dim, act=act)
        self.drop_path = drop_path(drop_path_rate)
        # Created last and only when asked for: unconditioned blocks keep their parameters and init.
        self.emb_proj: EmbModulation | None = make_emb_modulation(emb_dim, in_dim, emb_mode)
        self.cross_attn = cross_attn

    def forward(
        self,
        x: Tensor,
        emb: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        check_emb(self, self.emb_proj, emb)
        check_context(self, self.cross_attn, context, context_mask)
        y = self.norm(self.act(x))  # (B, C_in, H, W)
        if self.emb_proj is not None:
            y = self.emb_proj(y, emb)
        y = self.pool(y)  # (B, C_in, H', W')
        out = self.attn(y)  # (B, C_out, H', W')
        if self.cross_attn is not None:
            out = out + self.cross_attn(y, context, context_mask)
        return self.shortcut(x) + self.drop_path(out + self.mlp(y))
