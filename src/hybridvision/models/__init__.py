"""Model families. Importing this package registers every family's named variants, then the task models built
on them (``zoo``: UperNet segmentors and diffusion denoisers, listed without importing their task packages)."""

from . import (  # noqa: F401
    ascan,
    coatnet,
    efficientmod,
    zoo,  # noqa: F401  (after the families: a segmentor is registered per backbone)
)
from .contract import Backbone, BackboneProtocol, FeatureInfo, InputError, ModelConfig

__all__ = ["Backbone", "BackboneProtocol", "FeatureInfo", "InputError", "ModelConfig"]
