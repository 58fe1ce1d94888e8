"""Training batches to model inputs: mask-aligned resize/crop/flip (``geometry``), photometric distortion of the
image only, normalisation; and the normalisation alone for evaluation.

Photometric distortion is mmseg's ``PhotoMetricDistortion``, batched: brightness, then contrast either before or
after the colour steps (random order), HSV saturation and hue on colour images; each step with probability 0.5
and a clip to 0..255 after it, as OpenCV's uint8 arithmetic does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import SegAugConfig
from .geometry import draw_geometry, sample_mask
from .infer import SegInput


def rgb_to_hsv(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(B, 3, H, W) RGB on [0, 1] -> hue in [0, 6) sextants, saturation, value: each (B, H, W)."""
    value, top = x.max(1)
    delta = value - x.min(1).values
    sat = delta / value.clamp_min(1e-8)
    r, g, b = x.unbind(1)
    d = delta.clamp_min(1e-8)
    hue = torch.where(top == 0, ((g - b) / d) % 6, torch.where(top == 1, (b - r) / d + 2, (r - g) / d + 4))
    return torch.where(delta > 0, hue, 0.0), sat, value


def hsv_to_rgb(hue: Tensor, sat: Tensor, value: Tensor) -> Tensor:
    """Hue in sextants, saturation, value (B, H, W) -> (B, 3, H, W) RGB on [0, 1]."""
    n = torch.tensor([5.0, 3.0, 1.0], device=hue.device).view(1, 3, 1, 1)  # (3,) -> (1, 3, 1, 1): r, g, b
    k = (n + hue[:, None]) % 6  # (B, 1, H, W) -> (B, 3, H, W)
    return value[:, None] - (value * sat)[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)


def _per_image(values: Tensor) -> Tensor:
    return values.view(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)


def photometric(x: Tensor, cfg: SegAugConfig, gen: torch.Generator) -> Tensor:
    """mmseg's PhotoMetricDistortion on float images (B, C, H, W) on 0..255."""
    u = torch.rand(x.shape[0], 8, generator=gen).to(x.device)  # every draw of the batch at once
    on = u[:, :4] < 0.5  # brightness, contrast, saturation, hue applied?
    delta = torch.where(on[:, 0], (2 * u[:, 4] - 1) * cfg.brightness, 0.0)
    x = (x + _per_image(delta)).clamp(0, 255)
    lo, hi = cfg.contrast
    alpha = torch.where(on[:, 1], lo + (hi - lo) * u[:, 5], 1.0)
    contrast_first = u[:, 7] < 0.5  # mmseg's mode: contrast before (1) or after (0) the colour steps
    x = (x * _per_image(torch.where(contrast_first, alpha, 1.0))).clamp(0, 255)
    if x.shape[1] == 3:
        hue, sat, value = rgb_to_hsv(x / 255)
        lo, hi = cfg.saturation
        sat = sat * torch.where(on[:, 2], lo + (hi - lo) * u[:, 6], 1.0).view(-1, 1, 1)  # (B,) -> (B, 1, 1)
        shift = torch.where(on[:, 3], torch.randint(-int(cfg.hue), int(cfg.hue) + 1, (x.shape[0],), generator=gen), 0)
        hue = (hue + shift.to(x.device).view(-1, 1, 1) / 30) % 6  # OpenCV hue: 30 units per sextant
        x = hsv_to_rgb(hue, sat.clamp(0, 1), value) * 255
    return (x * _per_image(torch.where(contrast_first, 1.0, alpha))).clamp(0, 255)


class SegAugment:
    """uint8 batches (images, masks, valid sizes) -> normalised crops and long targets, on their device.

    Args:
        cfg: the augmentation settings.
        crop: side of the training crops.
        mean, std: per-channel normalisation on [0, 1] pixels.
        num_classes: classes of the masks (255 = ignore), for the crop's class-share rule.
    """

    def __init__(
        self, cfg: SegAugConfig, crop: int, mean: Sequence[float], std: Sequence[float], num_classes: int
    ) -> None:
        self.cfg, self.crop, self.num_classes = cfg, crop, num_classes
        self.input = SegInput.of(crop, mean, std)  # what evaluation gives the model
        self.normalize = self.input.normalize

    def __call__(self, images: Tensor, masks: Tensor, sizes: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Crops (B, C, crop, crop) normalised, targets (B, crop, crop) long with 255 = ignore."""
        geo = draw_geometry(self.cfg, sizes, masks, self.crop, self.num_classes, gen)
        grid, inside = geo.grid(images.shape[-2:])
        x = F.grid_sample(images.float(), grid, mode="bilinear", align_corners=False)  # (B, C, crop, crop)
        if self.cfg.photometric:
            x = photometric(x, self.cfg, gen)
        x = self.normalize(x) * inside[:, None]  # padding: 0, the mean after normalisation
        return x, sample_mask(masks, grid, inside)
