"""An honest MAC counter: ``FlopCounterMode`` plus the attention matmuls it misses on CPU.

``FlopCounterMode`` reports FLOPs (2 per multiply-accumulate) for convolutions and matmuls and ignores
element-wise work (norms, activations, softmax, pooling), matching the papers' "FLOPs" = MACs convention. On
CPU, ``scaled_dot_product_attention`` runs a kernel it has no formula for; we map it to the analytic
2*B*H*N*M*d MACs. On the meta device SDPA decomposes into counted matmuls, so counts agree everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from .registry import get_entry


def _sdpa_cpu_flops(query, key, value, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return sdpa_flop_count(query, key, value)


_CUSTOM = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


@dataclass(frozen=True)
class ModelCost:
    """Parameters and multiply-accumulates of one forward at ``input_shape``."""

    params: int
    macs: int
    input_shape: tuple[int, ...]
    macs_by_module: dict[str, int] = field(default_factory=dict)  # top-level children (stem, stages.i, head)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    """Total MACs of ``model(x)`` for ``x`` of ``input_shape`` on the model's device, and MACs per top module."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn(input_shape, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_CUSTOM) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2, _per_module(counter, model)


def _per_module(counter: FlopCounterMode, model: nn.Module) -> dict[str, int]:
    """MACs per top-level child, with ``stages`` split per stage ({'stem': .., 'stages.0': .., 'head': ..})."""
    out = {}
    for name, ops in counter.get_flop_counts().items():
        path = name.split(".")[1:]  # drop the root ("Global")
        top_level = len(path) == 1 and path[0] != "stages"
        if top_level or (len(path) == 2 and path[0] == "stages"):
            out[".".join(path)] = sum(ops.values()) // 2
    return out


# Tasks whose models do work that depends on what the image holds (a detector's proposals and detections): a
# fixed forward does not count them, so only their parameters are.
INPUT_DEPENDENT = ("detection",)


def counts_macs(name: str) -> bool:
    """Whether ``model_cost`` counts the MACs of a registered model (not of a detector)."""
    return get_entry(name).task not in INPUT_DEPENDENT


def model_params(name: str, **overrides: Any) -> int:
    """Parameters of a registered model (any task), built on the meta device."""
    return count_params(_on_meta(name, overrides))


def model_cost(name: str, img_size: int | None = None, batch: int = 1, **overrides: Any) -> ModelCost:
    """Params and MACs of a registered model, built on the meta device (no memory, no init time)."""
    if not counts_macs(name):
        raise ValueError(
            f"{name} is a {get_entry(name).task} model: its MACs depend on the image and the proposals it keeps, "
            f"so they are not counted (`hybridvision models {name}` gives its parameters)"
        )
    kwargs = dict(overrides)
    if img_size is not None:
        kwargs["img_size"] = img_size
    model = _on_meta(name, kwargs)
    h, w = model.config.img_hw
    shape = (batch, model.config.in_chans, h, w)
    macs, per_module = count_macs(model, shape)
    return ModelCost(count_params(model), macs, shape, per_module)


def _on_meta(name: str, overrides: dict[str, Any]) -> nn.Module:
    from .factory import create_model

    with torch.device("meta"):
        return create_model(name, **overrides)
