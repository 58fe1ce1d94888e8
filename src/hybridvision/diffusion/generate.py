"""``hybridvision generate``: sample a grid of images from a trained run (or its saved final weights).

A run directory is read through its ``config.yaml`` (final weights, else the newest good checkpoint); a saved
``final/`` folder through its ``config.json``, which records the model, its overrides, the class names and the
noise schedule the weights were trained with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import CONFIG_NAME, CheckpointError, load_pretrained
from ..config import from_dict, resolve
from ..data import FASHION_MNIST_CLASSES
from ..engine import init_source
from ..engine.distributed import pick_device
from ..hub import create_model
from .config import DiffusionTrainConfig
from .fid import to_uint8
from .grid import make_grid, save_grid
from .sampling import SampleConfig, initial_noise, sample
from .schedule import NoiseConfig


@dataclass
class Denoiser:
    """A trained denoiser with what sampling needs to know about it."""

    model: nn.Module
    noise: NoiseConfig
    classes: list[str]
    shape: tuple[int, int, int]  # (C, H, W) of its samples


def load_denoiser(path: str | Path, *, use_ema: bool = True, device: str = "cpu") -> Denoiser:
    """The model of a training run directory, or of a saved ``final/`` folder, in eval mode on ``device``."""
    path = Path(path)
    if (path / "config.yaml").is_file():  # a run: its final weights, else its newest good checkpoint
        source = init_source(str(path))
        model, noise, classes = _from_saved(source) if (source / CONFIG_NAME).is_file() else _from_run(path)
    elif (path / CONFIG_NAME).is_file():
        source = path
        model, noise, classes = _from_saved(path)
    else:
        raise CheckpointError(f"{path} is neither a diffusion run (config.yaml) nor a saved model (config.json)")
    load_pretrained(model, source, use_ema=use_ema)
    model = model.to(pick_device(device)).eval()
    c, (h, w) = model.config.in_chans, model.config.img_hw
    return Denoiser(model, noise, classes or [str(i) for i in range(model.null_class)], (c, h, w))


def _from_saved(folder: Path) -> tuple[nn.Module, NoiseConfig, list[str]]:
    saved = json.loads((folder / CONFIG_NAME).read_text())
    if "noise" not in saved:
        raise CheckpointError(f"{folder / CONFIG_NAME} has no noise schedule: is it a diffusion model's folder?")
    model = create_model(saved["model"], **saved.get("overrides", {}))
    return model, from_dict(NoiseConfig, saved["noise"]), list(saved.get("classes", []))


def _from_run(run: Path) -> tuple[nn.Module, NoiseConfig, list[str]]:
    """A run without final weights yet: rebuilt from its config.yaml as the task built it."""
    cfg = resolve(DiffusionTrainConfig, str(run / "config.yaml"))
    classes = list(FASHION_MNIST_CLASSES)
    kwargs = {**cfg.model_kwargs, "in_chans": 1, "img_size": cfg.img_size, "num_classes": len(classes)}
    return create_model(cfg.model, **kwargs), cfg.noise, classes


def class_index(name: str | int, classes: list[str]) -> int:
    """A class given by index or name (case-insensitive); an unknown one raises naming the valid ones."""
    if isinstance(name, int) or str(name).lstrip("-").isdigit():
        index = int(name)
        if 0 <= index < len(classes):
            return index
        raise ValueError(f"class {index} is out of range: this model knows classes 0..{len(classes) - 1}")
    lowered = [c.lower() for c in classes]
    if str(name).lower() in lowered:
        return lowered.index(str(name).lower())
    listing = ", ".join(f"{i}={c}" for i, c in enumerate(classes))
    raise ValueError(f"unknown class {name!r}; this model knows {listing}")


@torch.no_grad()
def generate(
    denoiser: Denoiser,
    classes: list[int],
    n: int,
    cfg: SampleConfig,
    *,
    seed: int = 0,
    batch_size: int = 64,
) -> torch.Tensor:
    """``n`` samples of each class in ``classes`` as uint8 (len(classes) * n, C, H, W), class after class."""
    model = denoiser.model
    device = next(model.parameters()).device
    labels = torch.tensor(classes).repeat_interleave(n)
    out = []
    for start in range(0, len(labels), batch_size):
        idx = list(range(start, min(start + batch_size, len(labels))))
        noise = initial_noise(idx, denoiser.shape, seed).to(device)
        gen = torch.Generator().manual_seed(seed * 7919 + start)
        out.append(to_uint8(sample(model, labels[idx], noise, cfg, denoiser.noise, generator=gen)).cpu())
    return torch.cat(out)


def generate_grid(
    run: str | Path,
    classes: list[str | int] | None,
    n: int,
    cfg: SampleConfig,
    out: str | Path,
    *,
    seed: int = 0,
    use_ema: bool = True,
    device: str = "cpu",
) -> Path:
    """Write a PNG grid of ``n`` samples per class (one row per class; a single class: a near-square grid)."""
    denoiser = load_denoiser(run, use_ema=use_ema, device=device)
    wanted = [class_index(c, denoiser.classes) for c in classes] if classes else list(range(len(denoiser.classes)))
    images = generate(denoiser, wanted, n, cfg, seed=seed)
    return save_grid(make_grid(images, nrow=n if len(wanted) > 1 else 0), out)
