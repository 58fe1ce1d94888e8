"""Unfinished diffusion runs from before ``model.json``: their model description, rebuilt for inference.

Such a run holds its ``config.yaml`` and checkpoints, no description. What its training built follows from the
config (model name and kwargs, size, noise schedule, conditioning, text encoder) and from facts only the data and
the encoder knew, which the weights keep in their shapes: the input channels (the first conv's weight), the class
count (the class-embedding table, one row more: the null label) and a text model's context width (the input width
of the cross-attention's key/value projection). Only tensor shapes are read; no training code, data or embedding
cache is opened. Latent runs are left to ``--resume`` (their pixel channels are in neither the config nor the
weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from ..checkpoint import WEIGHTS_NAME, CheckpointError
from ..config import to_dict
from ..data import FASHION_MNIST_CLASSES
from ..engine.rundir import RunDir
from ..factory import config_overrides
from ..registry import get_config
from .config import TASK, DiffusionTrainConfig, text_info

# Where a denoiser keeps each fact, by the end of the weight's name (AsCAN UNet, then the diffusers baseline).
FIRST_CONV = ("stem.weight", "unet.conv_in.weight")  # (C_out, in_chans, k, k)
CLASS_TABLE = ("class_embed.weight", "unet.class_embedding.weight")  # (num_classes + 1, width)
CONTEXT_KV = ("cross_attn.kv.weight",)  # (2 * inner, context_dim)


def describe_old_run(run: RunDir) -> dict[str, Any] | None:
    """The description an unfinished pixel-space run would have written (``model.json``), or None when it cannot
    be told (no config, a latent run, weights of an unknown layout): the run is then resumed once."""
    cfg = run.read_config(DiffusionTrainConfig)
    if cfg is None or cfg.latent.vae:
        return None
    shapes = weight_shapes(run.weights_dir() / WEIGHTS_NAME)
    first, table, kv = (_shape(shapes, names) for names in (FIRST_CONV, CLASS_TABLE, CONTEXT_KV))
    text = cfg.conditioning == "text"
    if first is None or (kv if text else table) is None:
        return None
    kwargs = {**cfg.model_kwargs, "in_chans": first[1], "img_size": cfg.img_size}
    if text:
        kwargs |= {"num_classes": 0, "context": "text", "context_dim": kv[1]}
    else:
        kwargs["num_classes"] = table[0] - 1
    config = get_config(cfg.model, **kwargs)
    info = {"model": cfg.model, "overrides": config_overrides(cfg.model, config)}
    info |= {"classes": list(FASHION_MNIST_CLASSES), "noise": to_dict(cfg.noise)}
    if text:
        info["text"] = text_info(cfg) | {"dim": kv[1]}
    return info | {"task": TASK, "in_chans": config.in_chans}


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in a safetensors file, without reading the tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {e}") from None


def _shape(shapes: dict[str, tuple[int, ...]], names: tuple[str, ...]) -> tuple[int, ...] | None:
    """The shape of the first weight whose name ends with one of ``names`` (a wrapper's prefix is fine)."""
    return next((s for key, s in shapes.items() for name in names if key == name or key.endswith("." + name)), None)
