"""Segmentation metrics from one confusion matrix: IoU per class, mIoU, pixel accuracy (aAcc), mean accuracy.

Definitions are mmseg's: IoU_c = TP / (TP + FP + FN); a class absent from both labels and predictions has no IoU
(NaN) and is left out of the mean; aAcc = correct labelled pixels / labelled pixels; mAcc = mean over classes of
TP / labelled pixels of the class. Pixels labelled 255 are ignored. Percentages, as the papers print them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..data.scenes import IGNORE


class LabelError(ValueError):
    """A mask holds a label that is neither a class nor the ignore index."""


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE) -> Tensor:
    """(K, K) int64 counts, rows = true class, columns = predicted class, of every labelled pixel."""
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and int(t.max()) >= num_classes:
        raise LabelError(
            f"a mask holds label {int(t.max())}, outside the {num_classes} classes (0..{num_classes - 1}, "
            f"{ignore_index} = ignore); fix the annotation or the class count (data.num_classes)"
        )
    counts = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes).cpu()  # (K * K,) -> (K, K)


def iou_per_class(conf: Tensor) -> list[float]:
    """IoU (%) of each class; NaN for a class that is neither labelled nor predicted."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    return [100 * float(i / u) if u > 0 else math.nan for i, u in zip(tp, union)]


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def scores(conf: Tensor) -> dict[str, float]:
    """{"miou", "aacc", "macc"} in % from a confusion matrix."""
    conf = conf.double()
    labelled = conf.sum(1)
    acc = [100 * float(tp / n) if n > 0 else math.nan for tp, n in zip(conf.diag(), labelled)]
    total = float(labelled.sum())
    aacc = 100 * float(conf.diag().sum()) / total if total else math.nan
    return {"miou": _nanmean(iou_per_class(conf)), "aacc": aacc, "macc": _nanmean(acc)}


def binned_accuracy(values: Tensor, right: Tensor, valid: Tensor, edges: tuple[float, ...]) -> list[dict]:
    """Accuracy (%) of the ``valid`` items in each bin [lo, hi) of ``values`` (the last bin includes its top):
    one row {"bin": [lo, hi], "items", "right"} per bin, "right" None for an empty bin."""
    rows = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        top = values <= hi if i == len(edges) - 2 else values < hi
        sel = valid & (values >= lo) & top
        acc = 100 * right[sel].float().mean().item() if sel.any() else None
        rows.append({"bin": [lo, hi], "items": int(sel.sum()), "right": acc})
    return rows
