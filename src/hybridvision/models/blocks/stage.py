"""Stage layouts as data: a string per stage, one letter per block, read left to right."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from torch import nn

# make_block(in_dim, out_dim, stride, drop_path_rate) -> block
BlockFactory = Callable[[int, int, int, float], nn.Module]


def check_layout(layout: Sequence[str], letters: str) -> None:
    """Every stage string is non-empty and uses only ``letters``."""
    for i, stage in enumerate(layout):
        if not stage:
            raise ValueError(f"stage {i} of layout {'-'.join(layout)!r} has no blocks")
        bad = sorted(set(stage) - set(letters))
        if bad:
            raise ValueError(
                f"stage {i} of layout {'-'.join(layout)!r} uses unknown block letter(s) {bad}; "
                f"valid letters: {', '.join(letters)}"
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
