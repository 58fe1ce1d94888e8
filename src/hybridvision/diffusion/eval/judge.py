"""The classifier as a judge: our own Fashion-MNIST classifier seen from [-1, 1] images.

It gives FID its features (``forward_head(pre_logits=True)``, the penultimate pooled features) and conditional
accuracy its verdicts (the logits), so evaluation downloads nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...checkpoint import CONFIG_NAME, EMA_WEIGHTS_NAME, WEIGHTS_NAME, CheckpointError
from ...data import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from ...env import repository_root
from ...factory import load_model
from ...models.contract import Backbone
from ..pixels import from_uint8, to_uint8
from .fid import FeatureSums

DEFAULT_CLASSIFIER = "assets/fmnist_ascan_nano"  # shipped in the repository; found from any working directory
PRODUCE_HINT = (
    f"--classifier takes a classifier saved with save_pretrained: the shipped {DEFAULT_CLASSIFIER} of a source "
    "checkout (pass its full path when hybridvision is installed elsewhere), or a classification run's final/ "
    "(`hybridvision train --config configs/train/fmnist_ascan_nano_30min.yaml` makes one)"
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
    path = classifier_dir(path)
    if not (path / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"no classifier at {path} (it needs {WEIGHTS_NAME} and config.json): {PRODUCE_HINT}")
    saved = _saved_config(path)
    other = "a segmentation model" if saved.get("task") == "segmentation" else "a diffusion model"
    if saved.get("task") == "segmentation" or "noise" in saved:  # what seg and diffusion runs save in final/
        raise CheckpointError(f"{path} holds {other} ({saved.get('model')}), not a classifier: {PRODUCE_HINT}")
    model = load_model(path)
    if not isinstance(model, Backbone) or model.num_classes < 1:
        name = getattr(model, "model_name", "") or type(model).__name__
        raise CheckpointError(f"{path} holds {name}, a model without class logits, not a classifier: {PRODUCE_HINT}")
    return ClassifierProbe(model, size=size)


def _saved_config(path: Path) -> dict:
    """``path``'s config.json, or {} when missing or unreadable (``load_model`` then says what is wrong)."""
    try:
        saved = json.loads((path / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def classifier_dir(path: str | Path) -> Path:
    """``path``, or, when it is a relative ``assets/...`` path missing from the working directory, the shipped
    one in the repository (so the default works from any directory)."""
    path = Path(path)
    if path.exists() or path.is_absolute() or path.parts[:1] != ("assets",):
        return path
    shipped = repository_root() / path
    return shipped if shipped.is_dir() else path


def weights_digest(path: str | Path) -> str:
    """A short digest of the weights ``load_classifier`` uses (EMA when saved): stats of other weights are refused."""
    path = classifier_dir(path)
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
