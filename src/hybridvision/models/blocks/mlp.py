"""Feed-forward layers."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn


class Mlp(nn.Module):
    """Two-layer feed-forward network applied per position of an NCHW map (ViT FFN, CoAtNet fig. 4 "FFN").

    Runs Linear layers on a channels-last view: no copy when the map is stored channels_last.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        out_dim: int | None = None,
        *,
        act: Callable[[], nn.Module] = nn.GELU,
        bias: bool = True,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, bias=bias)
        self.act = act()
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.fc2 = nn.Linear(hidden_dim, out_dim or dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = self.fc2(self.drop(self.act(self.fc1(x))))  # (B, H, W, C_out)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C_out) -> (B, C_out, H, W)
