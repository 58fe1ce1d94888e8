"""A typed config behind a diffusers model: diffusers' ``ConfigMixin`` keeps plain values, we keep a dataclass.

A diffusers model records its ``__init__`` keywords in ``config.json``, and ``from_config`` passes back the keys
that the ``__init__`` signature names. Our denoisers are built from one frozen-dataclass config, which stays the
source of truth: the model registers ``to_dict(config)`` with diffusers, and its ``__init__`` takes either the
config or those fields as keywords. ``init_signature`` gives ``__init__`` the signature that lists the fields, so
diffusers' ``from_config`` reads them from ``config.json``; ``typed_config`` turns them back into the dataclass,
JSON's lists becoming the config's tuples.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

from ...config import from_dict

T = TypeVar("T")


def init_signature(config_cls: type) -> inspect.Signature:
    """``(self, config=None, *, <field>=<default>, ...)``: the keywords diffusers' ``from_config`` passes."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD), P("config", P.POSITIONAL_OR_KEYWORD, default=None)]
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        params.append(P(f.name, P.KEYWORD_ONLY, default=default))
    return inspect.Signature(params)


def typed_config(config_cls: type[T], config: T | None, fields: dict[str, Any]) -> T:
    """``config`` itself, or ``config_cls`` built from ``fields`` (plain values, as ``config.json`` holds them)."""
    if config is not None and fields:
        raise TypeError(f"pass a {config_cls.__name__} or its fields as keywords, not both (got {sorted(fields)})")
    if config is None:
        return from_dict(config_cls, fields)
    if isinstance(config, dict):  # diffusers' FrozenDict of another model's config
        return from_dict(config_cls, {k: v for k, v in config.items() if not k.startswith("_")})
    if not isinstance(config, config_cls):
        raise TypeError(f"expected a {config_cls.__name__}, got {type(config).__name__}")
    return config
