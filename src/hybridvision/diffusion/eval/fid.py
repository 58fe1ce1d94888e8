"""FID on our own classifier's features (``judge.py``): evaluation that downloads nothing.

Standard FID needs InceptionV3 weights, a download. Here the extractor is a classifier we trained ourselves on
Fashion-MNIST (``ascan_nano``; ``forward_head(pre_logits=True)``: its penultimate, pooled features), so the
numbers are ours alone: report them as "FID-FMNIST-clf(d)" with the feature width d and the sample count N, and
compare only at equal N and d (FID's small-sample bias is about d^2 / 2N for isotropic features). The Fréchet
distance uses two float64 ``eigh`` (research note generation.md §5): Tr((S1 S2)^1/2) is the sum of the square
roots of the eigenvalues of the symmetric sqrt(S1) S2 sqrt(S1), so no scipy and no complex square root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ...fileio import save_tensors

STATS_NAME = "t10k_stats.safetensors"


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
