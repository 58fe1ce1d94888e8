"""Activation names -> layer constructors (configs hold strings; blocks receive callables)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU,
    "gelu_tanh": partial(nn.GELU, approximate="tanh"),
    "silu": nn.SiLU,
    "relu": nn.ReLU,
}


def get_act(name: str) -> Callable[[], nn.Module]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]
