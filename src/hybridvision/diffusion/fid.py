"""FID on our own classifier's features, and its conditional accuracy: evaluation that downloads nothing.

Standard FID needs InceptionV3 weights, a download. Here the extractor is a classifier we trained ourselves on
Fashion-MNIST (``ascan_nano``; ``forward_head(pre_logits=True)``: its penultimate, pooled features), so the
numbers are ours alone: report them as "FID-FMNIST-clf(d)" with the feature width d and the sample count N, and
compare only at equal N and d (FID's small-sample bias is about d^2 / 2N for isotropic features). The Fréchet
distance uses two float64 ``eigh`` (research note generation.md §5): Tr((S1 S2)^1/2) is the sum of the square
roots of the eigenvalues of the symmetric sqrt(S1) S2 sqrt(S1), so no scipy and no complex square root.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import EMA_WEIGHTS_NAME, WEIGHTS_NAME, CheckpointError
from ..data import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from ..fileio import save_tensors
from ..hub import load_model

DEFAULT_CLASSIFIER = "assets/fmnist_ascan_nano"
STATS_NAME = "t10k_stats.safetensors"
PRODUCE_HINT = (
    "train one with `hybridvision train --config configs/train/fmnist_ascan_nano_30min.yaml`, save its final "
    "weights with save_pretrained (RUN/final holds them), and point --classifier at that folder"
)


# ---- Feature statistics


@dataclass(frozen=True)
class FeatureStats:
    """Mean and (unbiased) covariance of N feature vectors, float64."""

    mu: Tensor  # (d,)
    sigma: Tensor  # (d, d)
    n: int

    @property
    def dim(self) -> int:
        return self.mu.numel()


class FeatureSums:
    """Running sums (count, sum, sum of outer products) in float64: add batches, add across processes."""

    def __init__(self, dim: int) -> None:
        self.sums = torch.zeros(1 + dim + dim * dim, dtype=torch.float64)  # [n | sum f | sum f f^T]
        self.dim = dim

    def update(self, feats: Tensor) -> None:
        f = feats.detach().double().cpu()  # (B, d)
        d = self.dim
        self.sums[0] += len(f)
        self.sums[1 : 1 + d] += f.sum(0)
        self.sums[1 + d :] += (f.T @ f).flatten()  # (d, d) -> (d*d,)

    def stats(self) -> FeatureStats:
        d, n = self.dim, int(self.sums[0])
        if n < 2:
            raise ValueError(f"FID needs at least 2 feature vectors, got {n}")
        mu = self.sums[1 : 1 + d] / n
        outer = self.sums[1 + d :].view(d, d)  # (d*d,) -> (d, d)
        sigma = (outer - n * torch.outer(mu, mu)) / (n - 1)
        return FeatureStats(mu, sigma, n)


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), in float64."""
    if a.dim != b.dim:
        raise ValueError(f"feature widths differ ({a.dim} vs {b.dim}): were the stats made with another classifier?")
    s1, s2 = a.sigma.double(), b.sigma.double()
    w, v = torch.linalg.eigh(s1)
    root1 = (v * w.clamp_min(0).sqrt()) @ v.T  # sqrt(S1)
    trace_sqrt = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0).sqrt().sum()
    mean_term = (a.mu.double() - b.mu.double()).square().sum()
    return float(mean_term + s1.trace() + s2.trace() - 2 * trace_sqrt)


def save_stats(stats: FeatureStats, path: str | Path, **metadata: str) -> None:
    meta = {"n": str(stats.n), **metadata}
    save_tensors({"mu": stats.mu, "sigma": stats.sigma}, path, metadata=meta)


def load_stats(path: str | Path) -> tuple[FeatureStats, dict[str, str]]:
    """Stats and their metadata (classifier digest, split, N)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no FID reference statistics at {path}: compute them with "
            f"`python scripts/fid_reference_stats.py CLASSIFIER_DIR --out {path}`"
        )
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        return FeatureStats(f.get_tensor("mu"), f.get_tensor("sigma"), int(meta.get("n", 0))), meta


# ---- The classifier as a judge


class ClassifierProbe(nn.Module):
    """A trained classifier seen from [-1, 1] images: (penultimate features, logits).

    Images are quantised to 8 bits first (as a saved PNG would be; real images are 8-bit), area-downsampled to
    ``size`` when larger (a 64x64 sample is judged at the classifier's 32x32), then normalised the way the
    classifier was trained.
    """

    def __init__(
        self,
        model: nn.Module,
        mean: tuple[float, ...] = FASHION_MNIST_MEAN,  # what our classifiers train with
        std: tuple[float, ...] = FASHION_MNIST_STD,
        size: int = 0,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.size = size  # 0: images are judged at the size they come in
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    @property
    def dim(self) -> int:
        """Width of ``forward_head(pre_logits=True)``: the head's embedding width where it has one."""
        return int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)

    @torch.no_grad()
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x01 = to_uint8(x).float() / 255.0  # (B, C, H, W) on [0, 1]
        if self.size and x01.shape[-1] > self.size:
            x01 = F.interpolate(x01, size=(self.size, self.size), mode="area")  # (B, C, size, size)
        fmap = self.model.forward_features((x01 - self.mean) / self.std)
        return self.model.forward_head(fmap, pre_logits=True).float(), self.model.forward_head(fmap).float()


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] floats -> uint8 pixels (rounded, clipped)."""
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def from_uint8(images: Tensor) -> Tensor:
    """uint8 pixels -> [-1, 1] floats."""
    return images.float() / 127.5 - 1.0


def load_classifier(path: str | Path = DEFAULT_CLASSIFIER, size: int = 0) -> ClassifierProbe:
    """The classifier saved at ``path`` (a ``save_pretrained`` folder, EMA weights when present) as a probe that
    judges images at ``size`` (0 = as given)."""
    path = Path(path)
    if not (path / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"no classifier at {path} (it needs {WEIGHTS_NAME} and config.json): {PRODUCE_HINT}")
    return ClassifierProbe(load_model(path), size=size)


def weights_digest(path: str | Path) -> str:
    """A short digest of the weights ``load_classifier`` uses (EMA when saved): stats of other weights are refused."""
    path = Path(path)
    h = hashlib.sha256()
    with open(path / EMA_WEIGHTS_NAME if (path / EMA_WEIGHTS_NAME).is_file() else path / WEIGHTS_NAME, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@torch.no_grad()
def probe_images(probe: ClassifierProbe, images: Tensor, batch_size: int, sums: FeatureSums | None = None) -> Tensor:
    """Run uint8 ``images`` (N, C, H, W) through ``probe`` in batches; returns the predicted classes (N,)."""
    device = probe.mean.device
    preds = []
    for i in range(0, len(images), batch_size):
        feats, logits = probe(from_uint8(images[i : i + batch_size].to(device)))
        if sums is not None:
            sums.update(feats)
        preds.append(logits.argmax(1).cpu())
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
