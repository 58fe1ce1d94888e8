"""What every image meets before the classifier, in training and in evaluation alike: the centre crop to the
training size and the normalisation. (Augmentation, for training only, is ``augment``.)"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def center_crop(x: Tensor, size: int) -> Tensor:
    """The central ``size`` x ``size`` window (images decoded larger than the training size)."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]  # (B, C, size, size), a view


class Normalize:
    """uint8 (B, C, H, W) -> the model's input: centre crop to the training size, [0, 1], per-channel normalised."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], size: int | None = None) -> None:
        self.size = size  # training size when images are decoded larger (data.load_size); None: as they come
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)  # (C,) -> (1, C, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def standardize(self, x: Tensor) -> Tensor:
        """Float images on [0, 1] -> (x - mean) / std."""
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def __call__(self, images: Tensor) -> Tensor:
        return self.standardize(center_crop(images, self.size or images.shape[-1]).float().div_(255.0))
