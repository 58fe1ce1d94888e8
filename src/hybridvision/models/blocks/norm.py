"""Normalisation layers for NCHW maps, and the one factory conv blocks pick their norm from."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("batch", "group", "layer", "rms")
MAX_GROUPS = 32  # GroupNorm's usual 32 groups (Wu & He, 2018), fewer when the width is not a multiple


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map.

    Works on a channels-last view, so a map stored channels_last is normalised without any copy.
    """

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C), a view
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W), a view


class RMSNorm2d(nn.RMSNorm):
    """RMSNorm over the channels of an NCHW map (no mean subtraction, no bias); channels-last like LayerNorm2d."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C), a view
        x = F.rms_norm(x, self.normalized_shape, self.weight, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W), a view


def group_count(dim: int, max_groups: int = MAX_GROUPS) -> int:
    """The largest divisor of ``dim`` that is at most ``max_groups``."""
    return next(g for g in range(min(dim, max_groups), 0, -1) if dim % g == 0)


def make_norm2d(kind: str, dim: int, *, eps: float = 1e-5) -> nn.Module:
    """A norm over the channels of an NCHW map: "batch" (BatchNorm2d), "group" (GroupNorm, up to 32 groups),
    "layer" (LayerNorm2d) or "rms" (RMSNorm2d).

    Only "batch" depends on batch statistics and folds into the preceding conv at inference (``fuse``);
    "group", "layer" and "rms" are per sample, as small-batch training and diffusion models want.
    """
    if kind == "batch":
        return nn.BatchNorm2d(dim, eps=eps)
    if kind == "group":
        return nn.GroupNorm(group_count(dim), dim, eps=eps)
    if kind == "layer":
        return LayerNorm2d(dim, eps=eps)
    if kind == "rms":
        return RMSNorm2d(dim, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORMS}")
