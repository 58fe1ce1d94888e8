"""Classification as a task of the training engine: model, uint8 batches, augmentation + loss, top-1/top-5."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..checkpoint import load_pretrained
from ..engine import RunResult, Runtime, Task, init_source, run
from ..engine.distributed import Dist, sum_across
from ..engine.order import eval_batches
from ..factory import create_model
from ..registry import get_entry
from .augment import Augment
from .config import TrainConfig
from .data import Split, load_split

log = logging.getLogger(__name__)


class Classification(Task):
    """Image classification: cross-entropy (label smoothing, MixUp/CutMix), evaluated by top-1 accuracy (%)."""

    metric = "top1"
    cfg: TrainConfig

    def setup(self, rt: Runtime) -> None:
        super().setup(rt)
        cfg = self.cfg
        get_entry(cfg.model)  # an unknown name fails before the data is read
        self.train_split = load_split(cfg.data, cfg.data.train_split, cfg.img_size, cfg.data.train_subset)
        classes = self.train_split.classes  # the evaluation split is indexed like the training split
        self.eval_split = load_split(cfg.data, cfg.data.eval_split, cfg.img_size, cfg.data.eval_subset, classes)
        num_classes = self.train_split.num_classes
        self.augment = Augment(cfg.aug, cfg.data.mean, cfg.data.std, num_classes, cfg.img_size)

    def build_model(self) -> nn.Module:
        cfg = self.cfg
        kwargs = dict(cfg.model_kwargs)
        kwargs.update(num_classes=self.train_split.num_classes, in_chans=cfg.data.channels, img_size=cfg.img_size)
        model = create_model(cfg.model, drop_path_rate=cfg.drop_path_rate, **kwargs)
        if cfg.init_from:
            source = init_source(cfg.init_from)
            load_pretrained(model, source, use_ema=cfg.init_ema)
            log.info("initialised %s from %s", cfg.model, source)
        if not cfg.channels_last:
            model.memory_format = torch.contiguous_format  # the layout the trunk's activations run in
        return model

    def train_size(self) -> int:
        return len(self.train_split)

    def batches(self, index_lists: Sequence[Sequence[int]]) -> Iterator[Any]:
        for images, labels, unreadable in self.train_split.batches(index_lists):
            self.unreadable.update(unreadable)
            yield images, labels

    def loss(self, model: nn.Module, batch: Any, gen: torch.Generator) -> Tensor:
        images, labels = batch
        if images.shape[0] == 0:  # every file of this micro-batch was unreadable: a step without a gradient
            return sum(p.sum() for p in model.parameters()) * 0.0
        x, target = self.augment(images, labels, gen)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.augment.loss(model(x), target)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        rt = self.rt
        b = self.cfg.eval_batch_size
        return evaluate(model, self.eval_split, b, rt.dist, rt.autocast, self.augment, self.unreadable)

    def run_info(self) -> dict[str, Any]:
        return {"classes": self.train_split.classes}

    def model_config(self, model: nn.Module) -> dict[str, Any]:
        return {**super().model_config(model), "classes": self.train_split.classes}


def train(cfg: TrainConfig) -> RunResult:
    """Train (or resume) one classification run; returns its directory and summary."""
    return run(Classification(cfg))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    batch_size: int,
    job: Dist,
    autocast: Any,
    augment: Augment,
    unreadable: set | None = None,
) -> dict:
    """Top-1 / top-5 accuracy (%) and mean cross-entropy of ``model`` over all of ``split`` (readable files).

    Unreadable files are left out and added to ``unreadable``.
    """
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64)  # correct@1, correct@5, loss sum, count
    for images, labels, skipped in split.batches(eval_batches(len(split), batch_size, job.rank, job.world)):
        if unreadable is not None:
            unreadable.update(skipped)
        if images.shape[0] == 0:
            continue
        x = augment.normalize(images.to(job.device)).contiguous(memory_format=torch.channels_last)
        labels = labels.to(job.device)
        with autocast():
            logits = model(x).float()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (B, 5)
        hit = top == labels[:, None]
        loss = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
        batch = torch.stack([hit[:, 0].sum(), hit.any(1).sum(), loss, torch.tensor(len(labels))])
        totals += batch.double().cpu()
    totals = sum_across(totals, job)
    n = max(float(totals[3]), 1.0)
    return {"top1": 100 * float(totals[0]) / n, "top5": 100 * float(totals[1]) / n, "loss": float(totals[2]) / n}
