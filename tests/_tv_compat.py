"""Test set-up only: make timm (and segmentation-models-pytorch) importable next to the CPU torch.

The only torchvision that matches torch 2.13 on the registries is a CUDA build: its C extension cannot load
with the CPU torch, and ``import torchvision`` then fails on ``register_fake("torchvision::nms")`` (research
note env.md section 2). Defining the two missing operator schemas first lets torchvision (and so timm) import;
its C++ ops (nms, roi_align, decode_jpeg) still raise when called. The library never does this: it imports
timm as it is (``hybridvision.bench.jobs.import_timm``) and reports why when that fails.

Importing this module applies the shim, so it also serves as a ``BenchConfig.plugins`` entry: every
measuring process of ``hybridvision bench --against timm`` imports it first (with ``tests/`` on PYTHONPATH).
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch

_MISSING_OP = "torchvision::nms does not exist"


def import_torchvision() -> ModuleType:
    """``import torchvision``, defining the operator schemas its missing C extension would have registered."""
    try:
        import torchvision

        return torchvision
    except RuntimeError as e:
        if _MISSING_OP not in str(e):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision

    torchvision._cpu_compat_lib = lib  # keep the schema library alive
    return torchvision


def import_timm() -> tuple[ModuleType | None, str]:
    """(timm, "") with the shim applied, or (None, why not) when timm or torchvision is not installed."""
    try:
        import_torchvision()
        import timm
    except ImportError as e:
        return None, f"{type(e).__name__}: {e}"
    return timm, ""


try:  # as a bench plugin: apply it on import; a machine without torchvision has nothing to fix
    import_torchvision()
except ImportError:
    pass
