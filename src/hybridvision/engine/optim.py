"""AdamW with decoupled weight decay on weights only (none on norms, biases and position tables)."""

from __future__ import annotations

import torch
from torch import nn

from .config import OptimConfig


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of parameters that take no weight decay: the model's own list, else every tensor with ndim <= 1."""
    if hasattr(model, "no_weight_decay"):
        names = set(model.no_weight_decay())
    else:
        names = set()
    for name, p in model.named_parameters():
        if p.ndim <= 1 or name.endswith("rel_pos.table"):
            names.add(name)
    return names


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and the rest with ``weight_decay = 0``."""
    skip = no_decay_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _kernel(impl: str, device: torch.device) -> dict[str, bool]:
    if impl == "auto":  # fused AdamW runs on CPU and CUDA in current torch; it is the fastest there
        impl = "fused" if device.type in ("cpu", "cuda") else "foreach"
    if impl not in ("fused", "foreach", "loop"):
        raise ValueError(f"optim.impl must be auto/fused/foreach/loop, got {impl!r}")
    return {"fused": impl == "fused", "foreach": impl == "foreach"}


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=cfg.betas,
        eps=cfg.eps,
        **_kernel(cfg.impl, device),
    )
