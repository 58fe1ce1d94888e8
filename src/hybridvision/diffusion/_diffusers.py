"""The one door to diffusers: imported lazily, with a broken torchvision hidden from it first.

diffusers imports torchvision wherever one is installed (``models/transformers/transformer_cosmos.py``), and
transformers does too when present (research note generation.md §4). The only torchvision wheels that match our
CPU torch are CUDA builds whose C extension cannot load, so that import raises and takes diffusers down with it.
When torchvision is installed but cannot be imported, we set ``sys.modules["torchvision"] = None`` before
importing diffusers: ``find_spec`` then reports it absent and diffusers (and transformers) skip it. A working
torchvision (a real CPU build, or one a test shim has fixed) is left alone.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from types import ModuleType

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -c constraints.txt 'diffusers>=0.30'"


def hide_broken_torchvision() -> bool:
    """Hide an installed torchvision that fails to import; True when it was hidden."""
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return False  # imported already (or hidden), or not installed
    try:
        import torchvision  # noqa: F401
    except Exception as e:  # the CUDA wheel raises RuntimeError("operator torchvision::nms does not exist")
        for name in [m for m in sys.modules if m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None  # type: ignore[assignment]
        log.info("torchvision is installed but cannot be imported (%s); hidden from diffusers", e)
        return True
    return False


def diffusers() -> ModuleType:
    """The ``diffusers`` package (an ImportError that says how to install it when missing)."""
    if "diffusers" not in sys.modules:
        hide_broken_torchvision()
    try:
        import diffusers as module
    except ImportError as e:
        raise ImportError(f"diffusion sampling and the baseline UNet need diffusers: {INSTALL_HINT} ({e})") from None
    return module
