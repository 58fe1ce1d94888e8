"""Resize, crop and flip of segmentation batches as one map per image, so masks stay aligned with their images.

mmseg's ``RandomResize -> RandomCrop(cat_max_ratio) -> RandomFlip``, batched: every image gets a size (fitted to
``scale``, times a random ratio), a crop corner in the resized image (re-drawn while one class covers more than
``cat_max_ratio`` of the crop) and a mirror flag. Together they map each crop pixel to a source pixel, so the image
(bilinear) and its mask (nearest) are resampled once, from the same coordinates. Crop pixels outside the resized
image are padding (mask 255). Random draws come from the micro-batch's CPU generator (exact on resume).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.scenes import IGNORE
from .config import SegAugConfig

HIST_SIDE = 32  # class shares of a candidate crop are counted on at most HIST_SIDE x HIST_SIDE of its pixels


def fit_factor(sizes: Tensor, scale: Sequence[int]) -> Tensor:
    """Per image, the factor that fits (h, w) into ``scale`` = (long, short) keeping its aspect (mmcv's rescale)."""
    long_side, short_side = scale
    if long_side == 0 or short_side == 0:
        return torch.ones(sizes.shape[0], device=sizes.device)
    hw = sizes.float()
    return torch.minimum(long_side / hw.amax(1), short_side / hw.amin(1))  # (B,)


# ---- Geometry: resize + crop + flip as one map from crop pixels to source pixels


@dataclass(frozen=True)
class Geometry:
    """Per image: the resized size, the crop offset in it, the mirror flag; for crops of side ``crop``."""

    sizes: Tensor  # (B, 2) source (h, w)
    resized: Tensor  # (B, 2) resized (h, w)
    offset: Tensor  # (B, 2) crop corner (y, x) in the resized image
    flip: Tensor  # (B,) bool
    crop: int

    def source_coords(self, step: int = 1) -> tuple[Tensor, Tensor, Tensor]:
        """Source pixel coordinates (y (B, n), x (B, n)) of every ``step``-th crop row/column, and which crop
        pixels lie inside the resized image (B, n, n)."""
        idx = torch.arange(0, self.crop, step, dtype=torch.float32, device=self.sizes.device)
        cols = torch.where(self.flip[:, None], self.crop - 1 - idx, idx)  # (B, n)
        y = self.offset[:, :1] + idx  # (B, n) rows of the resized image
        x = self.offset[:, 1:] + cols
        inside = (y < self.resized[:, :1])[:, :, None] & (x < self.resized[:, 1:])[:, None, :]  # (B, n, n)
        scale = self.resized.float() / self.sizes.float()  # (B, 2)
        src_y = ((y + 0.5) / scale[:, :1] - 0.5).clamp(min=0).minimum(self.sizes[:, :1] - 1.0)
        src_x = ((x + 0.5) / scale[:, 1:] - 0.5).clamp(min=0).minimum(self.sizes[:, 1:] - 1.0)
        return src_y, src_x, inside

    def grid(self, shape: Sequence[int], step: int = 1) -> tuple[Tensor, Tensor]:
        """``grid_sample`` coordinates into tensors of spatial ``shape`` (B, n, n, 2), and the inside map."""
        src_y, src_x, inside = self.source_coords(step)
        gy = (src_y + 0.5) / shape[0] * 2 - 1  # align_corners=False normalisation
        gx = (src_x + 0.5) / shape[1] * 2 - 1
        n = gy.shape[1]
        grid = torch.stack([gx[:, None, :].expand(-1, n, n), gy[:, :, None].expand(-1, n, n)], dim=-1)
        return grid, inside  # (B, n, n, 2) as (x, y)


def sample_mask(masks: Tensor, grid: Tensor, inside: Tensor) -> Tensor:
    """Nearest-neighbour labels at ``grid`` (B, n, n); 255 where the crop is padding."""
    m = F.grid_sample(masks[:, None].float(), grid, mode="nearest", align_corners=False)  # (B, 1, n, n)
    return m[:, 0].long().masked_fill(~inside, IGNORE)  # (B, 1, n, n) -> (B, n, n)


def draw_offsets(resized: Tensor, crop: int, tries: int, gen: torch.Generator) -> Tensor:
    """``tries`` crop corners per image, uniform over the valid range (mmseg: 0..max(size - crop, 0))."""
    room = (resized - crop).clamp(min=0) + 1  # (B, 2)
    u = torch.rand(resized.shape[0], tries, 2, generator=gen).to(resized.device)
    return (u * room[:, None, :]).floor().long()  # (B, T, 2)


def passes(labels: Tensor, num_classes: int, max_ratio: float) -> Tensor:
    """Per crop (B, n, n): at least two classes, none covering ``max_ratio`` or more (ignored pixels left out)."""
    flat = labels.flatten(1).masked_fill(labels.flatten(1) >= num_classes, num_classes)  # (B, n * n); 255 -> K
    counts = torch.zeros(flat.shape[0], num_classes + 1, device=flat.device)
    counts = counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float))[:, :num_classes]  # (B, K)
    return ((counts > 0).sum(1) > 1) & (counts.amax(1) < max_ratio * counts.sum(1))


def choose_crops(geo: Geometry, candidates: Tensor, masks: Tensor, num_classes: int, max_ratio: float) -> Tensor:
    """The first candidate corner whose crop passes the class-share rule, else the last one (as mmseg)."""
    b, tries = candidates.shape[:2]
    step = max(1, -(-geo.crop // HIST_SIDE))
    chosen = candidates[:, -1]
    found = torch.zeros(b, dtype=torch.bool, device=masks.device)
    for t in range(tries):
        trial = Geometry(geo.sizes, geo.resized, candidates[:, t], geo.flip, geo.crop)
        ok = passes(sample_mask(masks, *trial.grid(masks.shape[-2:], step)), num_classes, max_ratio) & ~found
        chosen = torch.where(ok[:, None], candidates[:, t], chosen)
        found |= ok
    return chosen  # (B, 2)


def draw_geometry(
    cfg: SegAugConfig, sizes: Tensor, masks: Tensor, crop: int, num_classes: int, gen: torch.Generator
) -> Geometry:
    """Random resize, crop (with the class-share rule) and flip for every image of a batch.

    The draws are made on the CPU (``gen``) and the geometry lives on the batch's device.
    """
    b, device = sizes.shape[0], sizes.device
    lo, hi = cfg.ratio
    ratio = (lo + (hi - lo) * torch.rand(b, generator=gen)).to(device)
    flip = (torch.rand(b, generator=gen) < cfg.hflip).to(device)
    factor = fit_factor(sizes, cfg.scale) * ratio
    resized = (sizes.float() * factor[:, None] + 0.5).floor().long().clamp(min=1)  # (B, 2)
    tries = cfg.crop_tries if cfg.cat_max_ratio < 1 else 1
    candidates = draw_offsets(resized, crop, tries, gen)
    geo = Geometry(sizes, resized, candidates[:, -1], flip, crop)
    if tries > 1:
        geo = Geometry(sizes, resized, choose_crops(geo, candidates, masks, num_classes, cfg.cat_max_ratio), flip, crop)
    return geo
