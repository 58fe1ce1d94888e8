"""Stages: layouts as data (a string per stage, one letter per block, read left to right) and the Stage module."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ...config import check

# make_block(in_dim, out_dim, stride, drop_path_rate) -> block
BlockFactory = Callable[[int, int, int, float], nn.Module]


def check_layout(layout: Sequence[str], letters: str) -> None:
    """Every stage string is non-empty and uses only ``letters``."""
    for i, stage in enumerate(layout):
        check(bool(stage), f"stage {i} of layout {'-'.join(layout)!r} has no blocks")
        bad = sorted(set(stage) - set(letters))
        check(
            not bad,
            f"stage {i} of layout {'-'.join(layout)!r} uses unknown block letter(s) {bad}; "
            f"valid letters: {', '.join(letters)}",
        )


def build_blocks(
    pattern: str,
    in_dim: int,
    out_dim: int,
    factories: Mapping[str, BlockFactory],
    drop_path_rates: Sequence[float],
    stride: int = 2,
) -> list[nn.Module]:
    """Blocks for one stage: the first takes ``in_dim`` and ``stride``, the rest keep ``out_dim``."""
    blocks = []
    for i, letter in enumerate(pattern):
        dim = in_dim if i == 0 else out_dim
        blocks.append(factories[letter](dim, out_dim, stride if i == 0 else 1, drop_path_rates[i]))
    return blocks


class Stage(nn.Module):
    """A stage: an optional downsample module, then blocks run in order (NCHW in and out).

    Conditioning (``emb``, ``context``, ``context_mask``) reaches every block as keyword arguments, only those
    given: an unconditioned stage calls ``block(x)``, so blocks without conditioning support (MBConv,
    EfficientMod's blocks) keep working. ``grad_checkpointing`` recomputes each block in the backward pass.
    """

    def __init__(self, blocks: Sequence[nn.Module], downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.blocks = nn.Sequential(*blocks)
        self.grad_checkpointing = False

    def forward(
        self,
        x: Tensor,
        emb: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        cond = {"emb": emb, "context": context, "context_mask": context_mask}
        cond = {k: v for k, v in cond.items() if v is not None}
        recompute = self.grad_checkpointing and self.training and not torch.jit.is_scripting()
        x = self.downsample(x)
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False, **cond) if recompute else block(x, **cond)
        return x
