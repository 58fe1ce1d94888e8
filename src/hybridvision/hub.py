"""Models by name, with or without weights, and our own saved format.

``create_model`` builds a registered model and loads weights into it (ours, timm's, the official EfficientMod
trainer's: ``checkpoint`` reads and adapts them). ``save_pretrained`` writes ``model.safetensors`` (+
``model_ema.safetensors``) and ``config.json``; ``load_model`` rebuilds the model from them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import CONFIG_NAME, EMA_WEIGHTS_NAME, WEIGHTS_NAME, CheckpointError, load_pretrained
from .fileio import save_json, save_tensors
from .registry import get_config, get_entry


def create_model(
    name: str,
    pretrained: str | Path | None = None,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | tuple[int, int] | None = None,
    drop_path_rate: float | None = None,
    pretrained_ema: bool = True,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model, optionally loading weights.

    Args:
        name: a registered name (``hybridvision models`` lists them).
        pretrained: ``None`` for fresh init, or a path to weights: our safetensors or run directory, timm
            ``.safetensors``/``.pth``, official EfficientMod ``.pth.tar``. Foreign key layouts are converted by
            the family; a different ``num_classes`` keeps a fresh classifier, a different ``img_size``
            resizes relative-position tables, a different ``in_chans`` adapts the first convolution.
        num_classes: classifier outputs (0 = no classifier, ``forward`` returns pooled features).
        in_chans: input channels.
        img_size: the input size the model is built for (int or (H, W)); other multiples of the total
            stride still work at run time.
        drop_path_rate: stochastic-depth rate at the deepest block.
        pretrained_ema: when the checkpoint holds both EMA and raw weights (official EfficientMod trainer,
            our runs), load the EMA weights (default) or the raw ones (``False``).
        **overrides: any field of the family's config (e.g. ``layout=...``, ``head_dim=64``).
    """
    contract = dict(num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_path_rate=drop_path_rate)
    overrides.update({k: v for k, v in contract.items() if v is not None})
    entry = get_entry(name)
    model = entry.model_cls(get_config(name, **overrides))
    model.model_name = name
    if pretrained is not None:
        load_pretrained(model, pretrained, use_ema=pretrained_ema)
    return model


def model_config_dict(model: nn.Module) -> dict[str, Any]:
    """What ``save_pretrained`` writes next to the weights, enough to rebuild the model."""
    name = getattr(model, "model_name", None)
    if name is None:
        raise ValueError("this model was not made by create_model, so it has no registered name to save")
    base = dataclasses.asdict(get_entry(name).config)
    cfg = dataclasses.asdict(model.config)
    changed = {k: v for k, v in cfg.items() if base.get(k) != v}
    return {"model": name, "overrides": changed}


def save_pretrained(model: nn.Module, directory: str | Path, ema: nn.Module | None = None) -> Path:
    """Write ``model.safetensors`` (+ ``model_ema.safetensors``) and ``config.json`` to ``directory``."""
    directory = Path(directory)
    save_tensors(model.state_dict(), directory / WEIGHTS_NAME, metadata={"format": "pt"})
    if ema is not None:
        save_tensors(ema.state_dict(), directory / EMA_WEIGHTS_NAME, metadata={"format": "pt"})
    save_json(model_config_dict(model), directory / CONFIG_NAME)
    return directory


def load_model(directory: str | Path, *, use_ema: bool = True, **overrides: Any) -> nn.Module:
    """Rebuild a model saved with ``save_pretrained`` (config and weights)."""
    directory = Path(directory)
    cfg_path = directory / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"{directory} has no {CONFIG_NAME}; was it written by save_pretrained?")
    try:
        cfg = json.loads(cfg_path.read_text())
        name, saved = cfg["model"], cfg.get("overrides", {})
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{cfg_path} is not a valid model config: {e}") from None
    return create_model(name, pretrained=directory, pretrained_ema=use_ema, **{**saved, **overrides})
