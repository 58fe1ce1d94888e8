"""Segmentation losses: cross-entropy, and two surrogates of the IoU added to it (Lovász-softmax, soft Dice), and a
region-consistency term.

Cross-entropy is dominated by the classes with the most pixels (in the scenes, 70% are background); mIoU weighs
every class alike. The surrogates work on softmax probabilities, per class, over the classes present in the
batch's labels (``background=False`` leaves class 0 out of them), and ignore pixels labelled 255:

- Lovász-softmax (Berman, Rannen Triki and Blaschko, CVPR 2018): for class c, the pixel errors
  e_i = |[y_i = c] - p_i(c)| sorted in decreasing order, dotted with the gradient of the Jaccard loss along that
  order: g_j = J(first j) - J(first j - 1), where J(first j) = 1 - |P ∩ F_j| / |P ∪ F_j| counts the j largest
  errors as mistakes (P = the class's pixels). It is the Lovász extension of 1 - IoU: on hard (one-hot)
  predictions it equals 1 - IoU of the class exactly, and it is piecewise linear in the errors. Here the order
  is resolved on a grid of levels rather than by a sort (``lovasz_softmax``: 10 sorts of a batch's 130k pixels
  cost several times the cross-entropy on a CPU).
- soft Dice: 1 - (2 Σ p(c)[y = c] + eps) / (Σ p(c) + Σ [y = c] + eps), 0 for a perfect prediction.

The region term, the training-time analogue of ``region.vote``, pulls each item pixel's distribution over the
item classes toward the mean of its region: the KL divergence from the (fixed) region mean to the pixel's
distribution. At training time the labels are known, so a region is the pixels of one item class in one image
(ink regions would join touching items of different classes and pull them toward one class).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.scenes import IGNORE
from .config import SegLossConfig
from .region import region_mean

DICE_EPS = 1.0  # smoothing of the soft Dice ratio (in pixels)
LOVASZ_BINS = 1024  # Lovász-softmax orders errors on this many levels (its value is within 1 / LOVASZ_BINS)


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy averaged over labelled pixels (0 when a batch has none; 255 = ignore)."""
    total = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="sum")
    return total / (target != IGNORE).sum().clamp_min(1)


def _present(target: Tensor, k: int, background: bool) -> Tensor:
    """The classes (long indices) the labels (B, H, W) hold (255 = ignore); class 0 only if ``background``."""
    present = torch.bincount(target.flatten(), minlength=IGNORE + 1)[:k] > 0
    present[0] &= background
    return present.nonzero()[:, 0]


def _per_class(probs: Tensor, target: Tensor, classes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For the C ``classes``: their probabilities (B, C, H * W), whether each pixel is theirs (bool, same shape)
    and which pixels are labelled (B, 1, H * W)."""
    b, _, h, w = probs.shape
    flat = target.view(b, 1, h * w)  # (B, H, W) -> (B, 1, H * W)
    p = probs.flatten(2).index_select(1, classes)  # (B, K, H, W) -> (B, C, H * W)
    return p, flat == classes.view(1, -1, 1), flat != IGNORE


def lovasz_softmax(probs: Tensor, target: Tensor, background: bool = False) -> Tensor:
    """Lovász-softmax of probabilities (B, K, H, W) against labels (B, H, W), averaged over the present classes
    (0 when none is present).

    The errors are ordered on a grid of ``LOVASZ_BINS`` levels instead of sorted: bin by bin from the largest
    errors down, the Jaccard loss counts the bin's pixels as mistakes, and the increment it takes is shared by
    the bin's pixels in proportion to their errors (their mean error times the increment: within a bin the
    errors are near-ties, whose order moves the value by less than a bin's width, so the value lies within
    1 / LOVASZ_BINS of the sorted one, and exactly on it for hard predictions). No sort: a few bincounts.
    """
    classes = _present(target, probs.shape[1], background)
    if classes.numel() == 0:
        return probs.sum() * 0.0
    c, m = classes.numel(), LOVASZ_BINS
    p, fg, labelled = _per_class(probs, target, classes)
    errors = (fg.float() - p).abs() * labelled  # (B, C, H * W); 0 where ignored
    level = m - 1 - (errors.detach() * m).long().clamp(max=m - 1)  # 0: the largest errors
    offset = m * torch.arange(c, device=probs.device).view(1, c, 1)  # each class its own M bins
    bins = torch.where(labelled, level + offset, c * m)  # ignored pixels: one extra bin, dropped
    pixels = torch.bincount(bins.flatten(), minlength=c * m + 1)[:-1].view(c, m).float()  # (C * M,) -> (C, M)
    hits = torch.bincount(bins[fg], minlength=c * m + 1)[:-1].view(c, m).float()  # the class's own pixels per bin
    error_sum = errors.new_zeros(c * m + 1).scatter_add(0, bins.flatten(), errors.flatten())[:-1].view(c, m)
    total = hits.sum(1, keepdim=True)  # |P| per class
    inter = total - hits.cumsum(1)  # |P| less the class's pixels among the errors down to this bin
    union = total + (pixels - hits).cumsum(1)  # |P| plus the other pixels among them
    jaccard = 1 - inter / union  # (C, M)
    step = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
    return (step * error_sum / pixels.clamp(min=1)).sum(1).mean()


def soft_dice(probs: Tensor, target: Tensor, background: bool = False) -> Tensor:
    """1 - soft Dice of probabilities (B, K, H, W) against labels (B, H, W), averaged over the present classes."""
    classes = _present(target, probs.shape[1], background)
    if classes.numel() == 0:
        return probs.sum() * 0.0
    p, fg, labelled = _per_class(probs, target, classes)
    p = p * labelled
    fg = fg.float()
    dice = (2 * (p * fg).sum((0, 2)) + DICE_EPS) / (p.sum((0, 2)) + fg.sum((0, 2)) + DICE_EPS)  # (C,)
    return (1 - dice).mean()


def region_consistency(logits: Tensor, target: Tensor) -> Tensor:
    """KL(region mean || pixel) of the item-class distributions, averaged over the item pixels (class > 0).

    A region is the pixels of one item class in one image; the mean is held fixed. (Connectedness adds nothing
    at training time: two apart items of one class share their target, so one mean serves both.)
    """
    items = (target != IGNORE) & (target > 0)
    if not bool(items.any()):
        return logits.sum() * 0.0
    log_p = logits[:, 1:].float().log_softmax(1)  # (B, K - 1, H, W): over the item classes
    with torch.no_grad():
        mean = region_mean(log_p.exp(), torch.where(items, target, 0))  # regions: the item classes, per image
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
