"""Running a segmentation model on whole images: whole-image or sliding-window inference, multi-scale + flip TTA.

As mmseg's test modes: an image is fitted into ``scale`` (keeping its aspect), run whole (padded to the model's
stride) or in overlapping windows (scores averaged where they overlap), and its scores resized back to the
image's own size. With several ``ratios`` and/or ``flip``, softmax scores of every variant are averaged.
``labels`` turns the scores into classes: the argmax, or with ``region_vote`` one item class per ink-connected
region of the image (``region.vote``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import InferConfig
from .heads import resize
from .region import ink_regions, vote


@dataclass(frozen=True)
class SegInput:
    """How images become the model's input: per-channel normalisation (of [0, 1] pixels), and the crop the model
    was trained at (the default sliding window)."""

    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, crop: int, mean: Sequence[float], std: Sequence[float]) -> SegInput:
        return cls(int(crop), tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 or 0..255 float (B, C, H, W) -> normalised float."""
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1) * 255  # (C,) -> (1, C, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1) * 255
        return (images.float() - mean) / std


def pad_to(x: Tensor, height: int, width: int) -> Tensor:
    """Zero-pad (B, C, h, w) at the bottom and right to at least (height, width); 0 is the mean once normalised."""
    return F.pad(x, (0, max(width - x.shape[-1], 0), 0, max(height - x.shape[-2], 0)))  # (B, C, H', W')


def whole(model: nn.Module, x: Tensor, stride: int) -> Tensor:
    """Scores of the whole image, padded to a multiple of ``stride``: (B, C, h, w) -> (B, K, h, w)."""
    h, w = x.shape[-2:]
    logits = model(pad_to(x, math.ceil(h / stride) * stride, math.ceil(w / stride) * stride))
    return logits[..., :h, :w].float()


def window_starts(size: int, crop: int, step: int) -> list[int]:
    """Window starts along one side (mmseg's slide_inference: the last window ends at the border)."""
    count = max(size - crop + step - 1, 0) // step + 1
    return sorted({max(min(i * step, size - crop), 0) for i in range(count)})


def slide(model: nn.Module, x: Tensor, crop: int, step: int, stride: int, num_classes: int) -> Tensor:
    """Scores averaged over ``crop`` x ``crop`` windows every ``step`` pixels: (B, C, h, w) -> (B, K, h, w)."""
    h, w = x.shape[-2:]
    x = pad_to(x, crop, crop)  # an image smaller than a window is padded to one
    out = torch.zeros(x.shape[0], num_classes, *x.shape[-2:], device=x.device)
    count = torch.zeros(1, 1, *x.shape[-2:], device=x.device)
    for top in window_starts(x.shape[-2], crop, step):
        for left in window_starts(x.shape[-1], crop, step):
            window = x[..., top : top + crop, left : left + crop]
            out[..., top : top + crop, left : left + crop] += whole(model, window, stride)
            count[..., top : top + crop, left : left + crop] += 1
    return (out / count)[..., :h, :w]


def fit_size(h: int, w: int, scale: tuple[int, int], ratio: float) -> tuple[int, int]:
    """(h, w) fitted into ``scale`` = (long, short) keeping its aspect, times ``ratio`` (mmcv's rescale)."""
    factor = min(scale[0] / max(h, w), scale[1] / min(h, w)) if min(scale) > 0 else 1.0
    return max(1, int(h * factor * ratio + 0.5)), max(1, int(w * factor * ratio + 0.5))


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, cfg: InferConfig, num_classes: int, crop: int) -> Tensor:
    """Class probabilities (B, K, h, w) of normalised images ``x`` (B, C, h, w), at their own size.

    ``crop`` is the default sliding window (the training crop) when ``cfg.crop`` is 0.
    """
    stride = getattr(model, "stride", 32)
    window = cfg.crop or crop
    step = cfg.stride or max(1, window * 2 // 3)
    h, w = x.shape[-2:]
    probs = torch.zeros(x.shape[0], num_classes, h, w, device=x.device)
    flips = (False, True) if cfg.flip else (False,)
    for ratio in cfg.ratios:
        scaled = resize(x, fit_size(h, w, cfg.scale, ratio))
        for flip in flips:
            inp = scaled.flip(-1) if flip else scaled
            if cfg.mode == "slide":
                logits = slide(model, inp, window, step, stride, num_classes)
            else:
                logits = whole(model, inp, stride)
            logits = logits.flip(-1) if flip else logits
            probs += resize(logits, (h, w)).softmax(1)
    return probs / (len(cfg.ratios) * len(flips))


def labels(probs: Tensor, images: Tensor, cfg: InferConfig, threshold: float | None) -> Tensor:
    """Classes (B, h, w) from ``predict``'s probabilities (B, K, h, w): the argmax, or with ``cfg.region_vote``
    the vote over the ink regions of ``images`` (B, C, h, w), uint8 or 0..255, ink above ``threshold``."""
    if cfg.region_vote == "off" or threshold is None:
        return probs.argmax(1)
    regions = ink_regions(images.to(probs.device), threshold)
    return vote(probs, regions, cfg.region_vote, minority=cfg.vote_minority)
