"""The model registry: named configs and ``list_models`` (timm's names and arguments).

Entries are data (a model class plus a frozen config), so tests, the CLI and benchmarks can enumerate and
inspect variants without building them. Families register their variants when ``hybridvision.models`` is
imported (the package does so on import); ``hub.create_model`` builds them, with weights when asked.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
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


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}.{suggest(name, _REGISTRY)} See `hybridvision models` for all names.")
    return _REGISTRY[name]


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered names matching a glob pattern (and family), sorted."""
    names = fnmatch.filter(_REGISTRY, pattern)
    return sorted(n for n in names if family is None or _REGISTRY[n].family == family)


def list_families() -> list[str]:
    return sorted({e.family for e in _REGISTRY.values()})


def get_config(name: str, **overrides: Any) -> Any:
    """The registered config of ``name`` with overrides applied (unknown keys raise with suggestions)."""
    entry = get_entry(name)
    try:
        return replace(entry.config, **overrides)
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None
