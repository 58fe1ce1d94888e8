"""Multi-head self- and cross-attention over NCHW maps through ``F.scaled_dot_product_attention``.

The learned relative-position bias (CoAtNet eq. 3) is passed to SDPA as a float additive mask, so the fused
kernel still runs; its gather index is a cached buffer for the native size and rebuilt only for other sizes.
Options for diffusion models: 2-D RoPE on q and k (``rope.Rope2d``), RMSNorm of q and k per head (``qk_norm``,
ViT-22B / SD3), and cross-attention from the map to a context sequence (text tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .rope import Rope2d


def relative_index(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """Flat index into a (2h-1, 2w-1) table for every (query, key) pair of an h x w grid: shape (N*N,)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :]  # (2, N, N): query minus key offsets
    return ((rel[0] + h - 1) * (2 * w - 1) + (rel[1] + w - 1)).flatten()  # (N*N,)


def resize_table(table: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resample a (heads, 2H-1, 2W-1) table to grid ``size`` (CoAtNet §4.1).

    ``align_corners=True`` keeps the zero offset and the extreme offsets on their own cells.
    """
    h, w = size
    if table.shape[-2:] == (2 * h - 1, 2 * w - 1):
        return table
    out = F.interpolate(table[None].float(), size=(2 * h - 1, 2 * w - 1), mode="bilinear", align_corners=True)
    return out[0].to(table.dtype)  # (1, heads, 2h-1, 2w-1) -> (heads, 2h-1, 2w-1)


class RelPosBias(nn.Module):
    """Learned 2-D relative-position bias: one scalar per head per offset, table (heads, 2H-1, 2W-1).

    ``size`` is the grid the table is built for; a different grid at run time resamples the table
    bilinearly (no parameters change); ``resize_`` changes the native size for good (fine-tuning).
    Window attention passes ``global_grid=False``: its grid is the window, which input size never changes.
    """

    def __init__(self, num_heads: int, size: tuple[int, int], *, global_grid: bool = True) -> None:
        super().__init__()
        h, w = size
        self.size = (h, w)
        self.global_grid = global_grid  # True: the grid is the whole stage map (follows the input size)
        self.table = nn.Parameter(torch.zeros(num_heads, 2 * h - 1, 2 * w - 1))
        self.register_buffer("index", relative_index(h, w), persistent=False)
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, h: int, w: int) -> Tensor:
        """Bias for an h x w grid: (1, heads, N, N)."""
        table, index = self.table, self.index
        if (h, w) != self.size:
            table = self._table_for(h, w)
            index = relative_index(h, w, device=table.device)
        bias = table.flatten(1).index_select(1, index)  # (heads, (2h-1)(2w-1)) -> (heads, N*N)
        return bias.view(1, -1, h * w, h * w)  # (heads, N*N) -> (1, heads, N, N)

    def _table_for(self, h: int, w: int) -> Tensor:
        sh, sw = self.size
        if not self.global_grid and h <= sh and w <= sw:
            # A window smaller than the table's (a stage map smaller than the window): its offsets are a
            # centred sub-range of the table, so crop rather than resample.
            return self.table[:, sh - h : sh + h - 1, sw - w : sw + w - 1]  # (heads, 2h-1, 2w-1)
        return resize_table(self.table, (h, w))

    def adapt_loaded(self, name: str, value: Tensor) -> Tensor:
        """A loaded ``table`` of another grid, resampled to this one (weights trained at another input size)."""
        if name != "table" or value.dim() != 3 or value.shape[0] != self.table.shape[0]:
            raise ValueError(f"cannot adapt {name} of shape {tuple(value.shape)} to {tuple(self.table.shape)}")
        return resize_table(value, self.size)

    @torch.no_grad()
    def resize_(self, size: tuple[int, int]) -> None:
        self.table = nn.Parameter(resize_table(self.table.data, size))
        self.size = tuple(size)
        self.index = relative_index(*size, device=self.table.device)

    def extra_repr(self) -> str:
        return f"heads={self.table.shape[0]}, size={self.size}"


# ---- Shared pieces of self- and cross-attention


def to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, N, C); a view when the map is stored channels_last."""
    B, C, H, W = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, H * W, C)  # (B, C, H, W) -> (B, N, C)


