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


def lr_scales(model: nn.Module, lr_mult: dict[str, float]) -> dict[str, float]:
    """Each trainable parameter's lr multiplier: that of the longest ``lr_mult`` prefix its name starts with, else
    1. A prefix that names no parameter is a typo, and says so."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    unused = [k for k in lr_mult if not any(n.startswith(k) for n in names)]
    if unused:
        tops = sorted({n.split(".")[0] for n in names})
        raise ValueError(f"optim.lr_mult: {unused} match no parameter name; names start with {tops}")
    scales = {}
    for name in names:
        hits = [k for k in lr_mult if name.startswith(k)]
        scales[name] = float(lr_mult[max(hits, key=len)]) if hits else 1.0
    return scales


def param_groups(model: nn.Module, weight_decay: float, lr_mult: dict[str, float] | None = None) -> list[dict]:
    """Decayed weights and the rest (``weight_decay = 0``), per lr multiplier (``lr_scale``, 1 without
    ``lr_mult``): two groups per multiplier, the default two when there is none."""
    skip, scales = no_decay_names(model), lr_scales(model, lr_mult or {})
    groups: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = scales[name]
            groups.setdefault((scale, False), [])
            groups.setdefault((scale, True), [])
            groups[(scale, name in skip)].append(p)
    return [
        {"params": params, "weight_decay": 0.0 if skipped else weight_decay, "lr_scale": scale}
        for (scale, skipped), params in groups.items()
    ]


def _kernel(impl: str, device: torch.device) -> dict[str, bool]:
    if impl == "auto":  # fused AdamW runs on CPU and CUDA in current torch; it is the fastest there
        impl = "fused" if device.type in ("cpu", "cuda") else "foreach"
    if impl not in ("fused", "foreach", "loop"):
        raise ValueError(f"optim.impl must be auto/fused/foreach/loop, got {impl!r}")
    return {"fused": impl == "fused", "foreach": impl == "foreach"}


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay, cfg.lr_mult),
        lr=cfg.lr,
        betas=cfg.betas,
        eps=cfg.eps,
        **_kernel(cfg.impl, device),
    )
