"""Diffusion: the AsCAN UNet, diffusers noise schedules and samplers, guidance, FID, and the training task.

The denoisers' names (families "ascan_unet" and "diffusers_unet") are registered with every other model when
``hybridvision`` is imported (``hybridvision.models.zoo``); diffusers itself is imported only when a scheduler
or the baseline UNet is first needed.
"""

from .models.baseline import DiffusersUNet, DiffusersUNetConfig
from .models.layers import timestep_embedding
from .models.unet import AsCANUNet, AsCANUNetConfig, UNetOutput

__all__ = [
    "AsCANUNet",
    "AsCANUNetConfig",
    "DiffusersUNet",
    "DiffusersUNetConfig",
    "UNetOutput",
    "timestep_embedding",
]
