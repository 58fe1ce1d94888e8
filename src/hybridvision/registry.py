"""The model registry: named configs and ``list_models`` (timm's names and arguments).

Entries are data (a model class, a config and the facts a model card states), so tests, the CLI and
benchmarks can enumerate and inspect variants without building them. Families register their variants through
``family(...)``; importing ``hybridvision`` registers them all (``hybridvision.models``: the backbones' tables
in each family's file, the task models' in ``models/zoo.py``); ``factory.create_model`` builds them.

A task model (a segmentor, a denoiser) is registered by its class's import path, with its config as plain data:
it is listed, filtered and described like a backbone, and its task package is imported only when the model is
built or its config read.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from torch import nn

from .config import ConfigError, from_dict, replace, suggest

ClassRef = type | str  # a class, or its import path "package.module:Class" (imported when first needed)


@dataclass(frozen=True)
class ModelEntry:
    """One registered model name: what builds it and what the listing says about it."""

    name: str
    model: ClassRef  # the model class, or its import path
    settings: Any  # the config; with ``config_type``, its fields as plain data (nested configs as dicts)
    family: str
    description: str = ""
    # Facts a model card states about this name (paper params/MACs/top-1, data mean/std, timm_twin ...).
    card: dict[str, Any] = field(default_factory=dict)
    test: bool = False  # a tiny variant for tests, not a model to train or compare
    task: str = "classification"  # what the model is for: "classification" (a backbone), "segmentation", ...
    config_type: ClassRef | None = None  # the config class that reads dict ``settings`` (or its import path)

    @cached_property
    def model_cls(self) -> type[nn.Module]:
        """The model class (its module imported on first use)."""
        return load_class(self.model)

    @cached_property
    def config(self) -> Any:
        """The registered config (built from the plain settings on first use, for an entry that has them)."""
        if self.config_type is None:
            return self.settings
        return from_dict(load_class(self.config_type), self.settings)


def load_class(ref: ClassRef) -> type:
    """A class given as itself or as ``"package.module:Class"``."""
    if not isinstance(ref, str):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


_REGISTRY: dict[str, ModelEntry] = {}


def register(
    name: str,
    model_cls: ClassRef,
    config: Any,
    *,
    family: str,
    description: str = "",
    card: dict[str, Any] | None = None,
    test: bool = False,
    task: str = "classification",
    config_type: ClassRef | None = None,
) -> None:
    """Add a named model. Names are unique, lowercase ``family_size``; ``test`` marks tiny test variants;
    ``task`` says what the model is for (backbones are "classification"). A task model passes its class as an
    import path and its config as a dict read by ``config_type``, so listing it imports nothing."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    if isinstance(config, dict) != (config_type is not None):
        raise ValueError(f"{name}: give a config object, or a dict of settings together with its config_type")
    entry = ModelEntry(name, model_cls, config, family, description, dict(card or {}), test, task, config_type)
    _REGISTRY[name] = entry


def family(
    name: str, model_cls: ClassRef, task: str = "classification", config_type: ClassRef | None = None
) -> Callable[..., None]:
    """The registrar of one family: ``variant(name, config, description="", *, test=False, **card)``."""

    def variant(variant_name: str, config: Any, description: str = "", *, test: bool = False, **card: Any) -> None:
        kind = dict(family=name, description=description, card=card, test=test, task=task, config_type=config_type)
        register(variant_name, model_cls, config, **kind)

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


def _matches(entry: ModelEntry, family: str | None, test: bool | None, task: str | None) -> bool:
    same_family = family is None or entry.family == family
    return same_family and (test is None or entry.test == test) and task in (None, entry.task)


def list_families() -> list[str]:
    return sorted({e.family for e in _REGISTRY.values()})


def get_config(name: str, **overrides: Any) -> Any:
    """The registered config of ``name`` with overrides applied (unknown keys raise with suggestions)."""
    entry = get_entry(name)
    try:
        return replace(entry.config, **overrides)
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None
