"""A run's numeric precision: the autocast dtype its ``amp`` setting resolves to on a device, its name, and the
autocast context. Training (``engine.session``) and evaluation both read it, so it imports nothing of training."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """bf16/fp16 autocast dtype, or None. "auto": bf16 where the hardware runs it fast, else fp32.

    CUDA: when the GPU supports bf16. CPU: with AMX tiles (Xeon Sapphire Rapids and later), where bf16 training
    runs clearly faster than fp32. Without AMX fp32 stays: CPUs without bf16 instructions emulate bf16 matmuls,
    many times slower than fp32, and on CPUs with avx512_bf16 but no AMX the gain is too small to change the
    numerics of every default run without an accuracy comparison (ask for it with ``amp: bf16``; measured:
    results/speed/cpu-train-speed.json).
    """
    if amp == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        return torch.bfloat16 if device.type == "cpu" and amx() else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]


def precision_name(amp: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp, "fp32")


def autocast_for(amp: torch.dtype | None, device: torch.device) -> Callable[[], AbstractContextManager]:
    """() -> the autocast context for ``amp`` on ``device`` (a no-op for fp32)."""
    return (lambda: torch.autocast(device.type, dtype=amp)) if amp else contextlib.nullcontext
