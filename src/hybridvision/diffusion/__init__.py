"""Diffusion: the AsCAN UNet, diffusers noise schedules and samplers, guidance, FID, and the training task.

Importing this package registers the denoisers (families "ascan_unet" and "diffusers_unet") in the model
registry; diffusers itself is imported only when a scheduler or the baseline UNet is first needed.
"""

from .models.baseline import DiffusersUNet, DiffusersUNetConfig
from .models.layers import timestep_embedding
from .models.unet import AsCANUNet, AsCANUNetConfig, UNetOutput
from .models.zoo import register_variants

register_variants()

__all__ = [
    "AsCANUNet",
    "AsCANUNetConfig",
    "DiffusersUNet",
    "DiffusersUNetConfig",
    "UNetOutput",
    "register_variants",
    "timestep_embedding",
]
