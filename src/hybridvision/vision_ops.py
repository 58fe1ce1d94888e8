"""torchvision, completed where its C extension is missing: the import, a pure-torch ``nms`` and a fast RoIAlign.

The only torchvision built for the CPU torch we pin is a CUDA build: its C extension (``torchvision/_C.so``)
cannot load, and ``import torchvision`` then fails while registering a fake kernel for ``torchvision::nms``, an
operator the extension would have defined. ``import_torchvision()`` is the one door through which hybridvision
imports torchvision (detection, the timm bridge, bench's timm comparison). It imports torchvision as it is; only
where that import fails for this reason does it define the two operator schemas (``nms``, ``qnms``) and import
again. torchvision then reports no extension (``extension._has_ops()`` is False), which is what keeps
``ops.roi_align`` on its Python path, and ``ops.nms`` would still refuse to run (it asserts the extension first).
So, and only then, ``torchvision::nms`` gets a kernel written here in torch, with torchvision's documented
semantics, and ``torchvision.ops.nms`` (the name ``batched_nms`` and the detection models call) is pointed at the
operator without the assertion; and the Python RoIAlign that ``ops.roi_align`` (so ``MultiScaleRoIAlign``, the
heads and the mask targets) runs becomes ``roi_align_grid``: every RoI's samples read at once, by matmuls with
each axis's bilinear weights on small maps and by ``grid_sample`` on large ones, with the C++ kernel's semantics.
torchvision's own Python RoIAlign stays selectable (``set_roi_align``): it gathers every sample's four corners
into tensors of RoIs x channels x bins x samples, whose backward dominated a detection training step here. A
torchvision whose extension loads is returned untouched: its own kernels run.

A broken torchvision that ``diffusion._diffusers`` hid from diffusers (``sys.modules["torchvision"] = None``)
is imported here all the same, completed: what diffusers decided on its own import stays valid.
"""

from __future__ import annotations

import importlib
import sys
from functools import partial
from types import ModuleType

import torch
from torch import Tensor, nn

from .config import one_of

MISSING_OP = "torchvision::nms does not exist"  # the error torchvision raises where its extension did not load
SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
ROI_ALIGN_MODES = ("grid", "compiled", "eager")
BLOCK = 1024  # boxes whose IoU rows are computed at once (memory: BLOCK x N booleans)
# RoIAlign on maps of at most this many pixels runs as two small matmuls per image (``_pool_matmul``), on larger
# maps (COCO's finest levels) by ``grid_sample`` (``_pool``), whose cost does not grow with the map
MATMUL_MAX_PIXELS = 1024

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
    """Where the extension is missing, choose the RoIAlign that ``torchvision.ops.roi_align`` (and so
    ``MultiScaleRoIAlign`` and the detection heads) runs: ``"grid"`` (``roi_align_grid`` here, the default once
    torchvision is completed), torchvision's Python RoIAlign ``"compiled"`` (torchvision's own choice:
    ``torch.compile`` on first use, seconds per new shape family on a CPU, and a C++ compiler needed) or
    ``"eager"`` (the same function uncompiled). A torchvision with its extension is not touched."""
    one_of("roi_align", mode, ROI_ALIGN_MODES)
    tv = import_torchvision()
    if not tv.extension._has_ops():
        _install_roi_align(mode)


def _install_roi_align(mode: str) -> None:
    module = sys.modules["torchvision.ops.roi_align"]
    _state.setdefault("roi_align", module._roi_align)  # torchvision's own (compiles on first call)
    original = _state["roi_align"]
    module._roi_align = {"grid": roi_align_grid, "eager": original.__wrapped__, "compiled": original}[mode]
    _state["roi_align_mode"] = mode


def kernels() -> dict[str, str]:
    """Which implementation runs each operator detection reaches, for reports (imports torchvision)."""
    tv = import_torchvision()
    if tv.extension._has_ops():
        return {"nms": "torchvision C++", "roi_align": "torchvision C++"}
    mode = _state["roi_align_mode"]
    roi_align = "hybridvision (grid_sample)" if mode == "grid" else f"torchvision's Python fallback ({mode})"
    return {"nms": "hybridvision (pure torch)", "roi_align": roi_align}


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
    _install_roi_align("grid")
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


