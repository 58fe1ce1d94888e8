"""Normalisation layers for NCHW maps."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map.

    Works on a channels-last view, so a map stored channels_last is normalised without any copy.
    """

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C), a view
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W), a view
