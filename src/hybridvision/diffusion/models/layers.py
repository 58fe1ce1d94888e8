"""Small layers of the AsCAN UNet: the sinusoidal timestep embedding and its MLP, and the up-level resampler."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (B,) timesteps, integer or not (DDPM; [cos | sin] halves): (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, 1) * (1, half) -> (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2 * half)
    return nn.functional.pad(emb, (0, dim % 2))  # (B, dim)


class TimeEmbedding(nn.Module):
    """Sinusoidal features -> Linear -> SiLU -> Linear (the paper: "sinusoidal, then two linear layers")."""

    def __init__(self, freq_dim: int, dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        features = timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype)  # float32 -> the weights'
        return self.mlp(features)  # (B,) -> (B, dim)


class Upsample(nn.Module):
    """Nearest 2x, then a 3x3 conv to the next level's width."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C', 2H, 2W)
