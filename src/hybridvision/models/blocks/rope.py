"""Axial 2-D rotary position embedding (RoPE, Su et al. 2021, arXiv:2104.09864) for attention over an H x W grid.

Each head's channels split in two halves: the first rotates with the token's row, the second with its column
(the axial form of EVA-02, FLUX and SD3-style 2-D RoPE). Within a half, channel ``j`` pairs with channel
``j + d/4`` (rotate-half layout) and turns by ``pos * theta^(-j / (d/4))``. A rotation keeps norms and makes
``q . k`` depend only on the offset between the two positions, so attention sees relative positions only and
no table is tied to an input size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def grid_positions(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """(row, col) of every token of an h x w grid in row-major (token) order: (h*w, 2)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([ys.flatten(), xs.flatten()], dim=-1)  # (N, 2)


def rope_angles(pos: Tensor, head_dim: int, theta: float = 10000.0) -> Tensor:
    """Rotation angles of tokens at 2-D positions ``pos`` (N, 2): (N, 2, head_dim // 4), [row axis, col axis]."""
    quarter = head_dim // 4
    freqs = theta ** (-torch.arange(quarter, device=pos.device, dtype=torch.float32) / quarter)  # (d/4,)
    return pos.float()[:, :, None] * freqs  # (N, 2, 1) * (d/4,) -> (N, 2, d/4)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the channel pairs of ``x`` (..., N, d) by angle tables ``cos``/``sin`` (N, 2, d/4), in fp32."""
    pairs = x.float().unflatten(-1, (2, 2, -1))  # (..., N, d) -> (..., N, axis, pair member, d/4)
    a, b = pairs.unbind(-2)  # 2 x (..., N, axis, d/4)
    out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-2)  # (..., N, axis, 2, d/4)
    return out.flatten(-3).to(x.dtype)  # (..., N, axis, 2, d/4) -> (..., N, d)


class Rope2d(nn.Module):
    """Axial 2-D RoPE for q and k of shape (B, heads, H*W, head_dim). No parameters.

    The tables are computed for the (H, W) of each call and, in eager mode, cached for the last size; under
    ``torch.compile`` they are computed inside the graph (static shapes make them constants).
    """

    def __init__(self, head_dim: int, *, theta: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(
                f"2-D RoPE rotates channel pairs along two axes, so head_dim must be a multiple of 4, got {head_dim}: "
                "choose another head_dim, or build the attention with rope=False"
            )
        self.head_dim, self.theta = head_dim, theta
        self._cache: tuple[tuple, Tensor, Tensor] | None = None

    def tables(self, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """cos and sin of the angles of an h x w grid: 2 x (h*w, 2, head_dim // 4), fp32."""
        if torch.compiler.is_compiling():
            return self._compute(h, w, device)
        key = (h, w, device, torch.is_inference_mode_enabled())  # inference tensors cannot be saved for backward
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, *self._compute(h, w, device))
        return self._cache[1], self._cache[2]

    def _compute(self, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
        angles = rope_angles(grid_positions(h, w, device), self.head_dim, self.theta)  # (N, 2, d/4)
        return angles.cos(), angles.sin()

    def forward(self, q: Tensor, k: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
        cos, sin = self.tables(h, w, q.device)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, theta={self.theta}"
