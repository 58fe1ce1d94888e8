"""hybridvision: hybrid convolution-attention vision networks (AsCAN, CoAtNet, EfficientMod)."""

from . import models  # noqa: F401  (importing the families registers their named variants)
from .checkpoint import CheckpointError
from .config import ConfigError
from .factory import create_model, load_model, save_pretrained
from .models.contract import InputError
from .registry import get_config, get_entry, list_families, list_models, register

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "InputError",
    "create_model",
    "get_config",
    "get_entry",
    "list_families",
    "list_models",
    "load_model",
    "register",
    "save_pretrained",
]
