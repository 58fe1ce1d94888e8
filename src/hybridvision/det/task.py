"""Detection and instance segmentation as a task of the training engine: Mask R-CNN on a backbone, COCO's AP.

The engine brings resume, EMA, DDP, bf16, progress, CSV logs and the time budget; this module says how to build
the model, what a batch is (images and torchvision's target dicts), the loss (the sum of torchvision's five:
RPN objectness and box, RoI class, box and mask) and the evaluation (COCOeval's box and mask AP over the
detections of every process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..config import to_dict
from ..engine import RunResult, Runtime, Task, init_source, run
from ..vision_ops import kernels, set_roi_align
from .config import DetTrainConfig, detection_model, detector_name
from .evaluate import TASK, detect, load_splits, prepare_data
from .metrics import flat_scores, score_detections
from .model import DetModel, load_weights

log = logging.getLogger(__name__)


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
    kind = TASK
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
        model = DetModel(detection_model(cfg, len(self.train_split.classes)))
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
        return {"detector": self.name, "classes": list(self.train_split.classes), "kernels": kernels()}

    def model_config(self, model: nn.Module) -> dict[str, Any]:
        """The registered name and the full detector config (it rebuilds with or without the zoo: backbone, image
        sizes, anchors, input channels, normalisation), the class names and their COCO category ids."""
        split = self.train_split
        info = {"model": self.name, "overrides": to_dict(model.config), "classes": list(split.classes)}
        return info | {"category_ids": list(split.category_ids)}


def train(cfg: DetTrainConfig) -> RunResult:
    """Train (or resume) one detection run; returns its directory and summary."""
    return run(Detection(cfg))
