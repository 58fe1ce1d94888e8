"""The model registry: named configs and ``list_models`` (timm's names and arguments).

Entries are data (a model class, a frozen config and the facts a model card states), so tests, the CLI and
benchmarks can enumerate and inspect variants without building them. Families register their variants through
``family(...)`` when ``hybridvision.models`` is imported (the package does so on import); ``hub.create_model``
builds them, with weights when asked.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
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
    # Facts a model card states about this name (paper params/MACs/top-1, data mean/std, timm_twin ...).
    card: dict[str, Any] = field(default_factory=dict)
    test: bool = False  # a tiny variant for tests, not a model to train or compare
    task: str = "classification"  # what the model is for: "classification" (a backbone), "segmentation", ...


_REGISTRY: dict[str, ModelEntry] = {}


def register(
    name: str,
    model_cls: type[nn.Module],
    config: Any,
    *,
    family: str,
    description: str = "",
    card: dict[str, Any] | None = None,
    test: bool = False,
    task: str = "classification",
) -> None:
    """Add a named model. Names are unique, lowercase ``family_size``; ``test`` marks tiny test variants;
    ``task`` says what the model is for (backbones are "classification"; task packages register their own)."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = ModelEntry(name, model_cls, config, family, description, dict(card or {}), test, task)


def family(name: str, model_cls: type[nn.Module], task: str = "classification") -> Callable[..., None]:
    """The registrar of one family: ``variant(name, config, description="", *, test=False, **card)``."""

    def variant(variant_name: str, config: Any, description: str = "", *, test: bool = False, **card: Any) -> None:
        register(variant_name, model_cls, config, family=name, description=description, card=card, test=test, task=task)

    return variant


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}.{suggest(name, _REGISTRY)} See `hybridvision models` for all names.")
    return _REGISTRY[name]


def list_models(
    pattern: str = "*", family: str | None = None, test: bool | None = None, task: str | None = None
) -> list[str]:
    """Registered names matching a glob pattern, sorted.

    Args:
        pattern: glob over names.
        family: only this family.
        test: None lists every variant, False leaves the test variants out, True lists only them.
        task: only models for this task ("classification": the backbones); None: all.
    """
    entries = (_REGISTRY[n] for n in fnmatch.filter(_REGISTRY, pattern))
    return sorted(e.name for e in entries if _matches(e, family, test, task))


def _matches(e: ModelEntry, family: str | None, test: bool | None, task: str | None) -> bool:
    return (family is None or e.family == family) and (test is None or e.test == test) and (task in (None, e.task))


def list_families() -> list[str]:
    return sorted({e.family for e in _REGISTRY.values()})


def get_config(name: str, **overrides: Any) -> Any:
    """The registered config of ``name`` with overrides applied (unknown keys raise with suggestions)."""
    entry = get_entry(name)
    try:
        return replace(entry.config, **overrides)
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None
