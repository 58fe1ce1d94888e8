"""Conv -> norm -> act, and the fused inverted bottleneck built from it (EfficientNetV2; AsCAN's C block)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .cond import EmbModulation, check_emb, make_emb_modulation
from .conv import SqueezeExcite, make_divisible, shortcut
from .drop import drop_path
from .fold import fold_bn
from .norm import make_norm2d


class ConvNormAct(nn.Module):
    """k x k conv (no bias) -> norm -> [embedding] -> activation; ``act=None`` leaves the activation out.

    ``norm`` is a ``make_norm2d`` kind. ``emb_dim > 0`` conditions the normalised features on an embedding
    (``cond.EmbModulation``, zero at init) just before the activation. ``fuse`` folds a BatchNorm into the
    conv, so inference runs one conv (with bias) and the activation; other norms stay.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        kernel_size: int = 1,
        *,
        stride: int = 1,
        act: Callable[[], nn.Module] | None = nn.GELU,
        norm: str = "batch",
        emb_dim: int = 0,
        emb_mode: str = "add",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
        self.norm = make_norm2d(norm, out_dim)
        self.act = act() if act is not None else nn.Identity()
        self.emb_proj: EmbModulation | None = make_emb_modulation(emb_dim, out_dim, emb_mode)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        check_emb(self, self.emb_proj, emb)
        x = self.norm(self.conv(x))
        if self.emb_proj is not None:
            x = self.emb_proj(x, emb)
        return self.act(x)

    @torch.no_grad()
    def fuse(self) -> None:
        if isinstance(self.norm, nn.BatchNorm2d):
            self.conv, self.norm = fold_bn(self.conv, self.norm), nn.Identity()


class FusedMBConv(nn.Module):
    """Fused inverted bottleneck (EfficientNetV2; AsCAN's C block, §3.1): ``y = x + P(SE(C(x)))``.

    C is a full 3x3 conv expanding ``expand_ratio`` times, with norm and activation; SE gates the expanded
    channels; P is a 1x1 projection with norm. No depthwise conv: dense 3x3 convs use a GPU's (and oneDNN's)
    GEMM throughput far better. With stride 2 the 3x3 conv is strided and the shortcut is pooled and projected.
    ``expand_from`` picks the width the expansion and the SE ratio refer to: "in" (the block input,
    EfficientNetV2 and the paper's ``C(X)``) or "out".

    Conditioning: ``emb_dim > 0`` injects an embedding into C's expanded features between its norm and its
    activation (the time embedding of a diffusion UNet's ResNet block). ``context`` is accepted and ignored, so
    a stage can hand the same conditioning to its conv and attention blocks.
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
        norm: str = "batch",
        emb_dim: int = 0,
        emb_mode: str = "add",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if expand_from not in ("in", "out"):
            raise ValueError(f"expand_from must be 'in' or 'out', got {expand_from!r}")
        base = in_dim if expand_from == "in" else out_dim
        mid = make_divisible(base * expand_ratio)
        self.shortcut = shortcut(in_dim, out_dim, stride, pool=pool)
        self.conv_expand = ConvNormAct(
            in_dim, mid, 3, stride=stride, act=act, norm=norm, emb_dim=emb_dim, emb_mode=emb_mode
        )
        self.se = SqueezeExcite(mid, max(1, int(se_ratio * base)), act=se_act)
        self.conv_project = ConvNormAct(mid, out_dim, 1, act=None, norm=norm)
        self.drop_path = drop_path(drop_path_rate)

    def forward(
        self,
        x: Tensor,
        emb: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        check_emb(self, self.conv_expand.emb_proj, emb)
        h = self.conv_expand(x, emb)  # (B, mid, H', W')
        return self.shortcut(x) + self.drop_path(self.conv_project(self.se(h)))