def roi_align_grid(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """RoIAlign (average): (N, C, H, W) maps, (K, 5) RoIs (image index, x1, y1, x2, y2) -> (K, C, pooled_height,
    pooled_width); torchvision's ``_roi_align`` signature and its C++ kernel's semantics. Maps of at most
    ``MATMUL_MAX_PIXELS`` pixels are pooled by matmuls with each axis's bilinear weights, larger ones by bilinear
    ``grid_sample``.

    Every bin averages a grid of samples, ``sampling_ratio`` per side, or ``ceil(roi side / bins)`` per side when
    ``sampling_ratio <= 0`` (RoIs with the same grid are pooled together, one call per grid). ``spatial_scale``
    maps RoI coordinates to the map's; ``aligned`` shifts them by half a pixel, and without it a RoI is at least
    one pixel wide and high. A sample more than a pixel outside the map counts as 0 (as in torchvision's C++
    kernel; its Python fallback reads the edge there), a nearer one reads the edge. The gradient reaches
    ``input`` (through ``grid_sample``), not the RoIs, as with the C++ kernel. Half-precision maps are sampled in
    float32.
    """
    n, c, h, w = input.shape
    dtype = input.dtype if input.dtype in (torch.float32, torch.float64) else torch.float32
    rois = rois.detach().to(dtype)
    offset = 0.5 if aligned else 0.0
    start = rois[:, 1:3] * spatial_scale - offset  # (K, 2): x, y in map pixels
    size = rois[:, 3:5] * spatial_scale - offset - start
    if not aligned:
        size = size.clamp(min=1.0)
    bin_size = size / torch.tensor([pooled_width, pooled_height], dtype=dtype, device=rois.device)  # (K, 2)
    pooled = (pooled_height, pooled_width)
    if h * w <= MATMUL_MAX_PIXELS:
        pool = partial(_pool_matmul, input.to(dtype))
    else:
        padded = nn.functional.pad(input.to(dtype), (0, 0, 0, 1))  # a zero row under each map: (N, C, H + 1, W)
        pool = partial(_pool, padded.transpose(0, 1).reshape(1, c, n * (h + 1), w), (h, w))  # (1, C, N*(H+1), W)
    if sampling_ratio > 0 and len(rois):
        return pool((rois[:, 0].long(), start, bin_size), pooled, [sampling_ratio] * 2).to(input.dtype)
    grids = torch.ceil(bin_size).long()  # (K, 2): samples per bin along x, y
    out = input.new_zeros((rois.shape[0], c, *pooled), dtype=dtype)
    for grid in grids.unique(dim=0).tolist():
        if min(grid) <= 0:  # an empty RoI (aligned): no samples, its bins stay 0
            continue
        picked = (grids == grids.new_tensor(grid)).all(1).nonzero().flatten()
        where = (rois[picked, 0].long(), start[picked], bin_size[picked])
        out = out.index_copy(0, picked, pool(where, pooled, grid))
    return out.to(input.dtype)


def _pool(
    tall: Tensor, size: tuple[int, int], where: tuple[Tensor, Tensor, Tensor], pooled: tuple[int, int], grid: list
) -> Tensor:
    """The bins of K RoIs sampled ``grid`` = [x, y] times per bin side, from the stacked maps (1, C, N * (H + 1), W)
    of maps of ``size`` (H, W); ``where``: image index (K,), start and bin size (K, 2) in map pixels (x, y)."""
    (h, w), (ph, pw), (gx, gy) = size, pooled, grid
    image, start, bin_size = where
    y = _samples(start[:, 1], bin_size[:, 1], ph, gy, h)  # (K, PH * gy) rows of the RoI's own map
    x = _samples(start[:, 0], bin_size[:, 0], pw, gx, w)  # (K, PW * gx)
    y = torch.where(y >= 0, y + image[:, None] * (h + 1), y)  # rows of the tall map (-2 stays outside)
    rows = (2 * y + 1) / tall.shape[2] - 1  # grid_sample's coordinates (align_corners=False): -1..1 over the map
    cols = (2 * x + 1) / w - 1
    k = len(image)
    shape = (k, ph * gy, pw * gx)
    coords = torch.stack([cols[:, None, :].expand(shape), rows[:, :, None].expand(shape)], -1)  # (K, PH*gy, PW*gx, 2)
    sampled = nn.functional.grid_sample(
        tall, coords.reshape(1, k * ph * gy, pw * gx, 2), mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (1, C, K * PH * gy, PW * gx)
    means = nn.functional.avg_pool2d(sampled, (gy, gx))  # (1, C, K * PH, PW): each bin's samples averaged
    return means.view(-1, k, ph, pw).transpose(0, 1)  # (1, C, K * PH, PW) -> (K, C, PH, PW)


def _pool_matmul(maps: Tensor, where: tuple[Tensor, Tensor, Tensor], pooled: tuple[int, int], grid: list) -> Tensor:
    """``_pool`` as ``Wy @ map @ Wx^T`` per RoI, from the maps (N, C, H, W) themselves: a bilinear sample's weight
    on pixel (i, j) is wy[i] * wx[j], so a bin's mean over its grid of samples is the product of each axis's mean
    weights. Forward and backward are matmuls, two per image, over the RoIs of that image."""
    _, _, h, w = maps.shape
    (ph, pw), (gx, gy) = pooled, grid
    image, start, bin_size = where
    wy = _axis_weights(_samples(start[:, 1], bin_size[:, 1], ph, gy, h), ph, h)  # (K, PH, H)
    wx = _axis_weights(_samples(start[:, 0], bin_size[:, 0], pw, gx, w), pw, w)  # (K, PW, W)
    order = torch.argsort(image, stable=True)  # the RoIs image by image
    counts = torch.bincount(image, minlength=maps.shape[0]).tolist()
    parts = []
    for n, picked in enumerate(order.split(counts)):
        if len(picked):
            cols = torch.einsum("chw,kpw->kchp", maps[n], wx[picked])  # (K_n, C, H, PW)
            parts.append(torch.einsum("kqh,kchp->kcqp", wy[picked], cols))  # (K_n, C, PH, PW)
    return torch.cat(parts).index_select(0, torch.argsort(order))  # back to the RoIs' order


def _axis_weights(pos: Tensor, bins: int, extent: int) -> Tensor:
    """(K, bins * per_bin) sample coordinates from ``_samples`` -> (K, bins, extent): each bin's mean bilinear
    weight on each pixel of the axis (a sample at -2, outside the map, weighs nothing)."""
    k = pos.shape[0]
    pos_in = pos.clamp(min=0)  # outside samples (-2) read pixel 0 with weight 0 below
    low = pos_in.floor()
    frac = pos_in - low
    inside = (pos >= 0).to(pos.dtype)
    weights = pos.new_zeros((k, pos.shape[1], extent))
    weights.scatter_add_(2, low.long()[..., None], ((1 - frac) * inside)[..., None])
    weights.scatter_add_(2, (low + 1).clamp(max=extent - 1).long()[..., None], (frac * inside)[..., None])
    return weights.view(k, bins, -1, extent).mean(2)  # (K, bins * per_bin, E) -> (K, bins, per_bin, E) -> mean


def _samples(start: Tensor, bin_size: Tensor, bins: int, per_bin: int, extent: int) -> Tensor:
    """Sample coordinates along one axis: ``per_bin`` evenly spaced in each of a RoI's ``bins``, (K,) -> (K, bins *
    per_bin); clamped into [0, extent - 1] (the edge is read), or -2 (outside the map, read as 0) when more than a
    pixel outside it."""
    steps = (torch.arange(bins * per_bin, dtype=start.dtype, device=start.device) + 0.5) / per_bin  # in bins
    pos = start[:, None] + steps * bin_size[:, None]
    outside = (pos < -1) | (pos > extent)
    return torch.where(outside, -2.0, pos.clamp(0, extent - 1))
