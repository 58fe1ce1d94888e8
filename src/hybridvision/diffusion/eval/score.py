"""Scoring a denoiser by its samples: conditional accuracy and FID under our classifier, and a sample grid.

Used by the training task's evaluations and by ``hybridvision diffusion eval``. Sample i has label i % classes
and starts from noise seeded by (seed, i), so a score depends on the weights and the sampling settings only,
not on batching or process count (with a deterministic sampler: DDIM, Euler, Heun).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data import fit_size, load_idx_split
from ...engine.distributed import Dist, sum_across
from ...engine.order import eval_batches
from ..config import DiffusionDataConfig
from ..pixels import to_uint8
from ..sampling.condition import Condition
from ..sampling.samplers import SampleConfig, initial_noise, sample
from ..sampling.schedule import NoiseConfig
from .fid import STATS_NAME, FeatureStats, FeatureSums, frechet_distance, load_stats
from .judge import ClassifierProbe, classifier_dir, probe_images, weights_digest

log = logging.getLogger(__name__)


def load_images(data: DiffusionDataConfig, split: str, size: int, subset: int = 0) -> tuple[Tensor, Tensor]:
    """uint8 images (N, C, size, size), enlarged ``data.upsample`` times and zero-padded to ``size``, and int64
    labels (N,) of an idx split."""
    images, labels = load_idx_split(data.root, split)
    if subset:
        images, labels = images[:subset], labels[:subset]
    if data.upsample > 1:  # multi-stage: the same framing at a higher resolution (28 -> 56, padded to 64)
        up = F.interpolate(images.float(), scale_factor=data.upsample, mode="bilinear", align_corners=False)
        images = up.round_().clamp_(0, 255).to(torch.uint8)  # (N, C, 28u, 28u)
    return fit_size(images, size).contiguous(), labels


# ---- Reference statistics


@dataclass(frozen=True)
class Reference:
    """FID reference statistics of real images, and the classifier's accuracy on them."""

    stats: FeatureStats
    top1: float  # % of the reference images the classifier gets right
    split: str


def real_reference(
    probe: ClassifierProbe, images: Tensor, labels: Tensor | None, batch_size: int, split: str
) -> Reference:
    """Statistics and accuracy of the classifier on real uint8 ``images`` (accuracy NaN without ``labels``)."""
    sums = FeatureSums(probe.dim)
    preds = probe_images(probe, images, batch_size, sums)
    top1 = 100.0 * float((preds == labels).float().mean()) if labels is not None else float("nan")
    return Reference(sums.stats(), top1, split)


def reference_for(
    probe: ClassifierProbe, classifier: str, stats_path: str, data: DiffusionDataConfig, size: int, batch_size: int
) -> Reference:
    """The stats file (``<classifier>/t10k_stats.safetensors`` by default) when it was made with these weights;
    else computed from ``data.eval_split`` now, from images of ``size`` (at most the size the probe judges at:
    larger samples are downsampled to it, so real images are read at it, not enlarged)."""
    path = Path(stats_path or classifier_dir(classifier) / STATS_NAME)
    if path.is_file():
        stats, meta = load_stats(path)
        if meta.get("classifier") not in (None, weights_digest(classifier)):
            raise ValueError(
                f"{path} was computed with other classifier weights than {classifier}: recompute it with "
                f"`python scripts/fid_reference_stats.py {classifier} --out {path}`"
            )
        return Reference(stats, float(meta.get("top1", "nan")), meta.get("split", "?"))
    log.info("no FID reference statistics at %s: computing them from %s", path, data.eval_split)
    if probe.size and size > probe.size:
        size, data = probe.size, dataclasses.replace(data, upsample=1)
    images, labels = load_images(data, data.eval_split, size, data.eval_subset)
    return real_reference(probe, images, labels, batch_size, data.eval_split)


# ---- Sampling and scoring


@dataclass
class SampleScores:
    cond_acc: float  # % of samples the classifier assigns to the requested class
    fid: float  # Fréchet distance of the classifier features (FID-FMNIST-clf(d)) to the reference
    n: int
    dim: int
    images: Tensor  # this process's samples, uint8 (for grids)
    labels: Tensor  # their requested classes
    per_class: tuple[float, ...] = ()  # conditional accuracy (%) of each requested class


def balanced_labels(n: int, num_classes: int) -> Tensor:
    return torch.arange(n) % num_classes


@torch.no_grad()
def score_samples(
    model: nn.Module,
    probe: ClassifierProbe,
    reference: Reference,
    *,
    n: int,
    num_classes: int,
    shape: tuple[int, int, int],
    cfg: SampleConfig,
    noise: NoiseConfig,
    seed: int,
    batch_size: int,
    dist: Dist,
    autocast: Callable[[], AbstractContextManager],
    condition: Callable[[list[int], Tensor], Condition] | None = None,
    decode: Callable[[Tensor], Tensor] | None = None,
    labels: Tensor | None = None,
) -> SampleScores:
    """Sample ``n`` class-balanced images with ``model`` (eval mode) and judge them with ``probe``.

    ``condition(indices, labels)`` says what samples ``indices`` of classes ``labels`` are conditioned on (a text
    model: their prompts; default: the labels themselves); ``decode`` maps sampled latents to [-1, 1] pixels.
    ``labels`` (n,) gives the class each sample asks for instead of the balanced ones; with ``num_classes`` 0 (a
    conditioning that names no class, such as free captions) only FID is measured and ``cond_acc`` is NaN.
    """
    if labels is None:  # with no classes, every sample's "class" is 0 and nothing is counted
        labels = balanced_labels(n, num_classes) if num_classes else torch.zeros(n, dtype=torch.long)
    sums, correct = FeatureSums(probe.dim), torch.zeros(num_classes, dtype=torch.float64)
    mine_x, mine_y = [], []
    for idx in eval_batches(n, batch_size, dist.rank, dist.world):
        y = labels[idx]
        start = initial_noise(idx, shape, seed).to(dist.device)
        gen = torch.Generator().manual_seed(seed * 7919 + idx[0])  # the DDPM sampler's own noise
        with autocast():
            x = sample(model, condition(idx, y) if condition else y, start, cfg, noise, generator=gen)
        images = to_uint8(decode(x) if decode else x).cpu()
        preds = probe_images(probe, images, batch_size, sums)
        if num_classes:
            correct += torch.bincount(y[preds == y], minlength=num_classes)  # (K,) right per requested class
        mine_x.append(images)
        mine_y.append(y)
    totals = sum_across(torch.cat([correct, sums.sums]).to(dist.device), dist).cpu()
    right, sums.sums = totals[:num_classes], totals[num_classes:]
    fid = frechet_distance(sums.stats(), reference.stats)
    images = torch.cat(mine_x) if mine_x else torch.empty(0, *shape, dtype=torch.uint8)
    mine = torch.cat(mine_y) if mine_y else torch.empty(0, dtype=torch.long)
    asked = torch.bincount(labels, minlength=num_classes).clamp_min(1)  # (K,)
    per_class = tuple(round(100.0 * float(r) / int(a), 2) for r, a in zip(right, asked))
    cond_acc = 100.0 * float(right.sum()) / n if num_classes else float("nan")
    return SampleScores(cond_acc, fid, n, probe.dim, images, mine, per_class)
