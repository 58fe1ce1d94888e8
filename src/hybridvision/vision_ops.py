"""torchvision, completed where its C extension is missing: the import, and a pure-torch ``nms``.

The only torchvision built for the CPU torch we pin is a CUDA build: its C extension (``torchvision/_C.so``)
cannot load, and ``import torchvision`` then fails while registering a fake kernel for ``torchvision::nms``, an
operator the extension would have defined. ``import_torchvision()`` is the one door through which hybridvision
imports torchvision (detection, the timm bridge, bench's timm comparison). It imports torchvision as it is; only
where that import fails for this reason does it define the two operator schemas (``nms``, ``qnms``) and import
again. torchvision then reports no extension (``extension._has_ops()`` is False), which is what keeps its
pure-Python RoIAlign in use (``ops.roi_align`` takes it only then), and ``ops.nms`` would still refuse to run
(it asserts the extension first). So, and only then, ``torchvision::nms`` gets a kernel written here in torch,
with torchvision's documented semantics, and ``torchvision.ops.nms`` (the name ``batched_nms`` and the
detection models call) is pointed at the operator without the assertion. A torchvision whose extension loads
is returned untouched: its own kernels run.

A broken torchvision that ``diffusion._diffusers`` hid from diffusers (``sys.modules["torchvision"] = None``)
is imported here all the same, completed: what diffusers decided on its own import stays valid.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import torch
from torch import Tensor

from .config import one_of

MISSING_OP = "torchvision::nms does not exist"  # the error torchvision raises where its extension did not load
SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
ROI_ALIGN_MODES = ("compiled", "eager")
BLOCK = 1024  # boxes whose IoU rows are computed at once (memory: BLOCK x N booleans)

_state: dict[str, object] = {}  # "library": the schema library (kept alive); "completed": True once nms is ours


def import_torchvision() -> ModuleType:
    """torchvision, completed where its C extension is missing (see the module docstring); ImportError when it is
    not installed."""
    if sys.modules.get("torchvision", False) is None:  # hidden from diffusers by the torchvision guard
        del sys.modules["torchvision"]
    try:
        tv = importlib.import_module("torchvision")
    except RuntimeError as e:
        if MISSING_OP not in str(e):
            raise
        _forget_partial_import()
        _define_schemas()
        tv = importlib.import_module("torchvision")
    if not tv.extension._has_ops():
        _complete_nms(tv)
    return tv


def completed() -> bool:
    """Whether this process runs the nms written here (torchvision's extension is missing)."""
    return bool(_state.get("completed"))


def set_roi_align(mode: str) -> None:
    """Where the extension is missing, run torchvision's Python RoIAlign ``"compiled"`` (torchvision's choice:
    ``torch.compile`` on first use, seconds per new shape family on a CPU, and a C++ compiler needed) or
    ``"eager"`` (the same function uncompiled). A torchvision with its extension is not touched."""
    one_of("roi_align", mode, ROI_ALIGN_MODES)
    tv = import_torchvision()
    if tv.extension._has_ops():
        return
    module = sys.modules["torchvision.ops.roi_align"]
    _state.setdefault("roi_align", module._roi_align)  # torchvision's own (compiles on first call)
    original = _state["roi_align"]
    module._roi_align = original.__wrapped__ if mode == "eager" else original
    _state["roi_align_mode"] = mode


def kernels() -> dict[str, str]:
    """Which implementation runs each operator detection reaches, for reports (imports torchvision)."""
    tv = import_torchvision()
    if tv.extension._has_ops():
        return {"nms": "torchvision C++", "roi_align": "torchvision C++"}
    mode = _state.get("roi_align_mode", "compiled")
    return {"nms": "hybridvision (pure torch)", "roi_align": f"torchvision's Python fallback ({mode})"}


def _forget_partial_import() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def _define_schemas() -> None:
    if "library" in _state:
        return
    lib = torch.library.Library("torchvision", "DEF")
    for schema in SCHEMAS:
        lib.define(schema)
    _state["library"] = lib


def _complete_nms(tv: ModuleType) -> None:
    """Give ``torchvision::nms`` our kernel and let ``torchvision.ops.nms`` reach it (once per process)."""
    if _state.get("completed"):
        return
    if not hasattr(torch.ops.torchvision, "nms"):  # imported elsewhere without the schema (never here): define it
        lib = torch.library.Library("torchvision", "FRAGMENT")
        lib.define(SCHEMAS[0])
        _state["fragment"] = lib
    impl = torch.library.Library("torchvision", "IMPL")
    impl.impl("nms", nms_kernel, "CompositeExplicitAutograd")
    _state["impl"] = impl
    tv.ops.boxes.nms = tv.ops.nms = nms  # batched_nms and the detection models look ``nms`` up in ops.boxes
    _state["completed"] = True


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """``torchvision.ops.nms`` where the extension is missing: the same operator, without asserting the extension.

    Boxes are (x1, y1, x2, y2); a box is dropped when its IoU with a higher-scored kept box is > ``iou_threshold``;
    returns the kept indices (int64) by decreasing score. Quantized boxes are not supported here.
    """
    if boxes.is_quantized:
        raise RuntimeError("nms of quantized boxes needs torchvision's C++ extension, which did not load here")
    return torch.ops.torchvision.nms(boxes, scores, iou_threshold)


def nms_kernel(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression in torch: (N, 4) boxes, (N,) scores -> kept indices by decreasing score.

    Ties in score keep their input order (a stable sort). IoU rows are computed ``BLOCK`` boxes at a time; within
    a block the greedy pass runs on the CPU over booleans, then the block's kept boxes suppress the later ones.
    """
    if boxes.dim() != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms takes boxes (N, 4) and scores (N,), got {tuple(boxes.shape)} and {tuple(scores.shape)}")
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    ranked = boxes[order] if boxes.is_floating_point() else boxes[order].float()
    removed = torch.zeros(n, dtype=torch.bool)
    for start in range(0, n, BLOCK):
        end = min(start + BLOCK, n)
        iou = _iou(ranked[start:end], ranked[start:])  # (k, n - start), in the boxes' dtype
        over = (iou.double() > iou_threshold).cpu()  # compared in double, as torchvision's C++ kernel does
        kept = _greedy(over[:, : end - start], removed[start:end])
        removed[end:] |= over[kept, end - start :].any(0)
    return order[~removed.to(order.device)]


def _greedy(over: Tensor, removed: Tensor) -> Tensor:
    """The greedy pass inside a block, in score order: updates ``removed`` (k,) in place; returns the kept rows."""
    rows = over.numpy()
    gone = removed.numpy()  # shares memory with ``removed``
    for i in range(len(gone)):
        if not gone[i]:
            gone[i + 1 :] |= rows[i, i + 1 :]
    return (~removed).nonzero().flatten()


def _iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of (x1, y1, x2, y2) boxes: (M, 4), (N, 4) -> (M, N)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # (M, N, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)  # (M, N, 2) -> (M, N)
    return inter / (area_a[:, None] + area_b[None, :] - inter)
