"""Detection and instance segmentation as a task of the training engine: Mask R-CNN on a backbone, COCO's AP.

The engine brings resume, EMA, DDP, bf16, progress, CSV logs and the time budget; this module says how to build
the model, what a batch is (images and torchvision's target dicts), the loss (the sum of torchvision's five:
RPN objectness and box, RoI class, box and mask) and the evaluation (COCOeval's box and mask AP over the
detections of every process).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import to_dict
from ..engine import RunResult, Runtime, Task, init_source, run
from ..engine.distributed import Dist, barrier
from ..engine.order import eval_batches
from ..vision_ops import set_roi_align
from .config import DetDataConfig, DetTrainConfig
from .data import CocoSplit, load_split
from .metrics import coco_scores
from .model import DetModelConfig, build_detector, load_weights
from .scenes import write_scenes

log = logging.getLogger(__name__)


def detector_name(backbone: str) -> str:
    """The name of the detector on ``backbone`` (the run directory's)."""
    return f"maskrcnn_{backbone}"


def model_config(cfg: DetTrainConfig, num_classes: int) -> DetModelConfig:
    """The detector a training config describes (``num_classes`` counts the background)."""
    return DetModelConfig(
        backbone=cfg.model,
        backbone_kwargs=dict(cfg.model_kwargs),
        num_classes=num_classes,
        in_chans=cfg.data.channels,
        img_size=cfg.img_size,
        drop_path_rate=cfg.drop_path_rate,
        mean=cfg.data.mean,
        std=cfg.data.std,
        detector=cfg.detector,
    )


def prepare_data(cfg: DetDataConfig, d: Dist | None = None) -> None:
    """Write the scenes' COCO folder when the config asks for scenes (the main process writes, the others wait)."""
    if cfg.dataset != "fmnist_scenes":
        return
    if d is None or d.is_main:
        write_scenes(cfg.root, cfg.scenes)
    if d is not None:
        barrier(d)


def load_splits(cfg: DetDataConfig, train: bool = True) -> tuple[CocoSplit | None, CocoSplit]:
    """(training split or None, evaluation split) of the configured COCO folder."""
    train_split = load_split(cfg.root, cfg.train_split, cfg.channels, cfg.train_subset) if train else None
    eval_split = load_split(cfg.root, cfg.eval_split, cfg.channels, cfg.eval_subset)
    if train_split is not None and train_split.category_ids != eval_split.category_ids:
        raise ValueError(f"{cfg.train_split} and {cfg.eval_split} have different categories; they must share them")
    return train_split, eval_split


def hflip(images: list[Tensor], targets: list[dict[str, Tensor]], gen: torch.Generator) -> None:
    """Mirror each image (and its boxes and masks) with probability 0.5, in place."""
    for i, flip in enumerate((torch.rand(len(images), generator=gen) < 0.5).tolist()):
        if not flip:
            continue
        w = images[i].shape[-1]
        images[i] = images[i].flip(-1)
        t = dict(targets[i])
        t["boxes"] = torch.stack([w - t["boxes"][:, 2], t["boxes"][:, 1], w - t["boxes"][:, 0], t["boxes"][:, 3]], 1)
        t["masks"] = t["masks"].flip(-1)
        targets[i] = t


class Detection(Task):
    """Instance segmentation: Mask R-CNN (torchvision's) on any backbone, evaluated by COCO box AP (%)."""

    metric = "box_ap"
    cfg: DetTrainConfig

    @property
    def name(self) -> str:
        return detector_name(self.cfg.model)

    def setup(self, rt: Runtime) -> None:
        super().setup(rt)
        set_roi_align(self.cfg.roi_align)
        prepare_data(self.cfg.data, rt.dist)
        self.train_split, self.eval_split = load_splits(self.cfg.data)
        if self.train_split.dropped:
            log.warning("%d degenerate boxes left out of training", self.train_split.dropped)

    def build_model(self) -> nn.Module:
        cfg = self.cfg
        model = build_detector(model_config(cfg, len(self.train_split.classes)))
        if cfg.init_from:
            source = init_source(cfg.init_from)
            what = load_weights(model, source, use_ema=cfg.init_ema)
            log.info("initialised the %s of %s from %s", what, self.name, source)
        return model

    def train_size(self) -> int:
        return len(self.train_split)

    def batches(self, index_lists: Sequence[Sequence[int]]) -> Iterator[Any]:
        for images, targets, unreadable in self.train_split.batches(index_lists):
            self.unreadable.update(unreadable)
            yield images, targets

    def batch_samples(self, batch: Any) -> int:
        return len(batch[0])

    def loss(self, model: nn.Module, batch: Any, gen: torch.Generator) -> Tensor:
        images, targets = list(batch[0]), list(batch[1])
        if not images:  # every file of this micro-batch was unreadable: a step without a gradient
            return sum(p.sum() for p in model.parameters()) * 0.0
        hflip(images, targets, gen)
        losses = model([x.float() / 255 for x in images], targets)
        return sum(losses.values())

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        rt, cfg = self.rt, self.cfg
        found = detect(model, self.eval_split, cfg.eval_batch_size, rt.dist, rt.autocast, self.unreadable)
        return flat_scores(score_detections(self.eval_split, found))

    def run_info(self) -> dict[str, Any]:
        return {"detector": self.name, "classes": list(self.train_split.classes), "kernels": kernels_used()}

    def model_config(self, model: nn.Module) -> dict[str, Any]:
        """``final/config.json``: the detector's full config and the categories, so it rebuilds and maps back."""
        split = self.train_split
        return {
            "model": self.name,
            "overrides": to_dict(model.config),
            "task": "detection",
            "classes": list(split.classes),
            "category_ids": split.category_ids,
        }


def kernels_used() -> dict[str, str]:
    from ..vision_ops import kernels

    return kernels()


def train(cfg: DetTrainConfig) -> RunResult:
    """Train (or resume) one detection run; returns its directory and summary."""
    return run(Detection(cfg))


@torch.no_grad()
def detect(
    model: nn.Module,
    split: CocoSplit,
    batch_size: int,
    d: Dist,
    autocast: Callable[[], Any],
    unreadable: set | None = None,
) -> list[dict]:
    """COCO result dicts (boxes and masks) of ``model`` over all of ``split``, gathered from every process."""
    model.eval()
    found: list[dict] = []
    lists = eval_batches(len(split), batch_size, d.rank, d.world)
    for images, targets, skipped in split.batches(lists, with_targets=False):
        if unreadable is not None:
            unreadable.update(skipped)
        if not images:
            continue
        with autocast():
            outputs = model([x.to(d.device).float() / 255 for x in images])
        for target, out in zip(targets, outputs):
            found += to_results(out, target["image_id"], split.category_ids)
    return gather(found, d)


def to_results(output: dict[str, Tensor], image_id: int, category_ids: Sequence[int]) -> list[dict]:
    """One image's detections as COCO results: (x, y, w, h) boxes, masks (probability > 0.5) as RLE."""
    from pycocotools import mask as mask_utils

    boxes = output["boxes"].float().cpu()
    boxes[:, 2:] -= boxes[:, :2]  # (x1, y1, x2, y2) -> (x, y, w, h)
    masks = (output["masks"][:, 0] > 0.5).cpu().numpy() if "masks" in output else None  # (N, 1, H, W) -> (N, H, W)
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))) if masks is not None else []
    results = []
    for k, (box, label, score) in enumerate(zip(boxes.tolist(), output["labels"].tolist(), output["scores"].tolist())):
        r = {"image_id": image_id, "category_id": category_ids[label - 1], "bbox": box, "score": score}
        if masks is not None:
            r["segmentation"] = {"size": rles[k]["size"], "counts": rles[k]["counts"].decode("ascii")}
        results.append(r)
    return results


def gather(items: list, d: Dist) -> list:
    """Every process's list, concatenated (this process's alone when there is one)."""
    if d.world <= 1:
        return items
    parts: list = [None] * d.world
    torch.distributed.all_gather_object(parts, items)
    return [x for part in parts for x in part]


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
    import contextlib
    import io

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
