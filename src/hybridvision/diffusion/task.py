"""Class-conditional diffusion as a task of the training engine (EMA, resume, DDP, bf16, logs come with it).

Training: DDPM epsilon-prediction on [-1, 1] pixels (or on a VAE's latents, ``latent.vae``), uniform timesteps,
optional offset noise, and labels dropped to the null label at ``label_dropout`` for classifier-free guidance.
The model is any registered denoiser with the UNets' call (``ascan_unet_*`` or the ``diffusers_unet_*``
baseline). ``init_from`` a run of another resolution carries over every weight whose shape fits (multi-stage
training, ``stages.carry_over``). Text conditioning subclasses this task (``text_task.TextDiffusion``, and
``captions.CaptionDiffusion`` for captioned images); ``training.train`` picks one of the three.

Evaluation, for the model and its EMA: the validation loss (held-out images, fixed noise and timesteps: a
smooth curve) and, with ``eval_samples > 0``, ``eval_samples`` class-balanced samples from fixed noise judged
by our Fashion-MNIST classifier. The reported metric is the conditional accuracy ("cond_acc": the share of
samples the classifier assigns to the requested class): it is what the recipe targets, it is bounded and cheap
to estimate from a few hundred samples, while FID at such N is dominated by its d^2/2N bias (it is logged
beside it as "fid"). A sample grid (one row per class) goes to RUN/samples/ every ``grid_every`` evaluations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import to_dict
from ..data import FASHION_MNIST_CLASSES
from ..engine import Runtime, Task, init_source
from ..engine.distributed import sum_across
from ..engine.order import eval_batches
from ..factory import config_overrides, create_model
from .carry_over import carry_over
from .config import DiffusionTrainConfig, cache_dir
from .eval.judge import load_classifier
from .eval.score import Reference, load_images, reference_for, score_samples
from .grid import class_rows, make_grid, save_grid
from .latent import Vae, decode_latents, encode_images
from .pixels import from_uint8
from .sampling.condition import Condition
from .sampling.schedule import TrainingNoise

log = logging.getLogger(__name__)


class ClassDiffusion(Task):
    """Class-conditional denoising diffusion, evaluated by conditional accuracy (%) under our classifier."""

    metric = "cond_acc"
    kind = "diffusion"
    cfg: DiffusionTrainConfig

    def __init__(self, cfg: DiffusionTrainConfig) -> None:
        super().__init__(cfg)
        if not cfg.eval_samples:
            self.metric, self.higher_is_better = "val_loss", False
        self.classes = list(FASHION_MNIST_CLASSES)
        self._built: nn.Module | None = None  # the raw model (evaluate() tells it from the EMA)
        self._evaluations = {"model": 0, "ema": 0}
        self.carried: dict[str, Any] = {}

    def setup(self, rt: Runtime) -> None:
        super().setup(rt)
        cfg = self.cfg
        images, self.labels, val_images, self.val_labels = self.load_data()
        self.channels = images.shape[1]  # of the pixels (a VAE's latents have their own)
        self.vae = Vae(cfg.latent.vae, rt.device) if cfg.latent.vae else None
        self.probe = self.reference = None
        if cfg.eval_samples:  # fail before training when the judge is missing
            self.probe = load_classifier(cfg.classifier, cfg.judge_size).to(rt.device)
            self.reference = self.fid_reference(val_images)
        self.images, self.val_images = self._to_space(images), self._to_space(val_images)
        self.noise = TrainingNoise(cfg.noise)

    def load_data(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """uint8 training images (N, C, S, S) and their labels (N,), then the validation images and labels."""
        cfg, data = self.cfg, self.cfg.data
        images, labels = load_images(data, data.train_split, cfg.img_size, data.train_subset)
        val_n = min(cfg.val_images, data.eval_subset) if data.eval_subset else cfg.val_images
        return *(images, labels), *load_images(data, data.eval_split, cfg.img_size, val_n)

    def fid_reference(self, val_images: Tensor) -> Reference:
        """The real images' FID statistics: the classifier's stats file, else computed from the eval split."""
        cfg = self.cfg
        return reference_for(self.probe, cfg.classifier, cfg.fid_stats, cfg.data, cfg.img_size, cfg.eval_batch_size)

    # ---- Data space: pixels, or a VAE's latents

    def _to_space(self, images: Tensor) -> Tensor:
        """uint8 pixels as they are, or float latents (encoded once, cached)."""
        if self.vae is None:
            return images
        return encode_images(self.vae, images, cache_dir(self.cfg, "latent"), self.cfg.latent.batch_size)

    @staticmethod
    def x0(images: Tensor) -> Tensor:
        """What is noised: uint8 pixels on [-1, 1], or latents as they are."""
        return from_uint8(images) if images.dtype == torch.uint8 else images.float()

    def decode(self, x: Tensor) -> Tensor:
        """Samples -> [-1, 1] pixels (the VAE's decoder in latent space)."""
        return x if self.vae is None else decode_latents(self.vae, x, self.channels, self.cfg.latent.batch_size)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # (C, H, W) of a pixel image or of a latent

    # ---- Model

    @property
    def null_class(self) -> int:
        return len(self.classes)

    def model_kwargs(self) -> dict[str, Any]:
        return {"num_classes": len(self.classes)}

    def build_model(self) -> nn.Module:
        cfg = self.cfg
        size = {"in_chans": self.images.shape[1], "img_size": self.images.shape[-1]}
        model = create_model(cfg.model, **{**cfg.model_kwargs, **size, **self.model_kwargs()})
        if cfg.init_from:
            self.carried = carry_over(model, init_source(cfg.init_from), use_ema=cfg.init_ema)
        self._built = model
        return model

    def train_size(self) -> int:
        return len(self.labels)

    def batches(self, index_lists: Sequence[Sequence[int]]) -> Iterator[Any]:
        for idx in index_lists:
            t = torch.as_tensor(idx, dtype=torch.long)
            yield self.images[t], self.labels[t]  # (B, C, H, W) uint8 pixels or float latents, (B,)

    # ---- Training

    def loss(self, model: nn.Module, batch: Any, gen: torch.Generator) -> Tensor:
        images, labels = batch
        x0 = self.x0(images)  # (B, C, H, W): [-1, 1] pixels or latents
        B = len(labels)
        if self.cfg.data.hflip:
            flip = (torch.rand(B, generator=gen) < self.cfg.data.hflip).to(x0.device)
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        drop = (torch.rand(B, generator=gen) < self.cfg.label_dropout).to(labels.device)
        return self._denoising_loss(model, x0, self.train_inputs(labels, drop, gen), gen)

    def train_inputs(self, labels: Tensor, drop: Tensor, gen: torch.Generator) -> dict[str, Tensor]:
        """The conditioning of a training batch; ``drop`` marks the samples that get the null condition."""
        return {"class_labels": labels.masked_fill(drop, self.null_class)}  # CFG learns the null label

    def val_inputs(self, idx: Sequence[int]) -> dict[str, Tensor]:
        """The conditioning of validation images ``idx`` (fixed: the same at every evaluation)."""
        return {"class_labels": self.val_labels[list(idx)].to(self.rt.device)}

    def sample_condition(self, idx: list[int], labels: Tensor) -> Condition | Tensor:
        """What evaluation samples ``idx`` of classes ``labels`` are conditioned on."""
        return labels

    def sample_labels(self, n: int) -> Tensor | None:
        """The class each of ``n`` evaluation samples asks for (None: balanced over the classes)."""
        return None

    def _denoising_loss(self, model: nn.Module, x0: Tensor, inputs: dict[str, Tensor], gen: torch.Generator) -> Tensor:
        noisy, noise, t = self.noise(x0, gen)
        if self.cfg.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        return F.mse_loss(model(noisy, t, **inputs, return_dict=False)[0].float(), noise.float())

    # ---- Evaluation

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        model.eval()
        kind = "model" if model is self._built else "ema"
        row = {"val_loss": self._val_loss(model)}
        if self.reference is not None:  # eval_samples > 0 and a judge for these images
            cfg, rt = self.cfg, self.rt
            scores = score_samples(
                model, self.probe, self.reference, n=cfg.eval_samples, num_classes=len(self.classes),
                labels=self.sample_labels(cfg.eval_samples),
                shape=self.sample_shape, cfg=cfg.sample, noise=cfg.noise, seed=cfg.eval_seed,
                batch_size=cfg.eval_batch_size, dist=rt.dist, autocast=rt.autocast,
                condition=self.sample_condition, decode=self.decode if self.vae is not None else None,
            )  # fmt: skip
            if self.classes:  # the share of samples showing their class: where the data has classes
                row["cond_acc"] = scores.cond_acc
            row["fid"] = scores.fid
            self._grid(scores.images, scores.labels, kind)
        return row

    def _val_loss(self, model: nn.Module) -> float:
        """Mean denoising loss on the held-out images, with the same noise and timesteps at every evaluation."""
        rt, total = self.rt, torch.zeros(2, dtype=torch.float64)
        for i, idx in enumerate(eval_batches(len(self.val_labels), self.cfg.eval_batch_size, 0, 1)):
            if i % rt.dist.world != rt.dist.rank:
                continue
            gen = torch.Generator().manual_seed(self.cfg.eval_seed * 1_000_003 + i)
            x0 = self.x0(self.val_images[idx].to(rt.device))
            with rt.autocast():
                loss = self._denoising_loss(model, x0, self.val_inputs(idx), gen)
            total += torch.tensor([float(loss) * len(idx), len(idx)], dtype=torch.float64)
        total = sum_across(total.to(rt.device), rt.dist).cpu()
        return float(total[0] / total[1].clamp_min(1))

    def _grid(self, images: Tensor, labels: Tensor, kind: str) -> None:
        count = self._evaluations[kind]
        self._evaluations[kind] += 1
        every, run_dir = self.cfg.grid_every, self.rt.run_dir  # None outside the engine: no grids
        if not every or count % every or not self.rt.dist.is_main or run_dir is None:
            return
        if self.classes:  # one row per class
            per_class = max(1, min(10, len(labels) // len(self.classes)))
            grid = make_grid(class_rows(images, labels, len(self.classes), per_class), nrow=per_class)
        else:  # conditions that name no class (free captions): the first samples, near-square
            grid = make_grid(images[:100])
        folder = run_dir / "samples"
        done = len(list(folder.glob(f"eval*_{kind}.png"))) if folder.is_dir() else 0  # resumed runs go on counting
        save_grid(grid, folder / f"eval{done:03d}_{kind}.png")

    # ---- What the run records

    def run_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"classes": self.classes, "noise": to_dict(self.cfg.noise), **self.space_info()}
        if self.carried:
            info["init_from"] = self.carried
        if self.reference is not None:
            info.update(classifier=self.cfg.classifier, classifier_real_top1=self.reference.top1)
            info.update(fid_dim=self.probe.dim, fid_samples=self.cfg.eval_samples, fid_reference=self.reference.split)
            info["sample"] = to_dict(self.cfg.sample)
        return info

    def space_info(self) -> dict[str, Any]:
        """How samples become pixels: recorded with the weights, so that `generate` can decode them."""
        if self.vae is None:
            return {}
        return {"latent": {"vae": str(self.vae.path), "channels": self.channels, "factor": self.vae.factor}}

    def model_config(self, model: nn.Module) -> dict[str, Any]:
        name = model.model_name
        saved = {"model": name, "overrides": config_overrides(name, model.config), "classes": self.classes}
        saved["noise"] = to_dict(self.cfg.noise)
        return saved | self.space_info()