def to_map(t: Tensor, h: int, w: int) -> Tensor:
    """(B, N, C) -> (B, C, H, W), a channels-last view."""
    return t.view(t.shape[0], h, w, -1).permute(0, 3, 1, 2)  # (B, N, C) -> (B, C, H, W)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, drop: float) -> Tensor:
    """SDPA over heads, packed back to tokens: q (B, h, N, d), k/v (B, h, L, d) -> (B, N, h*d)."""
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)  # (B, h, N, d)
    # SDPA's output strides differ between kernels (and between an exporter's trace and its decomposed
    # graph), so pack explicitly: one copy of (B, N, C), robust for every backend and exporter.
    B, _, N, _ = o.shape
    return o.transpose(1, 2).clone(memory_format=torch.contiguous_format).view(B, N, -1)  # -> (B, N, h*d)


class QKNorm(nn.Module):
    """RMSNorm of every query and key head over its channels (ViT-22B, SD3): bounded logits at any scale."""

    def __init__(self, head_dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.q = nn.RMSNorm(head_dim, eps=eps)
        self.k = nn.RMSNorm(head_dim, eps=eps)

    def forward(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return self.q(q), self.k(k)


class Attention(nn.Module):
    """Global multi-head self-attention on an NCHW map (ViT), optionally with a relative-position bias.

    The inner width ``num_heads * head_dim`` may differ from ``dim`` (EfficientMod keeps head_dim >= 32) and
    the output width from both (CoAtNet widens in the first block of a stage). q/k/v channels are laid out
    [q | k | v], each (heads, head_dim). ``qk_norm`` RMS-normalises each q and k head, then ``rope`` rotates
    them by their 2-D grid position (norm before rotation, as FLUX and SD3).
    """

    def __init__(
        self,
        dim: int,
        out_dim: int | None = None,
        *,
        num_heads: int,
        head_dim: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        rel_pos_size: tuple[int, int] | None = None,
        rel_pos_global: bool = True,  # False: the table is window-sized (see RelPosBias)
        rope: bool = False,
        qk_norm: bool = False,
        attn_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.rel_pos = RelPosBias(num_heads, rel_pos_size, global_grid=rel_pos_global) if rel_pos_size else None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(inner, out_dim or dim, bias=proj_bias)
        # Created last and only when asked for: with both off the module and its init match the plain block.
        self.qk_norm = QKNorm(head_dim) if qk_norm else None
        self.rope = Rope2d(head_dim) if rope else None

    def forward(self, x: Tensor) -> Tensor:
        B, _, H, W = x.shape
        N = H * W
        qkv = self.qkv(to_tokens(x)).view(B, N, 3, self.num_heads, self.head_dim)  # (B, N, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, N, d)
        if self.qk_norm is not None:
            q, k = self.qk_norm(q, k)
        if self.rope is not None:
            q, k = self.rope(q, k, H, W)
        bias = self.rel_pos(H, W) if self.rel_pos is not None else None  # (1, h, N, N)
        o = attend(q, k, v, bias, self.attn_drop if self.training else 0.0)  # (B, N, h*d)
        return to_map(self.proj(o), H, W)  # (B, N, C_out) -> (B, C_out, H, W)


class CrossAttention(nn.Module):
    """Multi-head cross-attention: queries from an NCHW map, keys and values from a context sequence.

    The context (B, L, context_dim), e.g. text-encoder tokens, has its own width; ``context_mask`` (B, L) is
    True for the tokens to attend to (padding False). Every sample needs at least one kept token.
    """

    def __init__(
        self,
        dim: int,
        out_dim: int | None = None,
        *,
        context_dim: int,
        num_heads: int,
        head_dim: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = False,
        attn_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.q = nn.Linear(dim, inner, bias=qkv_bias)
        self.kv = nn.Linear(context_dim, 2 * inner, bias=qkv_bias)
        self.qk_norm = QKNorm(head_dim) if qk_norm else None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(inner, out_dim or dim, bias=proj_bias)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        B, _, H, W = x.shape
        h, d = self.num_heads, self.head_dim
        q = self.q(to_tokens(x)).view(B, H * W, h, d).transpose(1, 2)  # (B, N, h*d) -> (B, h, N, d)
        kv = self.kv(context).view(B, context.shape[1], 2, h, d)  # (B, L, 2*h*d) -> (B, L, 2, h, d)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x (B, h, L, d)
        if self.qk_norm is not None:
            q, k = self.qk_norm(q, k)
        mask = context_mask[:, None, None, :] if context_mask is not None else None  # (B, L) -> (B, 1, 1, L)
        o = attend(q, k, v, mask, self.attn_drop if self.training else 0.0)  # (B, N, h*d)
        return to_map(self.proj(o), H, W)  # (B, N, C_out) -> (B, C_out, H, W)
