"""The text adapter (AsCAN App. A.6): frozen text-encoder tokens pass through two T blocks before cross-attention.

The paper: "the frozen T5 embeddings go through two T blocks (1 head, width 4096)", i.e. the adapter keeps the
encoder's width and the UNet's cross-attention reads that width. A T block here is the UNet's parallel block on
a token sequence, ``y = x + SelfAttn(x^) + MLP(x^)`` with ``x^ = LN(GELU(x))`` (AsCAN §3.1), built from the shared
blocks: the self-attention is a ``CrossAttention`` of the tokens to themselves, which is what lets it take the
padding mask (the shared ``Attention`` has none), and the MLP is the shared ``Mlp``. Tokens run as a (B, D, 1, L)
map, the blocks' layout. Residual branches start at zero, so the untrained adapter passes the encoder's tokens
through its final LayerNorm (ours: the paper does not say how the tokens are scaled; MiniLM's have norm ~8).

``TextAdapter`` is a diffusers model (``ModelMixin``, ``ConfigMixin``: its four arguments are its config), so it
saves, loads and moves like one on its own, and inside the UNet it is one more submodule.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ...models.blocks import CrossAttention, LayerNorm2d, Mlp, init_transformer, to_map, to_tokens
from .._diffusers import diffusers, diffusers_module

_diffusers = diffusers()
register_to_config = diffusers_module("configuration_utils").register_to_config


class TokenBlock(nn.Module):
    """AsCAN's parallel T block on a padded token sequence (B, L, D) with its mask (B, L; True = real token)."""

    def __init__(self, dim: int, *, num_heads: int = 1, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"the text adapter's width {dim} is not divisible by its {num_heads} heads")
        self.act = nn.GELU()
        self.norm = LayerNorm2d(dim, eps=1e-6)
        head = dict(num_heads=num_heads, head_dim=dim // num_heads, qk_norm=True)
        self.attn = CrossAttention(dim, context_dim=dim, **head)  # the tokens attend to themselves
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        L = x.shape[1]
        y = self.norm(self.act(to_map(x, 1, L)))  # (B, L, D) -> (B, D, 1, L)
        out = self.attn(y, to_tokens(y), mask) + self.mlp(y)  # (B, D, 1, L)
        return x + to_tokens(out)  # (B, D, 1, L) -> (B, L, D)


class TextAdapter(_diffusers.ModelMixin, _diffusers.ConfigMixin):
    """``depth`` T blocks over the encoder's tokens, then a LayerNorm: (B, L, D) -> (B, L, D)."""

    @register_to_config
    def __init__(self, dim: int, *, depth: int = 2, num_heads: int = 1, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TokenBlock(dim, num_heads=num_heads, mlp_ratio=mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        init_transformer(self)
        for block in self.blocks:  # zero the last layer of each residual branch: each block starts as identity
            for layer in (block.attn.proj, block.mlp.fc2):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        x = tokens
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


def masked_mean(tokens: Tensor, mask: Tensor | None) -> Tensor:
    """The mean of each prompt's real tokens (``mask`` True or 1; all of them without a mask): (B, L, D) -> (B, D)."""
    if mask is None:
        return tokens.mean(1)  # (B, D)
    keep = mask.to(tokens.dtype)[..., None]  # (B, L, 1)
    return (tokens * keep).sum(1) / keep.sum(1).clamp_min(1.0)  # (B, D)


def pooled_tokens(tokens: Tensor, mask: Tensor | None) -> Tensor:
    """The prompt's sentence vector: the masked mean of its tokens, L2-normalised (what sentence-transformers'
    all-MiniLM-L6-v2 returns as its embedding), times sqrt(D) so its entries are of unit scale: (B, L, D) -> (B, D)."""
    return F.normalize(masked_mean(tokens, mask), dim=-1) * math.sqrt(tokens.shape[-1])


class PooledTextEmbedding(nn.Module):
    """The pooled prompt vector -> Linear -> SiLU -> Linear, added to the time embedding (SDXL adds its pooled
    text embedding there too). Its last layer starts at zero, so an untrained model ignores it."""

    def __init__(self, dim: int, emb_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, tokens: Tensor, mask: Tensor | None) -> Tensor:
        return self.mlp(pooled_tokens(tokens, mask))  # (B, L, D) -> (B, emb_dim)
