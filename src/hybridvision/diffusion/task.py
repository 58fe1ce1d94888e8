"""Class-conditional diffusion as a task of the training engine (EMA, resume, DDP, bf16, logs come with it).

Training: DDPM epsilon-prediction on [-1, 1] pixels, uniform timesteps, optional offset noise, and labels
dropped to the null label at ``label_dropout`` for classifier-free guidance. The model is any registered
denoiser with the UNets' call (``ascan_unet_*`` or the ``diffusers_unet_*`` baseline).

Evaluation, for the model and its EMA: the validation loss (held-out images, fixed noise and timesteps: a
smooth curve) and, with ``eval_samples > 0``, ``eval_samples`` class-balanced samples from fixed noise judged
by our Fashion-MNIST classifier. The reported metric is the conditional accuracy ("cond_acc": the share of
samples the classifier assigns to the requested class): it is what the recipe targets, it is bounded and cheap
to estimate from a few hundred samples, while FID at such N is dominated by its d^2/2N bias (it is logged
beside it as "fid"). A sample grid (one row per class) goes to RUN/samples/ every ``grid_every`` evaluations.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import load_pretrained
from ..config import to_dict
from ..data import FASHION_MNIST_CLASSES
from ..engine import RunResult, Runtime, Task, init_source, run
from ..engine.distributed import sum_across
from ..engine.order import eval_batches
from ..hub import create_model
from ..registry import get_entry
from .config import DiffusionTrainConfig
from .evaluation import load_images, reference_for, score_samples
from .fid import from_uint8, load_classifier
from .grid import class_rows, make_grid, save_grid
from .schedule import TrainingNoise

log = logging.getLogger(__name__)


class ClassDiffusion(Task):
    """Class-conditional denoising diffusion, evaluated by conditional accuracy (%) under our classifier."""

    metric = "cond_acc"
    cfg: DiffusionTrainConfig

    def __init__(self, cfg: DiffusionTrainConfig) -> None:
        super().__init__(cfg)
        if not cfg.eval_samples:
            self.metric, self.higher_is_better = "val_loss", False
        self.classes = list(FASHION_MNIST_CLASSES)
        self._built: nn.Module | None = None  # the raw model (evaluate() tells it from the EMA)
        self._evaluations = {"model": 0, "ema": 0}

    def setup(self, rt: Runtime) -> None:
        super().setup(rt)
        cfg = self.cfg
        data = cfg.data
        self.images, self.labels = load_images(data, data.train_split, cfg.img_size, data.train_subset)
        val_n = min(cfg.val_images, data.eval_subset) if data.eval_subset else cfg.val_images
        self.val_images, self.val_labels = load_images(data, data.eval_split, cfg.img_size, val_n)
        self.noise = TrainingNoise(cfg.noise)
        self.probe = self.reference = None
        if cfg.eval_samples:  # fail before training when the judge is missing
            self.probe = load_classifier(cfg.classifier).to(rt.device)
            self.reference = reference_for(
                self.probe, cfg.classifier, cfg.fid_stats, data, cfg.img_size, cfg.eval_batch_size
            )

    @property
    def null_class(self) -> int:
        return len(self.classes)

    def build_model(self) -> nn.Module:
        cfg = self.cfg
        kwargs = {**cfg.model_kwargs, "in_chans": self.images.shape[1], "img_size": cfg.img_size}
        model = create_model(cfg.model, num_classes=len(self.classes), **kwargs)
        if cfg.init_from:
            source = init_source(cfg.init_from)
            load_pretrained(model, source, use_ema=cfg.init_ema)
            log.info("initialised %s from %s", cfg.model, source)
        self._built = model
        return model

    def train_size(self) -> int:
        return len(self.labels)

    def batches(self, index_lists: Sequence[Sequence[int]]) -> Iterator[Any]:
        for idx in index_lists:
            t = torch.as_tensor(idx, dtype=torch.long)
            yield self.images[t], self.labels[t]  # uint8 (B, C, H, W), (B,)

    # ---- Training

    def loss(self, model: nn.Module, batch: Any, gen: torch.Generator) -> Tensor:
        images, labels = batch
        x0 = from_uint8(images)  # (B, C, H, W) on [-1, 1]
        B = len(labels)
        if self.cfg.data.hflip:
            flip = (torch.rand(B, generator=gen) < self.cfg.data.hflip).to(x0.device)
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        drop = (torch.rand(B, generator=gen) < self.cfg.label_dropout).to(labels.device)
        labels = labels.masked_fill(drop, self.null_class)  # classifier-free guidance learns the null label
        return self._denoising_loss(model, x0, labels, gen)

    def _denoising_loss(self, model: nn.Module, x0: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
        noisy, noise, t = self.noise(x0, gen)
        if self.cfg.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        return F.mse_loss(model(noisy, t, class_labels=labels).float(), noise.float())

    # ---- Evaluation

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        model.eval()
        kind = "model" if model is self._built else "ema"
        row = {"val_loss": self._val_loss(model)}
        if self.cfg.eval_samples:
            cfg, rt = self.cfg, self.rt
            shape = (self.images.shape[1], cfg.img_size, cfg.img_size)
            scores = score_samples(
                model, self.probe, self.reference, n=cfg.eval_samples, num_classes=len(self.classes), shape=shape,
                cfg=cfg.sample, noise=cfg.noise, seed=cfg.eval_seed, batch_size=cfg.eval_batch_size,
                dist=rt.dist, autocast=rt.autocast,
            )  # fmt: skip
            row.update(cond_acc=scores.cond_acc, fid=scores.fid)
            self._grid(scores.images, scores.labels, kind)
        return row

    def _val_loss(self, model: nn.Module) -> float:
        """Mean denoising loss on the held-out images, with the same noise and timesteps at every evaluation."""
        rt, total = self.rt, torch.zeros(2, dtype=torch.float64)
        for i, idx in enumerate(eval_batches(len(self.val_labels), self.cfg.eval_batch_size, 0, 1)):
            if i % rt.dist.world != rt.dist.rank:
                continue
            gen = torch.Generator().manual_seed(self.cfg.eval_seed * 1_000_003 + i)
            x0 = from_uint8(self.val_images[idx].to(rt.device))
            with rt.autocast():
                loss = self._denoising_loss(model, x0, self.val_labels[idx].to(rt.device), gen)
            total += torch.tensor([float(loss) * len(idx), len(idx)], dtype=torch.float64)
        total = sum_across(total.to(rt.device), rt.dist).cpu()
        return float(total[0] / total[1].clamp_min(1))

    def _grid(self, images: Tensor, labels: Tensor, kind: str) -> None:
        count = self._evaluations[kind]
        self._evaluations[kind] += 1
        every, run_dir = self.cfg.grid_every, self._run_dir()
        if not every or count % every or not self.rt.dist.is_main or run_dir is None:
            return
        per_class = max(1, min(10, len(labels) // len(self.classes)))
        grid = make_grid(class_rows(images, labels, len(self.classes), per_class), nrow=per_class)
        folder = run_dir / "samples"
        done = len(list(folder.glob(f"eval*_{kind}.png"))) if folder.is_dir() else 0  # resumed runs go on counting
        save_grid(grid, folder / f"eval{done:03d}_{kind}.png")

    def _run_dir(self) -> Path | None:
        """The run directory, found as the engine names it (the engine does not hand it to tasks)."""
        cfg = self.cfg
        if cfg.resume and cfg.resume != "auto":
            return Path(cfg.resume)
        if cfg.run_name:
            return Path(cfg.out_dir) / cfg.run_name
        runs = sorted(p for p in Path(cfg.out_dir).glob(f"[0-9][0-9][0-9]-{self.name}") if p.is_dir())
        return runs[-1] if runs else None

    # ---- What the run records

    def run_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"classes": self.classes, "noise": to_dict(self.cfg.noise)}
        if self.reference is not None:
            info.update(classifier=self.cfg.classifier, classifier_real_top1=self.reference.top1)
            info.update(fid_dim=self.probe.dim, fid_samples=self.cfg.eval_samples, fid_reference=self.reference.split)
            info["sample"] = to_dict(self.cfg.sample)
        return info

    def model_config(self, model: nn.Module) -> dict[str, Any]:
        name = model.model_name
        base, mine = dataclasses.asdict(get_entry(name).config), dataclasses.asdict(model.config)
        overrides = {k: v for k, v in mine.items() if base.get(k) != v}
        return {"model": name, "overrides": overrides, "classes": self.classes, "noise": to_dict(self.cfg.noise)}


def train(cfg: DiffusionTrainConfig) -> RunResult:
    """Train (or resume) one class-conditional diffusion run; returns its directory and summary."""
    return run(ClassDiffusion(cfg))
