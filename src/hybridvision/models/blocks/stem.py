"""Stems: the layers before the first stage."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .fold import fold_bn
from .norm import make_norm2d


class ConvStem(nn.Module):
    """Two 3x3 convs, the first strided (CoAtNet S0, AsCAN): conv -> norm -> act -> conv [-> norm -> act].

    ``out_norm`` adds norm + act after the second conv; CoAtNet leaves it out because the next block's
    pre-norm follows. ``stride=1`` keeps full resolution for small inputs (32x32 data sets). ``norm`` is a
    ``make_norm2d`` kind; ``fuse`` folds only BatchNorms.
    """

    def __init__(
        self,
        in_chans: int,
        dims: tuple[int, int],
        *,
        act: Callable[[], nn.Module] = nn.GELU,
        bias: bool = False,
        out_norm: bool = False,
        stride: int = 2,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_chans, dims[0], 3, stride=stride, padding=1, bias=bias)
        self.norm1 = make_norm2d(norm, dims[0])
        self.act1 = act()
        self.conv2 = nn.Conv2d(dims[0], dims[1], 3, stride=1, padding=1, bias=bias)
        self.norm2 = make_norm2d(norm, dims[1]) if out_norm else nn.Identity()
        self.act2 = act() if out_norm else nn.Identity()
        self.out_dim = dims[1]

    def forward(self, x: Tensor) -> Tensor:
        x = self.act1(self.norm1(self.conv1(x)))  # (B, C0, H/s, W/s)
        return self.act2(self.norm2(self.conv2(x)))  # (B, C1, H/s, W/s)

    @torch.no_grad()
    def fuse(self) -> None:
        if isinstance(self.norm1, nn.BatchNorm2d):
            self.conv1, self.norm1 = fold_bn(self.conv1, self.norm1), nn.Identity()
        if isinstance(self.norm2, nn.BatchNorm2d):
            self.conv2, self.norm2 = fold_bn(self.conv2, self.norm2), nn.Identity()
