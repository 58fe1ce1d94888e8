"""Convolution blocks: pools, shortcut downsampling, squeeze-excite, MBConv."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .drop import drop_path
from .fold import bn_scale_shift, fold_bn, fold_bn_before
from .norm import make_norm2d

POOLS = ("avg2", "max2")


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90% of the request (MobileNet rule)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < round_limit * value else out


def make_pool(kind: str) -> nn.Module:
    """2x2 stride-2 pooling: 'avg2' or 'max2' (CoAtNet eq. 4-5 downsample both branches with a pool)."""
    if kind == "avg2":
        return nn.AvgPool2d(2, 2)
    if kind == "max2":
        return nn.MaxPool2d(2, 2)
    raise ValueError(f"unknown pool {kind!r}; expected one of {POOLS}")


class Downsample(nn.Module):
    """Shortcut of a stride-2 block: 2x2 pool, then a 1x1 projection when the width changes."""

    def __init__(self, in_dim: int, out_dim: int, *, pool: str = "avg2", bias: bool = True) -> None:
        super().__init__()
        self.pool = make_pool(pool)
        self.proj = nn.Conv2d(in_dim, out_dim, 1, bias=bias) if in_dim != out_dim else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.pool(x))


def shortcut(in_dim: int, out_dim: int, stride: int, *, pool: str = "avg2", bias: bool = True) -> nn.Module:
    """Identity, a pooled projection (stride 2), or a 1x1 projection (width change only)."""
    if stride == 2:
        return Downsample(in_dim, out_dim, pool=pool, bias=bias)
    if stride != 1:
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    return nn.Conv2d(in_dim, out_dim, 1, bias=bias) if in_dim != out_dim else nn.Identity()


def _squeeze(x: Tensor) -> Tensor:
    """Global average over H, W: (B, C, H, W) -> (B, C).

    ``sum * 1/HW`` equals ``mean`` but its backward is one broadcast multiply instead of a full-size division,
    which trains the nano models measurably faster (docs/training.md). Folding the SE gate into the next 1x1
    conv as per-sample weights (one batched matmul, no gated map) measured slower over a whole training step, so
    it is not used.
    """
    return x.sum((2, 3)) * (1.0 / (x.shape[2] * x.shape[3]))


class SqueezeExcite(nn.Module):
    """Channel gating (Hu et al., 2018): global pool -> fc -> act -> fc -> sigmoid -> scale."""

    def __init__(self, dim: int, reduced_dim: int, *, act: Callable[[], nn.Module] = nn.SiLU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, reduced_dim)
        self.act = act()
        self.fc2 = nn.Linear(reduced_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        s = _squeeze(x)  # (B, C, H, W) -> (B, C)
        s = self.fc2(self.act(self.fc1(s)))  # (B, C)
        return x * s.sigmoid()[:, :, None, None]  # (B, C) -> (B, C, 1, 1), broadcast over H, W


# ---- MBConv


class MBConv(nn.Module):
    """Pre-norm inverted bottleneck (MobileNetV2 / CoAtNet §2.1): 1x1 expand -> depthwise kxk -> SE -> 1x1 project.

    Downsampling (stride 2) pools the shortcut and, by ``stride_mode``, the residual branch too:
    'pool' pools before the expand conv (CoAtNet eq. 5 with a pool on both branches), '1x1' strides the expand
    conv (the paper's literal eq. 5), 'dw' strides the depthwise conv (CoAtNet table 9 "strided DConv").
    ``norm`` picks the three norms (``make_norm2d``); ``fuse`` folds only BatchNorms.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        stride: int = 1,
        expand_ratio: float = 4.0,
        expand_from: str = "out",  # base width of the expansion and SE: "out" (MaxViT) or "in" (MobileNet)
        stride_mode: str = "dw",
        pool: str = "avg2",
        kernel_size: int = 3,
        se_ratio: float = 0.25,
        se_act: Callable[[], nn.Module] = nn.SiLU,
        se_early: bool = False,  # SE between the depthwise conv and its norm (timm's early CoAtNet weights)
        act: Callable[[], nn.Module] = nn.GELU,
        pre_norm_act: bool = False,
        bias: bool = True,  # bias of the projection conv and the shortcut projection
        norm: str = "batch",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if stride_mode not in ("pool", "1x1", "dw"):
            raise ValueError(f"unknown stride_mode {stride_mode!r}; expected 'pool', '1x1' or 'dw'")
        mid = make_divisible((out_dim if expand_from == "out" else in_dim) * expand_ratio)
        se_dim = int(se_ratio * (out_dim if expand_from == "out" else mid))
        s_pool, s_1x1, s_dw = (stride if stride_mode == m else 1 for m in ("pool", "1x1", "dw"))
        self.shortcut = shortcut(in_dim, out_dim, stride, pool=pool, bias=bias)
        self.pre_norm = make_norm2d(norm, in_dim)
        self.pre_act = act() if pre_norm_act else nn.Identity()
        self.down = make_pool(pool) if s_pool == 2 else nn.Identity()
        self.conv_expand = nn.Conv2d(in_dim, mid, 1, stride=s_1x1, bias=False)
        self.norm1 = make_norm2d(norm, mid)
        self.act1 = act()
        pad = kernel_size // 2
        self.conv_dw = nn.Conv2d(mid, mid, kernel_size, stride=s_dw, padding=pad, groups=mid, bias=False)
        self.se_early = se_early
        self.norm2 = make_norm2d(norm, mid)
        self.act2 = act()
        self.se = SqueezeExcite(mid, se_dim, act=se_act)
        self.conv_project = nn.Conv2d(mid, out_dim, 1, bias=bias)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.shortcut(x)
        x = self.down(self.pre_act(self.pre_norm(x)))
        x = self.act1(self.norm1(self.conv_expand(x)))
        x = self.conv_dw(x)
        if self.se_early:
            x = self.act2(self.norm2(self.se(x)))
        else:
            x = self.se(self.act2(self.norm2(x)))
        return shortcut + self.drop_path(self.conv_project(x))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold BatchNorms into the adjacent convs (eval mode); outputs stay equal to fp32 rounding."""
        if isinstance(self.norm1, nn.BatchNorm2d):
            self.conv_expand, self.norm1 = fold_bn(self.conv_expand, self.norm1), nn.Identity()
        if isinstance(self.norm2, nn.BatchNorm2d) and not self.se_early:
            self.conv_dw, self.norm2 = fold_bn(self.conv_dw, self.norm2), nn.Identity()
        if isinstance(self.pre_norm, nn.BatchNorm2d) and self._pre_norm_foldable():
            self.conv_expand, self.pre_norm = fold_bn_before(self.pre_norm, self.conv_expand), nn.Identity()

    def _pre_norm_foldable(self) -> bool:
        # pre-norm -> [avg pool | strided 1x1] -> 1x1 conv is affine-then-linear: foldable; an activation
        # in between is not, nor a max pool under a negative scale.
        if not isinstance(self.pre_act, nn.Identity):
            return False
        if isinstance(self.down, nn.MaxPool2d):
            scale, _ = bn_scale_shift(self.pre_norm)
            return bool((scale > 0).all())
        return True
