"""The pixel codec of generated images: [-1, 1] floats <-> uint8 pixels, as a saved PNG holds them."""

from __future__ import annotations

import torch
from torch import Tensor


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] floats -> uint8 pixels (rounded, clipped)."""
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def from_uint8(images: Tensor) -> Tensor:
    """uint8 pixels -> [-1, 1] floats."""
    return images.float() / 127.5 - 1.0


def unit_to_uint8(x: Tensor) -> Tensor:
    """[0, 1] floats (a diffusers pipeline's "pt" images) -> uint8 pixels (rounded, clipped)."""
    return (x.float() * 255).round().clamp(0, 255).to(torch.uint8)
