"""EfficientMod's modulation block (Ma et al., ICLR 2024, arXiv:2403.19963, §3.3-3.4, eq. 5): ``p(ctx(x) * v(x))``.

EfficientMod's M blocks, and AsCAN's C block under ``conv_block: modulation``. The parameter names are the ones
EfficientMod's checkpoint conversion maps the official keys to (``context.f/dw/g``, ``value``, ``proj``,
``gamma``), so they must not change.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .conv import make_pool, shortcut
from .drop import drop_path

MODULATIONS = ("repeat", "reshape")


def modulate(v: Tensor, ctx: Tensor, mode: str = "reshape") -> Tensor:
    """``v * ctx`` with ctx (.., C) tiled r times to v's width (.., rC): v channel j meets ctx channel j mod C.

    That is the official ``v * ctx.repeat(1, 1, 1, r)`` (tiling, not ``repeat_interleave``), so official
    weights pair with the right channels. "repeat" computes it that way; "reshape" broadcasts ctx over a
    (.., r, C) view of v instead of materialising the tiled copy (paper §3.4 guideline III). Same result.
    """
    r = v.shape[-1] // ctx.shape[-1]
    if r == 1:
        return v * ctx
    if mode == "repeat":
        return v * ctx.repeat(1, 1, 1, r)  # (B, H, W, C) -> (B, H, W, rC)
    prod = v.unflatten(-1, (r, -1)) * ctx.unsqueeze(-2)  # (B, H, W, r, C) * (B, H, W, 1, C)
    return prod.flatten(-2)  # (B, H, W, r, C) -> (B, H, W, rC)


class ContextBranch(nn.Module):
    """ctx(x) = g(act(DWConv_k(f(x)))) on channels-last tokens (B, H, W, C) -> (B, H', W', C_out).

    ``stride`` 2 strides the depthwise conv (H' = H / 2) and ``out_dim`` widens g: the downsampling form that
    AsCAN's first C block of a stage needs (EfficientMod itself downsamples between stages).
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        *,
        out_dim: int | None = None,
        stride: int = 1,
        act: Callable[[], nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.f = nn.Linear(dim, dim)
        self.dw = nn.Conv2d(dim, dim, kernel_size, stride=stride, padding=kernel_size // 2, groups=dim)
        self.act = act()
        self.g = nn.Linear(dim, out_dim or dim)

    def forward(self, y: Tensor) -> Tensor:
        c = self.f(y).permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W), a channels_last view
        c = self.act(self.dw(c))  # (B, C, H', W')
        return self.g(c.permute(0, 2, 3, 1))  # (B, C, H', W') -> (B, H', W', C_out)


class ModulationBlock(nn.Module):
    """``x + gamma * p(ctx(LN(x)) * v(LN(x)))`` with v expanding C -> rC (NCHW in and out).

    The value branch has the activation only when it expands (r > 1), as in the official code. ``out_dim`` and
    ``stride`` 2 make the block downsample the way ``ConvNeXtBlock`` does (AsCAN's ``conv_block: modulation``):
    the context's depthwise conv is strided, the value reads the same 2x2-pooled tokens as the shortcut (pooled
    and projected), and g, v and p produce ``out_dim``. EfficientMod's own blocks keep the defaults, where the
    shortcut is the identity and nothing is pooled.
    """

    def __init__(
        self,
        dim: int,
        *,
        expand_ratio: int,
        out_dim: int | None = None,
        stride: int = 1,
        kernel_size: int = 7,
        layer_scale_init: float = 1e-4,
        modulation: str = "reshape",
        norm_eps: float = 1e-5,
        act: Callable[[], nn.Module] = nn.GELU,
        pool: str = "avg2",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        out_dim = out_dim or dim
        self.modulation = modulation
        self.shortcut = shortcut(dim, out_dim, stride, pool=pool)
        self.pool = make_pool(pool) if stride == 2 else None
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.context = ContextBranch(dim, kernel_size, out_dim=out_dim, stride=stride, act=act)
        self.value = nn.Linear(dim, expand_ratio * out_dim)
        self.act = act() if expand_ratio > 1 else nn.Identity()
        self.proj = nn.Linear(expand_ratio * out_dim, out_dim)
        self.gamma: nn.Parameter | None = nn.Parameter(torch.full((out_dim,), layer_scale_init))
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(x.permute(0, 2, 3, 1))  # (B, C, H, W) -> (B, H, W, C)
        ctx = self.context(y)  # (B, H', W', C_out)
        if self.pool is not None:
            y = self.pool(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, H, W, C) -> (B, H', W', C)
        v = self.act(self.value(y))  # (B, H', W', rC_out)
        out = self.proj(modulate(v, ctx, self.modulation))  # (B, H', W', C_out)
        if self.gamma is not None:
            out = out * self.gamma
        return self.shortcut(x) + self.drop_path(out.permute(0, 3, 1, 2))  # (B, H', W', C_out) -> (B, C_out, H', W')

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the layer scale into the output projection (exact: gamma * (Wx + b) = (gamma W)x + gamma b)."""
        if self.gamma is None:
            return
        self.proj.weight.mul_(self.gamma[:, None])  # (C,) -> (C, 1): scales each output row of (C, rC)
        self.proj.bias.mul_(self.gamma)
        self.gamma = None
