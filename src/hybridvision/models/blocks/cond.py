"""Conditioning of NCHW blocks by an embedding (a diffusion timestep, a class) and the checks of their arguments.

``EmbModulation`` is the one place an embedding enters a block: ``SiLU -> Linear`` to the block width, then
either added to the normalised features ("add": the time embedding of the DDPM/SDXL ResNet block) or used as a
per-channel ``(scale, shift)`` ("scale_shift": adaLN, DiT/FiLM). Its projection starts at zero, so a conditioned
block starts out computing exactly its unconditioned function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EMB_MODES = ("add", "scale_shift")


class EmbModulation(nn.Module):
    """``h + e`` ("add") or ``h * (1 + scale) + shift`` ("scale_shift") with ``e = Linear(SiLU(emb))`` per channel.

    The projection is held as plain parameters rather than an ``nn.Linear``: the families' init schemes re-draw
    every ``nn.Linear`` of a block, and this one must stay zero (each block starts unconditioned, adaLN-Zero).
    """

    def __init__(self, emb_dim: int, dim: int, *, mode: str = "add") -> None:
        super().__init__()
        _check_mode(mode)
        if emb_dim < 1:
            raise ValueError(f"emb_dim must be >= 1 for an embedding projection, got {emb_dim}")
        self.emb_dim, self.dim, self.mode = emb_dim, dim, mode
        out = 2 * dim if mode == "scale_shift" else dim
        self.weight = nn.Parameter(torch.zeros(out, emb_dim))
        self.bias = nn.Parameter(torch.zeros(out))

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        e = F.linear(F.silu(emb), self.weight, self.bias)[:, :, None, None]  # (B, E) -> (B, kC, 1, 1)
        if self.mode == "add":
            return h + e
        scale, shift = e.chunk(2, dim=1)  # (B, 2C, 1, 1) -> 2 x (B, C, 1, 1)
        return h * (1 + scale) + shift

    def extra_repr(self) -> str:
        return f"emb_dim={self.emb_dim}, dim={self.dim}, mode={self.mode}"


def _check_mode(mode: str) -> None:
    if mode not in EMB_MODES:
        raise ValueError(f"unknown emb_mode {mode!r}; expected one of {EMB_MODES}")


def make_emb_modulation(emb_dim: int, dim: int, mode: str) -> EmbModulation | None:
    """An ``EmbModulation``, or None when ``emb_dim`` is 0 (the block takes no embedding and gains no parameters)."""
    if emb_dim < 0:
        raise ValueError(f"emb_dim must be >= 0 (0 = unconditioned), got {emb_dim}")
    _check_mode(mode)
    return EmbModulation(emb_dim, dim, mode=mode) if emb_dim else None


def check_emb(owner: nn.Module, proj: EmbModulation | None, emb: Tensor | None) -> None:
    """Raise when ``emb`` is missing for a block built with ``emb_dim > 0``, or given to one built without."""
    name = type(owner).__name__
    if proj is not None and emb is None:
        raise ValueError(
            f"{name} was built with emb_dim={proj.emb_dim} and needs the embedding: call it as "
            f"forward(x, emb=...) with emb of shape (B, {proj.emb_dim})"
        )
    if proj is None and emb is not None:
        raise ValueError(
            f"{name} was built without an embedding (emb_dim=0) but got emb: build it with "
            f"emb_dim={emb.shape[-1]}, or leave emb out"
        )


def check_context(owner: nn.Module, cross_attn: nn.Module | None, context: Tensor | None, mask: Tensor | None) -> None:
    """Raise when ``context`` is missing for a block with cross-attention, or given to one without."""
    name = type(owner).__name__
    if cross_attn is not None and context is None:
        raise ValueError(
            f"{name} has a cross_attn and needs the context: call it as forward(x, context=...) with context "
            "of shape (B, L, context_dim)"
        )
    if cross_attn is None and context is not None:
        raise ValueError(
            f"{name} was built without cross_attn but got context: build it with cross_attn=CrossAttention(...), "
            "or leave context out"
        )
    if context is None and mask is not None:
        raise ValueError(f"{name} got context_mask without context: pass the context it masks, or leave it out")
