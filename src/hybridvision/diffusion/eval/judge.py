"""The classifier as a judge: our own Fashion-MNIST classifier seen from [-1, 1] images.

It gives FID its features (``forward_head(pre_logits=True)``, the penultimate pooled features) and conditional
accuracy its verdicts (the logits), so evaluation downloads nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...checkpoint import EMA_WEIGHTS_NAME, WEIGHTS_NAME, CheckpointError
from ...data import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from ...factory import load_model
from ..pixels import from_uint8, to_uint8
from .fid import FeatureSums

DEFAULT_CLASSIFIER = "assets/fmnist_ascan_nano"
PRODUCE_HINT = (
    "train one with `hybridvision train --config configs/train/fmnist_ascan_nano_30min.yaml`, save its final "
    "weights with save_pretrained (RUN/final holds them), and point --classifier at that folder"
)


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
