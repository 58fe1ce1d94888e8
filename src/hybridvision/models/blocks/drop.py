"""Stochastic depth (Huang et al., 2016): drop whole residual branches per sample."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class DropPath(nn.Module):
    """Zero a residual branch for a random subset of samples during training, rescaling the rest."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)  # (B, 1, 1, 1)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"rate={self.rate:.3f}"


def drop_path(rate: float) -> nn.Module:
    """DropPath, or Identity when the rate is zero (keeps inference graphs free of no-ops)."""
    return DropPath(rate) if rate > 0 else nn.Identity()


def drop_path_rates(rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Linearly rising rates from 0 to ``rate`` over all blocks, split per stage (timm, CoAtNet)."""
    total = sum(depths)
    flat = [rate * i / (total - 1) for i in range(total)] if total > 1 else [0.0] * total
    out, start = [], 0
    for d in depths:
        out.append(flat[start : start + d])
        start += d
    return out
