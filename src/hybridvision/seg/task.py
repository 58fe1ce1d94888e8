"""Semantic segmentation as a task of the training engine: UperNet on a backbone, the configured loss (``losses``)
+ 0.4 auxiliary CE, mIoU.

The engine brings resume, EMA, DDP, bf16, progress, CSV logs and the time budget; this module says how to build
the model, what a batch is, the loss and the evaluation (one confusion matrix, summed over processes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..config import to_dict
from ..engine import RunResult, Runtime, Task, init_source, run
from .augment import SegAugment
from .config import SegTrainConfig, ink_threshold, segmentation_model, segmentor_name
from .data import load_split
from .evaluate import TASK, confusion
from .losses import cross_entropy, seg_loss
from .metrics import scores
from .model import SegModel, load_weights

log = logging.getLogger(__name__)


class Segmentation(Task):
    """Semantic segmentation: UperNet or Semantic FPN (+ auxiliary FCN head) on any backbone, evaluated by mIoU (%)."""

    metric = "miou"
    kind = TASK
    cfg: SegTrainConfig

    @property
    def name(self) -> str:
        return segmentor_name(self.cfg.model)

    def setup(self, rt: Runtime) -> None:
        super().setup(rt)
        cfg = self.cfg
        self.train_split = load_split(cfg.data, train=True)
        self.eval_split = load_split(cfg.data, train=False)
        self.classes = self.train_split.classes
        self.augment = SegAugment(cfg.aug, cfg.img_size, cfg.data.mean, cfg.data.std, len(self.classes))

    def build_model(self) -> nn.Module:
        cfg = self.cfg
        model = SegModel(segmentation_model(cfg, len(self.classes)))
        if cfg.init_from:
            source = init_source(cfg.init_from)
            what = load_weights(model, source, use_ema=cfg.init_ema)
            log.info("initialised the %s of %s from %s", what, self.name, source)
        if not cfg.channels_last:
            model.memory_format = torch.contiguous_format
        return model

    def train_size(self) -> int:
        return len(self.train_split)

    def batches(self, index_lists: Sequence[Sequence[int]]) -> Iterator[Any]:
        for images, masks, sizes, unreadable in self.train_split.batches(index_lists):
            self.unreadable.update(unreadable)
            yield images, masks, sizes

    def loss(self, model: nn.Module, batch: Any, gen: torch.Generator) -> Tensor:
        images, masks, sizes = batch
        if images.shape[0] == 0:  # every file of this micro-batch was unreadable: a step without a gradient
            return sum(p.sum() for p in model.parameters()) * 0.0
        x, target = self.augment(images, masks, sizes, gen)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits, aux = model(x, with_aux=True)
        loss = seg_loss(logits, target, self.cfg.loss)
        return loss if aux is None else loss + self.cfg.aux_weight * cross_entropy(aux, target)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        rt, cfg, seg_input = self.rt, self.cfg, self.augment.input
        ink = ink_threshold(cfg.data, cfg.infer)
        split, batch = self.eval_split, cfg.eval_batch_size
        conf = confusion(model, split, batch, rt.dist, rt.autocast, seg_input, cfg.infer, ink=ink)
        return scores(conf)

    def run_info(self) -> dict[str, Any]:
        return {"segmentor": self.name, "classes": list(self.classes)}

    def model_config(self, model: nn.Module) -> dict[str, Any]:
        """The registered name and the full config (it rebuilds with or without the zoo), the class names and the
        normalisation of the pixels."""
        data = self.cfg.data
        info = {"model": self.name, "overrides": to_dict(model.config), "classes": list(self.classes)}
        return info | {"mean": list(data.mean), "std": list(data.std)}


def train(cfg: SegTrainConfig) -> RunResult:
    """Train (or resume) one segmentation run; returns its directory and summary."""
    return run(Segmentation(cfg))
