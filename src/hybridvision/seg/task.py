"""Semantic segmentation as a task of the training engine: UperNet on a backbone, CE + 0.4 auxiliary CE, mIoU.

The engine brings resume, EMA, DDP, bf16, progress, CSV logs and the time budget; this module says how to build
the model, what a batch is, the loss and the evaluation (one confusion matrix, summed over processes).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import to_dict
from ..data.scenes import IGNORE
from ..engine import RunResult, Runtime, Task, init_source, run
from ..engine.distributed import Dist, sum_across
from ..engine.order import eval_batches
from .augment import SegAugment
from .config import InferConfig, SegTrainConfig
from .data import FolderSplit, SceneSplit, load_split
from .infer import predict
from .metrics import confusion_matrix, scores
from .model import SegModel, SegModelConfig, load_weights

log = logging.getLogger(__name__)

Split = SceneSplit | FolderSplit


def segmentor_name(backbone: str) -> str:
    """The name of the segmentation model on ``backbone`` (the run directory's, and the registered one)."""
    return f"upernet_{backbone}"


def model_config(cfg: SegTrainConfig, num_classes: int) -> SegModelConfig:
    """The segmentation model a training config describes."""
    head = cfg.head if cfg.aux_weight > 0 else dataclasses.replace(cfg.head, aux_channels=0)
    return SegModelConfig(
        backbone=cfg.model,
        backbone_kwargs=dict(cfg.model_kwargs),
        head=head,
        num_classes=num_classes,
        in_chans=cfg.data.channels,
        img_size=cfg.img_size,
        drop_rate=cfg.drop_rate,
        drop_path_rate=cfg.drop_path_rate,
    )


def seg_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy averaged over labelled pixels (0 when a batch has none; 255 = ignore)."""
    total = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="sum")
    return total / (target != IGNORE).sum().clamp_min(1)


class Segmentation(Task):
    """Semantic segmentation: UperNet (+ auxiliary FCN head) on any backbone, evaluated by mIoU (%)."""

    metric = "miou"
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
        model = SegModel(model_config(cfg, len(self.classes)))
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
        loss = seg_loss(logits, target)
        return loss if aux is None else loss + self.cfg.aux_weight * seg_loss(aux, target)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        rt, cfg = self.rt, self.cfg
        conf = confusion(model, self.eval_split, cfg.eval_batch_size, rt.dist, rt.autocast, self.augment, cfg.infer)
        return scores(conf)

    def run_info(self) -> dict[str, Any]:
        return {"segmentor": self.name, "classes": list(self.classes)}

    def model_config(self, model: nn.Module) -> dict[str, Any]:
        """``final/config.json``: the registered name and the full config, so it rebuilds with or without the zoo."""
        return {"model": self.name, "overrides": to_dict(model.config), "task": "segmentation", "classes": self.classes}


def train(cfg: SegTrainConfig) -> RunResult:
    """Train (or resume) one segmentation run; returns its directory and summary."""
    return run(Segmentation(cfg))


@torch.no_grad()
def confusion(
    model: nn.Module,
    split: Split,
    batch_size: int,
    job: Dist,
    autocast: Callable[[], Any],
    augment: SegAugment,
    infer: InferConfig,
    unreadable: set | None = None,
) -> Tensor:
    """The confusion matrix of ``model`` over all of ``split`` (this process's share, summed over processes)."""
    model.eval()
    k = len(split.classes)
    conf = torch.zeros(k, k, dtype=torch.int64)
    for images, masks, sizes, skipped in split.batches(eval_batches(len(split), batch_size, job.rank, job.world)):
        if unreadable is not None:
            unreadable.update(skipped)
        for x, mask in _same_size_groups(images, masks, sizes):
            with autocast():
                probs = predict(model, augment.normalize(x.to(job.device)), infer, k, augment.crop)
            conf += confusion_matrix(probs.argmax(1), mask.to(job.device), k)
    return sum_across(conf, job)


def _same_size_groups(images: Tensor, masks: Tensor, sizes: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """The whole batch when every image fills it (scenes), else each image cut to its own size."""
    if images.shape[0] == 0:
        return
    h, w = images.shape[-2:]
    if bool((sizes == torch.tensor([h, w])).all()):
        yield images, masks
        return
    for img, mask, (sh, sw) in zip(images, masks, sizes.tolist()):
        yield img[None, :, :sh, :sw], mask[None, :sh, :sw]  # (C, H, W) -> (1, C, h, w)
