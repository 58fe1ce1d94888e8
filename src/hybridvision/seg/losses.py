"""Segmentation losses: cross-entropy, and two surrogates of the IoU added to it (Lovász-softmax, soft Dice), and a
region-consistency term.

Cross-entropy is dominated by the classes with the most pixels (in the scenes, 70% are background); mIoU weighs
every class alike. The surrogates work on softmax probabilities, per class, over the classes present in the
batch's labels (``background=False`` leaves class 0 out of them), and ignore pixels labelled 255:

- Lovász-softmax (Berman, Rannen Triki and Blaschko, CVPR 2018): for class c, the pixel errors
  e_i = |[y_i = c] - p_i(c)| sorted in decreasing order, dotted with the gradient of the Jaccard loss along that
  order: g_j = J(first j) - J(first j - 1), where J(first j) = 1 - |P ∩ F_j| / |P ∪ F_j| counts the j largest
  errors as mistakes (P = the class's pixels). It is the Lovász extension of 1 - IoU: on hard (one-hot)
  predictions it equals 1 - IoU of the class exactly, and it is piecewise linear in the errors.
- soft Dice: 1 - (2 Σ p(c)[y = c] + eps) / (Σ p(c) + Σ [y = c] + eps), 0 for a perfect prediction.

The region term pulls each item pixel's distribution over the item classes toward the mean of its region (the
target's connected same-class pieces: at training time the labels are known, and ink regions would join touching
items of different classes): the KL divergence from the (fixed) region mean to the pixel's distribution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.scenes import IGNORE
from .config import SegLossConfig
from .region import components, region_mean

DICE_EPS = 1.0  # smoothing of the soft Dice ratio (in pixels)


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy averaged over labelled pixels (0 when a batch has none; 255 = ignore)."""
    total = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="sum")
    return total / (target != IGNORE).sum().clamp_min(1)


def _flat(probs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Labelled pixels only: probs (B, K, H, W) -> (N, K), target (B, H, W) -> (N,)."""
    k = probs.shape[1]
    flat = probs.permute(0, 2, 3, 1).reshape(-1, k)  # (B, K, H, W) -> (B * H * W, K)
    t = target.reshape(-1)
    keep = t != IGNORE
    return flat[keep], t[keep]


def _present(target: Tensor, k: int, background: bool) -> Tensor:
    """The classes (long indices) that the labelled pixels ``target`` (N,) hold; class 0 only if ``background``."""
    present = torch.bincount(target, minlength=k) > 0
    present[0] &= background
    return present.nonzero()[:, 0]


def lovasz_grad(fg_sorted: Tensor) -> Tensor:
    """The Jaccard loss's increments along an order: (C, N) 0/1 in order of decreasing error -> (C, N)."""
    total = fg_sorted.sum(1, keepdim=True)  # |P| per class
    inter = total - fg_sorted.cumsum(1)  # |P| less the class's pixels among the first j
    union = total + (1 - fg_sorted).cumsum(1)  # |P| plus the other pixels among the first j
    jaccard = 1 - inter / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)


def lovasz_softmax(probs: Tensor, target: Tensor, background: bool = False) -> Tensor:
    """Lovász-softmax of probabilities (B, K, H, W) against labels (B, H, W), averaged over the present classes
    (0 when none is present)."""
    p, t = _flat(probs, target)
    classes = _present(t, probs.shape[1], background)
    if classes.numel() == 0:
        return probs.sum() * 0.0
    fg = (t[None] == classes[:, None]).float()  # (C, N)
    errors = (fg - p[:, classes].T).abs()  # (N, C) -> (C, N)
    errors, order = errors.sort(1, descending=True)
    return (errors * lovasz_grad(fg.gather(1, order))).sum(1).mean()


def soft_dice(probs: Tensor, target: Tensor, background: bool = False) -> Tensor:
    """1 - soft Dice of probabilities (B, K, H, W) against labels (B, H, W), averaged over the present classes."""
    p, t = _flat(probs, target)
    classes = _present(t, probs.shape[1], background)
    if classes.numel() == 0:
        return probs.sum() * 0.0
    fg = (t[:, None] == classes[None]).float()  # (N, C)
    pc = p[:, classes]
    dice = (2 * (pc * fg).sum(0) + DICE_EPS) / (pc.sum(0) + fg.sum(0) + DICE_EPS)
    return (1 - dice).mean()


def region_consistency(logits: Tensor, target: Tensor) -> Tensor:
    """KL(region mean || pixel) of the item-class distributions, averaged over the item pixels (class > 0).

    Regions are the 8-connected pieces of the target sharing one item class; the mean is held fixed.
    """
    items = (target != IGNORE) & (target > 0)
    if not bool(items.any()):
        return logits.sum() * 0.0
    log_p = logits[:, 1:].float().log_softmax(1)  # (B, K - 1, H, W): over the item classes
    with torch.no_grad():
        mean = region_mean(log_p.exp(), components(target, items))
    kl = (mean * (mean.clamp_min(1e-12).log() - log_p)).sum(1)  # (B, H, W)
    return kl[items].mean()


def seg_loss(logits: Tensor, target: Tensor, cfg: SegLossConfig | None = None) -> Tensor:
    """The configured loss of ``logits`` (B, K, H, W) against ``target`` (B, H, W), 255 = ignore."""
    cfg = cfg or SegLossConfig()
    loss = cross_entropy(logits, target)
    if cfg.kind != "ce" and cfg.weight > 0:
        surrogate = lovasz_softmax if cfg.kind == "ce_lovasz" else soft_dice
        loss = loss + cfg.weight * surrogate(logits.float().softmax(1), target, cfg.background)
    if cfg.region_weight > 0:
        loss = loss + cfg.region_weight * region_consistency(logits, target)
    return loss
