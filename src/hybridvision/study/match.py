"""Matching a point's parameter count to its baseline's by scaling its widths (counted on the meta device).

Layouts of one width table differ in params (an all-C AsCAN nano has far more than the asymmetric one;
``hybridvision study CONFIG --dry-run`` lists them), so a fair layout comparison rescales widths: every width field
the family config has (``dims``, ``stem_dims``, ``embed_dim``, ``head_hidden_dim``) is multiplied by one factor and
rounded, to a multiple of ``head_dim`` in stages holding attention (the heads must divide the width) and of 8
elsewhere. Params grow monotonically with the factor, so a bisection finds the rounded widths closest to the target.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..factory import create_model
from ..macs import count_params
from ..registry import get_config

WIDTH_FIELDS = ("dims", "stem_dims", "embed_dim", "head_hidden_dim")
QUANTUM = 8  # widths of stages without attention round to this
MAX_STEP = 0.125  # refinement moves a stage's width by one rounding step only where that is <= 12.5% of it
ATTENTION_LETTERS = "TA"  # stage letters of attention blocks (AsCAN/CoAtNet 'T', EfficientMod 'A')


def count_point_params(model: str, kwargs: dict[str, Any]) -> int:
    """Parameters of ``create_model(model, **kwargs)``, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        return count_params(create_model(model, **kwargs))


def _quantum(config: Any, stage: int) -> int:
    head_dim = getattr(config, "head_dim", None)
    layout = getattr(config, "layout", ())
    has_attention = stage < len(layout) and any(c in ATTENTION_LETTERS for c in layout[stage])
    if isinstance(head_dim, int) and has_attention:
        return math.lcm(QUANTUM, head_dim)
    return QUANTUM


def _round(width: float, quantum: int) -> int:
    return max(quantum, round(width / quantum) * quantum)


def scaled_widths(config: Any, scale: float) -> dict[str, Any]:
    """The width fields of ``config`` multiplied by ``scale`` and rounded (heads still divide attention widths)."""
    out: dict[str, Any] = {}
    for name in WIDTH_FIELDS:
        value = getattr(config, name, None)
        if name == "dims" and value:
            out[name] = tuple(_round(w * scale, _quantum(config, i)) for i, w in enumerate(value))
        elif isinstance(value, tuple) and value:
            out[name] = tuple(_round(w * scale, QUANTUM) for w in value)
        elif isinstance(value, int) and value > 0:  # 0 switches the layer off: it stays off
            out[name] = _round(value * scale, QUANTUM)
    return out


def match_widths(model: str, kwargs: dict[str, Any], target: int, steps: int = 9) -> tuple[dict[str, Any], int]:
    """``kwargs`` with the widths whose param count is closest to ``target``, and that count.

    ``kwargs`` are the point's create_model overrides plus the instantiation fields (num_classes, in_chans,
    img_size); its own width fields, if any, are the ones scaled.
    """
    config = get_config(model, **kwargs)
    cache: dict[float, tuple[dict[str, Any], int]] = {}

    def at(scale: float) -> tuple[dict[str, Any], int]:
        if scale not in cache:
            widths = scaled_widths(config, scale)
            cache[scale] = widths, count_point_params(model, {**kwargs, **widths})
        return cache[scale]

    guess = math.sqrt(target / at(1.0)[1])  # params grow about as width squared
    lo, hi = guess / 1.6, guess * 1.6
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if at(mid)[1] < target else (lo, mid)
    widths, params = min(cache.values(), key=lambda wp: abs(wp[1] - target))
    return _refine(model, config, kwargs, widths, params, target)


def _refine(
    model: str, config: Any, kwargs: dict[str, Any], widths: dict[str, Any], params: int, target: int
) -> tuple[dict[str, Any], int]:
    """One pass over the stages, last first: move a stage's width by one step where that comes closer.

    One factor for every width moves in coarse jumps (several widths round up at once); single-stage steps
    close most of the remaining gap. Only stages where one step is a small change (<= ``MAX_STEP`` of the
    width) move, so the width profile keeps its shape (no narrow stage made narrower by half).
    """
    dims = list(widths.get("dims", ()))
    for i in reversed(range(len(dims))):
        q = _quantum(config, i)
        if q > MAX_STEP * dims[i]:
            continue
        for step in (-q, q):
            trial = {**widths, "dims": (*dims[:i], dims[i] + step, *dims[i + 1 :])}
            n = count_point_params(model, {**kwargs, **trial})
            if abs(n - target) < abs(params - target):
                widths, params, dims = trial, n, list(trial["dims"])
    return {**kwargs, **widths}, params
