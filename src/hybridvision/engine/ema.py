"""Exponential moving average of weights (Polyak averaging), kept as a full model copy.

Buffers (BatchNorm running statistics) are copied, parameters averaged, as timm's ``ModelEmaV3`` does. The EMA
model is evaluated and saved on its own.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .config import EmaConfig


class ModelEma:
    """``ema = decay * ema + (1 - decay) * model`` after optimizer steps."""

    def __init__(self, model: nn.Module, cfg: EmaConfig) -> None:
        self.cfg = cfg
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0

    def decay_at(self, updates: int) -> float:
        if not self.cfg.warmup:
            return self.cfg.decay
        return min(self.cfg.decay, (1 + updates) / (10 + updates))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if (step + 1) % self.cfg.every:
            return
        decay = self.decay_at(self.updates)
        ema_p = [p for p in self.module.parameters()]
        own_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, own_p, 1.0 - decay)  # ema += (1 - decay) * (model - ema)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(state)
        self.updates = updates
