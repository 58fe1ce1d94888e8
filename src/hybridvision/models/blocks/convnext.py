"""The ConvNeXt block (Liu et al., 2022, arXiv:2201.03545), one of AsCAN's conv-block alternatives (§3.1, Tab. 1)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .cond import EmbModulation, check_emb, make_emb_modulation
from .conv import shortcut
from .drop import drop_path
from .mlp import Mlp
from .norm import LayerNorm2d


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 -> LayerNorm -> Linear (x4) -> GELU -> Linear -> layer scale, plus the residual.

    With stride 2 (first block of a stage) the depthwise conv is strided, the MLP widens to ``out_dim`` and the
    shortcut is pooled and projected (ConvNeXt itself downsamples with separate layers; a hybrid layout needs
    the block to do it). Layer scale starts at ``layer_scale`` so each block starts close to identity.
    ``emb_dim > 0`` conditions the normalised features on an embedding before the MLP (``cond.EmbModulation``);
    ``context`` is accepted and ignored, as in ``FusedMBConv``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int | None = None,
        *,
        stride: int = 1,
        kernel_size: int = 7,
        mlp_ratio: float = 4.0,
        layer_scale: float = 1e-6,
        norm_eps: float = 1e-6,
        act: Callable[[], nn.Module] = nn.GELU,
        pool: str = "avg2",
        emb_dim: int = 0,
        emb_mode: str = "add",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        out_dim = out_dim or in_dim
        self.shortcut = shortcut(in_dim, out_dim, stride, pool=pool)
        pad = kernel_size // 2
        self.conv_dw = nn.Conv2d(in_dim, in_dim, kernel_size, stride=stride, padding=pad, groups=in_dim)
        self.norm = LayerNorm2d(in_dim, eps=norm_eps)
        self.mlp = Mlp(in_dim, int(mlp_ratio * out_dim), out_dim, act=act)
        self.gamma: nn.Parameter | None = nn.Parameter(torch.full((out_dim,), layer_scale))
        self.drop_path = drop_path(drop_path_rate)
        self.emb_proj: EmbModulation | None = make_emb_modulation(emb_dim, in_dim, emb_mode)

    def forward(
        self,
        x: Tensor,
        emb: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        check_emb(self, self.emb_proj, emb)
        y = self.norm(self.conv_dw(x))  # (B, C_in, H', W')
        if self.emb_proj is not None:
            y = self.emb_proj(y, emb)
        y = self.mlp(y)  # (B, C_out, H', W')
        if self.gamma is not None:
            y = y * self.gamma[:, None, None]  # (C_out,) -> (C_out, 1, 1), broadcast over B, H, W
        return self.shortcut(x) + self.drop_path(y)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the layer scale into the last linear layer (exact: ``g * (Wx + b) = (gW)x + gb``)."""
        if self.gamma is None:
            return
        fc2 = self.mlp.fc2
        fc2.weight.mul_(self.gamma[:, None])
        if fc2.bias is not None:
            fc2.bias.mul_(self.gamma)
        self.gamma = None
