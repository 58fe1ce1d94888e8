"""The model registry: named configs, ``create_model`` and ``list_models`` (timm's names and arguments).

Entries are data (a model class plus a frozen config), so tests, the CLI and benchmarks can enumerate and
inspect variants without building them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .config import ConfigError, replace, suggest


@dataclass(frozen=True)
class ModelEntry:
    """One registered model name."""

    name: str
    model_cls: type[nn.Module]
    config: Any
    family: str
    description: str = ""
    # Facts a model card states about this name (paper params/MACs/top-1, data mean/std ...).
    card: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register(
    name: str,
    model_cls: type[nn.Module],
    config: Any,
    *,
    family: str,
    description: str = "",
    card: dict[str, Any] | None = None,
) -> None:
    """Add a named model. Names are unique, lowercase ``family_size``."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = ModelEntry(name, model_cls, config, family, description, dict(card or {}))


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (importing the families registers them)


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}.{suggest(name, _REGISTRY)} See `hybridvision models` for all names.")
    return _REGISTRY[name]


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered names matching a glob pattern (and family), sorted."""
    _ensure_loaded()
    names = fnmatch.filter(_REGISTRY, pattern)
    return sorted(n for n in names if family is None or _REGISTRY[n].family == family)


def list_families() -> list[str]:
    _ensure_loaded()
    return sorted({e.family for e in _REGISTRY.values()})


def get_config(name: str, **overrides: Any) -> Any:
    """The registered config of ``name`` with overrides applied (unknown keys raise with suggestions)."""
    entry = get_entry(name)
    try:
        return replace(entry.config, **overrides)
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None


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
        from .checkpoint import load_pretrained

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
