"""Batched augmentation on the training device: crops and flips, scene-like zoom and occlusion, RandAugment,
erasing, MixUp/CutMix.

Every random number is drawn from an explicit ``torch.Generator`` (on CPU, so a batch augments the same on any
device), which makes a batch's augmentation a pure function of its seed: resumed and multi-process runs repeat
it exactly. Images are float (B, C, H, W) on [0, 1] until ``normalize``; geometric ops of a batch run as one
``grid_sample`` with a per-sample affine matrix instead of per-image Python work.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import AugConfig
from .occlude import occlude, zoom
from .preprocess import Normalize, center_crop
from .randaugment import affine_sample, rand_augment

# ---- Geometry: crops and flips as one affine resample per batch


def rrc_theta(batch: int, scale: tuple[float, float], ratio: tuple[float, float], gen: torch.Generator) -> Tensor:
    """Random-resized-crop boxes as affine maps (B, 2, 3): area fraction in ``scale``, aspect in ``ratio``."""
    area = torch.empty(batch).uniform_(scale[0], scale[1], generator=gen)
    log_r = torch.empty(batch).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    r = log_r.exp()
    w = (area * r).sqrt().clamp(max=1.0)  # crop width / image width
    h = (area / r).sqrt().clamp(max=1.0)
    cx = (torch.rand(batch, generator=gen) * 2 - 1) * (1 - w)  # crop centre, normalised, box stays inside
    cy = (torch.rand(batch, generator=gen) * 2 - 1) * (1 - h)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    return theta


def shift_theta(batch: int, size: tuple[int, int], max_px: int, gen: torch.Generator) -> Tensor:
    """Whole-pixel translations of up to ``max_px`` (the classic pad-and-crop) as affine maps (B, 2, 3)."""
    d = torch.randint(-max_px, max_px + 1, (batch, 2), generator=gen).float()
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = d[:, 0] * 2 / size[1]
    theta[:, 1, 2] = d[:, 1] * 2 / size[0]
    return theta


def random_crop_flip(x: Tensor, cfg: AugConfig, gen: torch.Generator, size: int | None = None) -> Tensor:
    """The configured crop to ``size`` (default: the input's) with the horizontal flip folded into the resample.

    Random-resized-crop samples its box from the whole decoded image; the other crops work on its centre.
    """
    b = x.shape[0]
    size = size or x.shape[-1]
    flip = torch.rand(b, generator=gen) < cfg.hflip
    if cfg.crop == "rrc":  # the box lies inside the image: edge pixels, not fill, for the last half pixel
        theta = rrc_theta(b, cfg.crop_scale, cfg.crop_ratio, gen)
        theta[:, 0, 0] = torch.where(flip, -theta[:, 0, 0], theta[:, 0, 0])  # mirror x inside the crop
        return affine_sample(x, theta, cfg.fill, "bilinear", "border", out_size=(size, size))
    x = center_crop(x, size)
    if cfg.crop == "none":
        return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x) if cfg.hflip else x
    theta = shift_theta(b, x.shape[-2:], cfg.shift_px, gen)
    theta[:, 0, 0] = torch.where(flip, -theta[:, 0, 0], theta[:, 0, 0])
    return affine_sample(x, theta, cfg.fill, "nearest", "fill")


# ---- Erasing, mixing, targets


def random_erasing(
    x: Tensor, prob: float, scale: tuple[float, float], gen: torch.Generator, ratio: tuple[float, float] = (0.3, 3.3)
) -> Tensor:
    """Random erasing (Zhong et al., 2020): a box per chosen image filled with N(0, 1) noise (normalised space)."""
    b, c, h, w = x.shape
    chosen = torch.rand(b, generator=gen) < prob
    area = torch.empty(b).uniform_(scale[0], scale[1], generator=gen) * h * w
    r = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen).exp()
    eh = (area * r).sqrt().round().clamp(1, h)
    ew = (area / r).sqrt().round().clamp(1, w)
    top = (torch.rand(b, generator=gen) * (h - eh + 1)).floor()
    left = (torch.rand(b, generator=gen) * (w - ew + 1)).floor()
    noise = torch.randn(b, c, h, w, generator=gen).to(x.device, x.dtype)
    ys = torch.arange(h)[None, :, None]  # (1, H, 1)
    xs = torch.arange(w)[None, None, :]  # (1, 1, W)
    rows = (ys >= top[:, None, None]) & (ys < (top + eh)[:, None, None])  # (B, H, 1)
    cols = (xs >= left[:, None, None]) & (xs < (left + ew)[:, None, None])  # (B, 1, W)
    inside = rows & cols  # (B, H, W)
    mask = (inside & chosen[:, None, None])[:, None].to(x.device)  # (B, H, W) -> (B, 1, H, W)
    return torch.where(mask, noise, x)


def smooth_targets(labels: Tensor, num_classes: int, smoothing: float) -> Tensor:
    """One-hot targets with label smoothing: 1 - s + s/K on the label, s/K elsewhere (each row sums to 1)."""
    off = smoothing / num_classes
    out = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return out.scatter_(1, labels[:, None], 1.0 - smoothing + off)  # (B,) -> (B, K)


def mix_batch(x: Tensor, targets: Tensor, cfg: AugConfig, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """MixUp or CutMix of the batch with its reverse (timm's batch mode); targets mix by the pasted area."""
    seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
    rng = np.random.default_rng(seed)
    use_cutmix = cfg.cutmix_alpha > 0 and (cfg.mixup_alpha <= 0 or rng.random() < cfg.switch_prob)
    lam = float(rng.beta(*(2 * [cfg.cutmix_alpha if use_cutmix else cfg.mixup_alpha])))
    other = x.flip(0)  # pair image i with image B-1-i
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = other[:, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)  # the pasted area decides the target weight
    else:
        x = x * lam + other * (1.0 - lam)
    return x, targets * lam + targets.flip(0) * (1.0 - lam)


def scene_like(x: Tensor, cfg: AugConfig, gen: torch.Generator) -> Tensor:
    """Items as the scenes show them (``occlude``): zoomed and cut by the frame, then partly covered; off (no
    random draw at all) at the defaults, so other recipes' batches stay as they were."""
    if cfg.item_scale != (1.0, 1.0):
        x = zoom(x, cfg.item_scale, gen)
    if cfg.occlude_prob > 0:
        ink = cfg.occlude_ink / 255
        x, _ = occlude(x, cfg.occlude_prob, cfg.occlude_share, cfg.occlude_scale, ink, cfg.occlude_tries, gen)
    return x


# ---- The pipeline


class Augment:
    """uint8 batch -> (normalised float batch, targets): labels, or soft targets when mixing is on."""

    def __init__(
        self,
        cfg: AugConfig,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        num_classes: int,
        size: int | None = None,  # training size when images are decoded larger (data.load_size)
    ) -> None:
        self.cfg, self.num_classes, self.size = cfg, num_classes, size
        self.normalize = Normalize(mean, std, size)  # evaluation's input: centre crop, normalised
        self.mixing = cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0

    def __call__(self, images: Tensor, labels: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        x = images.float().div_(255.0)  # (B, C, H, W) uint8 -> float on [0, 1]
        x = random_crop_flip(x, cfg, gen, self.size)
        x = scene_like(x, cfg, gen)
        if cfg.randaug_n > 0:
            x = rand_augment(x, cfg.randaug_n, cfg.randaug_m, cfg.randaug_mstd, cfg.randaug_ops, cfg.fill, gen)
        x = self.normalize.standardize(x)
        if cfg.erase_prob > 0:
            x = random_erasing(x, cfg.erase_prob, cfg.erase_scale, gen)
        if self.mixing and float(torch.rand(1, generator=gen)) < cfg.mix_prob:
            soft = smooth_targets(labels, self.num_classes, cfg.label_smoothing)
            return mix_batch(x, soft, cfg, gen)
        return x, labels

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy against labels (with label smoothing) or soft targets (already smoothed)."""
        if targets.dtype == torch.long:
            return F.cross_entropy(logits.float(), targets, label_smoothing=self.cfg.label_smoothing)
        return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
