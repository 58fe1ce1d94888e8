"""Diffusion: the AsCAN UNet (a diffusers model), its diffusers pipeline, noise schedules and samplers, guidance,
FID, and the training task.

The denoisers' names (families "ascan_unet" and "diffusers_unet") are registered with every other model when
``hybridvision`` is imported (``hybridvision.models.zoo``). diffusers is imported with the models and the pipeline
(the UNet subclasses its ``ModelMixin``), never by ``import hybridvision``: the names below are imported when
first used, so reading a denoiser's config (``models.unet_config``) does not import diffusers either.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AsCANPipeline": ".pipeline",
    "AsCANUNet": ".models.unet",
    "AsCANUNetConfig": ".models.unet_config",
    "DiffusersUNet": ".models.baseline",
    "DiffusersUNetConfig": ".models.baseline",
    "UNetOutput": ".models.unet",
    "timestep_embedding": ".models.layers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
