"""hybridvision: hybrid convolution-attention vision networks (AsCAN, CoAtNet, EfficientMod)."""

from typing import Any

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
    "push_to_hub",
    "register",
    "save_pretrained",
]


def __getattr__(name: str) -> Any:
    """``push_to_hub`` loads on first use (it needs the engine's run reader; huggingface_hub loads when it runs)."""
    if name == "push_to_hub":
        from .publish import push_to_hub

        return push_to_hub
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
