"""Window and grid attention (MaxViT's multi-axis attention) as partition wrappers around the shared ``Attention``.

Window ("block") attention splits a map into non-overlapping h x w windows; grid attention splits it into an
h x w grid of tokens spaced H/h apart, so every group spans the whole map (MaxViT §3.2). Both fold the groups
into the batch, run plain SDPA attention with a window-sized relative-position table, and unfold. A map
smaller than the window along an axis is one window along that axis (its attention is global there).
"""

from __future__ import annotations

from torch import Tensor, nn

from .attention import Attention

ATTENTIONS = ("global", "window", "grid")
_PARTITIONS = ("window", "grid")


def window_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """The window (or grid) an h x w map is split with: ``size`` per axis, or the whole axis if shorter."""
    return min(size, h), min(size, w)


def partition(x: Tensor, window: tuple[int, int], mode: str) -> Tensor:
    """(B, C, H, W) -> (B * n, C, wh, ww) groups of tokens; one copy, returned with channels-last strides."""
    B, C, H, W = x.shape
    wh, ww = window
    if H % wh or W % ww:
        raise ValueError(
            f"a {H}x{W} map does not split into {wh}x{ww} {mode}s: choose an input size whose stage maps are "
            f"multiples of the window size, or another window_size"
        )
    t = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C), a view
    if mode == "window":
        t = t.view(B, H // wh, wh, W // ww, ww, C)  # (B, nh, wh, nw, ww, C): neighbours share a window
        t = t.permute(0, 1, 3, 2, 4, 5)  # -> (B, nh, nw, wh, ww, C)
    else:
        t = t.view(B, wh, H // wh, ww, W // ww, C)  # (B, wh, nh, ww, nw, C): tokens H/wh apart share a group
        t = t.permute(0, 2, 4, 1, 3, 5)  # -> (B, nh, nw, wh, ww, C)
    t = t.reshape(-1, wh, ww, C)  # (B * nh * nw, wh, ww, C): the one copy
    return t.permute(0, 3, 1, 2)  # (B * n, wh, ww, C) -> (B * n, C, wh, ww), a channels-last view


def unpartition(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Inverse of ``partition``: (B * n, C, wh, ww) -> (B, C, H, W) with channels-last strides."""
    _, C, wh, ww = x.shape
    H, W = size
    nh, nw = H // wh, W // ww
    t = x.permute(0, 2, 3, 1).reshape(-1, nh, nw, wh, ww, C)  # (B * n, C, wh, ww) -> (B, nh, nw, wh, ww, C)
    if mode == "window":
        t = t.permute(0, 1, 3, 2, 4, 5)  # -> (B, nh, wh, nw, ww, C)
    else:
        t = t.permute(0, 3, 1, 4, 2, 5)  # -> (B, wh, nh, ww, nw, C)
    t = t.reshape(-1, H, W, C)  # (B, H, W, C): the one copy
    return t.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W), a channels-last view


class PartitionAttention(nn.Module):
    """Attention inside windows (``mode="window"``, Swin/MaxViT block attention) or a sparse grid ("grid")."""

    def __init__(
        self,
        dim: int,
        out_dim: int | None = None,
        *,
        num_heads: int,
        head_dim: int,
        window_size: int = 7,
        mode: str = "window",
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if mode not in _PARTITIONS:
            raise ValueError(f"unknown partition mode {mode!r}; expected one of {_PARTITIONS}")
        self.mode, self.window_size = mode, window_size
        self.attn = Attention(
            dim,
            out_dim,
            num_heads=num_heads,
            head_dim=head_dim,
            qkv_bias=qkv_bias,
            rel_pos_size=(window_size, window_size),
            rel_pos_global=False,  # the table spans one window, whatever the input size
        )

    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        window = window_shape(H, W, self.window_size)
        out = self.attn(partition(x, window, self.mode))  # (B * n, C_out, wh, ww)
        return unpartition(out, (H, W), self.mode)  # (B, C_out, H, W)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, window_size={self.window_size}"


class MultiAxisAttention(nn.Module):
    """MaxViT multi-axis attention in parallel form: ``WindowAttn(x) + GridAttn(x)``, local and sparse-global.

    MaxViT runs the two one after the other, each in its own residual sub-block; summing them fits a parallel
    transformer block, where every branch reads the same normalised input.
    """

    def __init__(self, dim: int, out_dim: int | None = None, **kwargs: int | bool) -> None:
        super().__init__()
        self.window = PartitionAttention(dim, out_dim, mode="window", **kwargs)
        self.grid = PartitionAttention(dim, out_dim, mode="grid", **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return self.window(x) + self.grid(x)


def make_attention(
    kind: str,
    dim: int,
    out_dim: int,
    *,
    head_dim: int,
    grid: tuple[int, int],
    window_size: int = 7,
) -> nn.Module:
    """Self-attention over an NCHW map, ``out_dim // head_dim`` heads, learned relative-position bias.

    ``kind``: "global" (every token attends to the whole map; the table covers the stage ``grid``),
    "window" (``window_size`` windows) or "grid" (multi-axis: window + grid attention).
    """
    heads = out_dim // head_dim
    if kind == "global":
        return Attention(dim, out_dim, num_heads=heads, head_dim=head_dim, rel_pos_size=grid)
    part = dict(num_heads=heads, head_dim=head_dim, window_size=window_size)
    if kind == "window":
        return PartitionAttention(dim, out_dim, mode="window", **part)
    if kind == "grid":
        return MultiAxisAttention(dim, out_dim, **part)
    raise ValueError(f"unknown attention {kind!r}; expected one of {ATTENTIONS}")
