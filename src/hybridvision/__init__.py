"""hybridvision: hybrid convolution-attention vision networks (AsCAN, CoAtNet, EfficientMod)."""

from .checkpoint import CheckpointError, load_model, save_pretrained
from .config import ConfigError
from .models.contract import InputError
from .registry import create_model, get_config, get_entry, list_families, list_models, register

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
