"""What ``hybridvision export`` exports: a registered NAME (fresh or ``--pretrained`` weights), or a classification
RUN / saved-model folder (its weights, its classes, the preprocessing it was trained with).

The preprocessing record comes from the run's own data settings when there is one; a saved folder or a name gets
its model card's (``export.calib.card_preprocess``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..export.artifact import Preprocess
from ..export.calib import card_preprocess, numbered_labels


@dataclass
class Source:
    """The model to export (fp32, eval), its registered name, preprocessing and labels."""

    model: nn.Module
    name: str
    spec: Preprocess
    labels: tuple[str, ...]


def load_source(
    target: str, pretrained: str | None, img_size: int | None, mean: tuple | None, std: tuple | None
) -> Source:
    """NAME or RUN -> the model and what its artifact records; ``mean``/``std`` override the found statistics."""
    if Path(target).exists():
        source = _from_run(Path(target), img_size)
    else:
        source = _from_name(target, pretrained, img_size)
    if mean or std:
        spec = source.spec
        source.spec = Preprocess(
            spec.input_size, spec.channels, tuple(mean or spec.mean), tuple(std or spec.std), spec.interpolation,
            spec.resize, spec.crop_pct,
        )  # fmt: skip
    return source


def _from_name(name: str, pretrained: str | None, img_size: int | None) -> Source:
    from ..factory import create_model

    model = create_model(name, pretrained=pretrained, **({"img_size": img_size} if img_size is not None else {})).eval()
    labels = numbered_labels(model.config.num_classes)
    return Source(model, name, card_preprocess(model, labels), labels)


def _from_run(path: Path, img_size: int | None) -> Source:
    from ..classify.evaluate import TASK, saved_train_config
    from ..engine.rundir import open_model

    saved = open_model(path, task=TASK)
    if img_size is not None:
        saved = saved.with_overrides(img_size=img_size)
    model = saved.load(use_ema=False).eval()
    labels = tuple(saved.info.get("classes") or numbered_labels(model.config.num_classes))
    train = saved_train_config(path)
    if train is None:
        return Source(model, saved.info["model"], card_preprocess(model, labels), labels)
    data = train.data
    size = tuple(model.config.img_hw)
    pad = data.dataset == "fashion_mnist"
    crop = size[0] / data.load_size if data.load_size else 1.0
    spec = Preprocess(size, data.channels, tuple(data.mean), tuple(data.std), "bilinear",
                      "pad" if pad else "shorter_side", crop)  # fmt: skip
    return Source(model, train.model, spec, labels)
