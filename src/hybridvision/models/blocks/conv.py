"""Convolution blocks: pools, shortcut downsampling, squeeze-excite, conv-BN-act, MBConv, FusedMBConv, BN folding."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .drop import drop_path

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

    ``sum * 1/HW`` equals ``mean`` but its backward is one broadcast multiply instead of a full-size division:
    +2-3% training img/s for ascan_nano and coatnet_nano at 32x32, batch 128 (measured interleaved, 6 rounds).
    A second idea, folding the SE gate into the next 1x1 conv as per-sample weights (one batched matmul, no
    gated map), measured 0.91-0.96x of the plain multiply-then-conv over a whole training step, so it is not used.
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


# ---- BatchNorm folding (inference only)


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv equal to ``bn(conv(x))`` in eval mode."""
    scale, shift = _bn_scale_shift(bn)
    fused = _clone_conv(conv, bias=True)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    fused.bias.copy_(bias * scale + shift)
    return fused


@torch.no_grad()
def fold_bn_before(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """A 1x1 conv equal to ``conv(bn(x))`` in eval mode (a 1x1 kernel sees no padding, so this is exact)."""
    if conv.kernel_size != (1, 1) or conv.groups != 1:
        raise ValueError("only a dense 1x1 conv can absorb a preceding BatchNorm exactly")
    scale, shift = _bn_scale_shift(bn)
    fused = _clone_conv(conv, bias=True)
    w = conv.weight[:, :, 0, 0]  # (C_out, C_in)
    fused.weight.copy_((w * scale)[:, :, None, None])  # (C_out, C_in) -> (C_out, C_in, 1, 1)
    bias = conv.bias if conv.bias is not None else torch.zeros(w.shape[0], device=w.device, dtype=w.dtype)
    fused.bias.copy_(bias + w @ shift)
    return fused


def _clone_conv(conv: nn.Conv2d, bias: bool) -> nn.Conv2d:
    out = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=bias,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    return (
        out.to(memory_format=torch.channels_last)
        if conv.weight.is_contiguous(memory_format=torch.channels_last)
        else out
    )


# ---- MBConv


class MBConv(nn.Module):
    """Pre-norm inverted bottleneck (MobileNetV2 / CoAtNet §2.1): 1x1 expand -> depthwise kxk -> SE -> 1x1 project.

    Downsampling (stride 2) pools the shortcut and, by ``stride_mode``, the residual branch too:
    'pool' pools before the expand conv (CoAtNet eq. 5 with a pool on both branches), '1x1' strides the expand
    conv (the paper's literal eq. 5), 'dw' strides the depthwise conv (CoAtNet table 9 "strided DConv").
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
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if stride_mode not in ("pool", "1x1", "dw"):
            raise ValueError(f"unknown stride_mode {stride_mode!r}; expected 'pool', '1x1' or 'dw'")
        mid = make_divisible((out_dim if expand_from == "out" else in_dim) * expand_ratio)
        se_dim = int(se_ratio * (out_dim if expand_from == "out" else mid))
        s_pool, s_1x1, s_dw = (stride if stride_mode == m else 1 for m in ("pool", "1x1", "dw"))
        self.shortcut = shortcut(in_dim, out_dim, stride, pool=pool, bias=bias)
        self.pre_norm = nn.BatchNorm2d(in_dim)
        self.pre_act = act() if pre_norm_act else nn.Identity()
        self.down = make_pool(pool) if s_pool == 2 else nn.Identity()
        self.conv_expand = nn.Conv2d(in_dim, mid, 1, stride=s_1x1, bias=False)
        self.norm1 = nn.BatchNorm2d(mid)
        self.act1 = act()
        pad = kernel_size // 2
        self.conv_dw = nn.Conv2d(mid, mid, kernel_size, stride=s_dw, padding=pad, groups=mid, bias=False)
        self.se_early = se_early
        self.norm2 = nn.BatchNorm2d(mid)
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
            scale, _ = _bn_scale_shift(self.pre_norm)
            return bool((scale > 0).all())
        return True


# ---- Conv -> BN -> act, and FusedMBConv


class ConvNormAct(nn.Module):
    """k x k conv (no bias) -> BatchNorm -> activation; ``act=None`` leaves the activation out.

    ``fuse`` folds the BatchNorm into the conv, so inference runs one conv (with bias) and the activation.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        kernel_size: int = 1,
        *,
        stride: int = 1,
        act: Callable[[], nn.Module] | None = nn.GELU,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(out_dim)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        if isinstance(self.norm, nn.BatchNorm2d):
            self.conv, self.norm = fold_bn(self.conv, self.norm), nn.Identity()


class FusedMBConv(nn.Module):
    """Fused inverted bottleneck (EfficientNetV2; AsCAN's C block, §3.1): ``y = x + P(SE(C(x)))``.

    C is a full 3x3 conv expanding ``expand_ratio`` times, with BN and activation; SE gates the expanded
    channels; P is a 1x1 projection with BN. No depthwise conv: dense 3x3 convs use a GPU's (and oneDNN's)
    GEMM throughput far better. With stride 2 the 3x3 conv is strided and the shortcut is pooled and projected.
    ``expand_from`` picks the width the expansion and the SE ratio refer to: "in" (the block input,
    EfficientNetV2 and the paper's ``C(X)``) or "out".
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        stride: int = 1,
        expand_ratio: float = 4.0,
        expand_from: str = "in",
        se_ratio: float = 0.25,
        act: Callable[[], nn.Module] = nn.GELU,
        se_act: Callable[[], nn.Module] = nn.GELU,
        pool: str = "avg2",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if expand_from not in ("in", "out"):
            raise ValueError(f"expand_from must be 'in' or 'out', got {expand_from!r}")
        base = in_dim if expand_from == "in" else out_dim
        mid = make_divisible(base * expand_ratio)
        self.shortcut = shortcut(in_dim, out_dim, stride, pool=pool)
        self.conv_expand = ConvNormAct(in_dim, mid, 3, stride=stride, act=act)
        self.se = SqueezeExcite(mid, max(1, int(se_ratio * base)), act=se_act)
        self.conv_project = ConvNormAct(mid, out_dim, 1, act=None)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.drop_path(self.conv_project(self.se(self.conv_expand(x))))
