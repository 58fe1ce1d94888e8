"""COCO's own evaluation (pycocotools' ``COCOeval``) of detections: box and mask AP, AR and per-class AP.

Detections are COCO result dicts (``image_id``, ``category_id``, ``score``, ``bbox`` (x, y, w, h) and, for masks,
``segmentation`` as RLE). Ground truth is the annotation file's ``COCO`` index, crowd regions included (matched as
COCO matches them: ignored, never a miss). Numbers are percentages; -1 where COCO finds no ground truth (e.g. APm
and APl when every object is small, as in 64x64 scenes). A model with no detections at all scores 0.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .data import CocoSplit

# COCOeval.stats, in order: AP over IoU 0.5:0.95, AP50, AP75, AP small/medium/large, AR at 1/10/100 detections,
# AR small/medium/large.
STATS = ("ap", "ap50", "ap75", "aps", "apm", "apl", "ar1", "ar10", "ar100", "ars", "arm", "arl")
IOU_TYPES = {"box": "bbox", "mask": "segm"}


def results_index(gt: Any, detections: Sequence[dict]) -> Any:
    """The detections as a ``COCO`` index over ``gt``'s images (an empty one when there are none: pycocotools'
    ``loadRes([])`` raises)."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        if detections:
            return gt.loadRes(copy.deepcopy(list(detections)))  # loadRes writes into the dicts
        empty = COCO()
        empty.dataset = {"images": list(gt.dataset["images"]), "categories": copy.deepcopy(gt.dataset["categories"])}
        empty.dataset["annotations"] = []
        empty.createIndex()
        return empty


def coco_scores(gt: Any, detections: Sequence[dict], kind: str, classes: Sequence[str]) -> dict[str, Any]:
    """``{"ap": .., "ap50": .., ..., "per_class": {name: AP}}`` (%) of ``kind`` ("box" or "mask") over ``gt``'s
    images; ``classes`` names ``gt``'s categories in id order."""
    from pycocotools.cocoeval import COCOeval

    dt = results_index(gt, detections)
    ev = COCOeval(gt, dt, IOU_TYPES[kind])
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out = {name: _pct(v) for name, v in zip(STATS, ev.stats)}
    out["per_class"] = dict(zip(classes, per_class_ap(ev.eval["precision"])))
    return out


def per_class_ap(precision: np.ndarray) -> list[float]:
    """AP (%) of each category from ``COCOeval.eval["precision"]`` (IoU x recall x class x area x maxDets): all
    areas, the most detections; -1 for a category without ground truth."""
    p = precision[:, :, :, 0, -1]  # (T, R, K)
    out = []
    for k in range(p.shape[2]):
        valid = p[:, :, k][p[:, :, k] > -1]
        out.append(_pct(valid.mean()) if valid.size else -1.0)
    return out


def _pct(v: float) -> float:
    return float(v) * 100 if v >= 0 else -1.0


def score_detections(split: CocoSplit, detections: list[dict]) -> dict[str, dict[str, Any]]:
    """{"box": {...}, "mask": {...}}: COCOeval's numbers (%) over ``split``'s images, crowd regions included."""
    gt = split.coco
    if len(split.image_ids) < len(gt.imgs):  # a subset: evaluate on those images only
        gt = subset_index(gt, split.image_ids)
    names = list(split.classes[1:])
    box = coco_scores(gt, [{k: v for k, v in r.items() if k != "segmentation"} for r in detections], "box", names)
    return {"box": box, "mask": coco_scores(gt, detections, "mask", names)}


def subset_index(gt: Any, image_ids: Sequence[int]) -> Any:
    """A ``COCO`` index of ``gt`` restricted to ``image_ids``."""
    from pycocotools.coco import COCO

    keep = set(image_ids)
    sub = COCO()
    sub.dataset = {
        "images": [i for i in gt.dataset["images"] if i["id"] in keep],
        "annotations": [a for a in gt.dataset["annotations"] if a["image_id"] in keep],
        "categories": gt.dataset["categories"],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        sub.createIndex()
    return sub


def flat_scores(scores: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{"box_ap": .., "box_ap50": .., ..., "mask_ap": ..}`` without the per-class numbers (the engine's metrics)."""
    return {f"{kind}_{k}": v for kind, s in scores.items() for k, v in s.items() if k != "per_class"}
