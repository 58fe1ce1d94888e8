"""Model families. Importing this package registers every family's named variants."""

from . import ascan, coatnet, efficientmod  # noqa: F401
from .contract import Backbone, BackboneProtocol, FeatureInfo, InputError, ModelConfig

__all__ = ["Backbone", "BackboneProtocol", "FeatureInfo", "InputError", "ModelConfig"]
