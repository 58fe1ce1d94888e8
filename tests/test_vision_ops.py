"""torchvision completed where its C extension is missing: the import, nms against a slow reference, RoIAlign's
Python fallback, the timm bridge, and the diffusers guard next to detection in one process (both orders)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from hybridvision import vision_ops

if importlib.util.find_spec("torchvision") is None:
    pytest.skip("torchvision is not installed (the det extra)", allow_module_level=True)

tv = vision_ops.import_torchvision()


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Greedy nms written out box by box: IoU in float32 (as torchvision's CPU kernel), compared in double; equal
    scores keep their input order."""
    b = boxes.numpy().astype(np.float32)
    order = sorted(range(len(b)), key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []
    for i in order:
        x1, y1, x2, y2 = b[i]
        area_i = (x2 - x1) * (y2 - y1)
        for j in kept:
            w = max(np.float32(0), min(x2, b[j, 2]) - max(x1, b[j, 0]))
            h = max(np.float32(0), min(y2, b[j, 3]) - max(y1, b[j, 1]))
            inter = w * h
            area_j = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
            if float(inter / (area_i + area_j - inter)) > threshold:
                break
        else:
            kept.append(i)
    return kept


def random_boxes(n: int, seed: int, grid: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 40
    wh = torch.rand(n, 2, generator=g) * 20 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(n, generator=g)
    if grid:  # integer corners and few score values: exact IoUs and many ties
        boxes, scores = boxes.round(), (scores * 4).floor() / 4
    return boxes, scores


def test_completion_only_where_the_extension_is_missing():
    assert vision_ops.completed() == (not tv.extension._has_ops())
    kernels = vision_ops.kernels()
    assert ("hybridvision" in kernels["nms"]) == vision_ops.completed()


@pytest.mark.parametrize("seed, grid", [(0, False), (1, True), (2, True)])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7])
def test_nms_matches_the_slow_reference(seed, grid, threshold):
    boxes, scores = random_boxes(300, seed, grid)
    assert tv.ops.nms(boxes, scores, threshold).tolist() == reference_nms(boxes, scores, threshold)


def test_nms_across_blocks(monkeypatch):
    """Boxes suppressed by a kept box of an earlier block (blocks of 7 boxes here)."""
    monkeypatch.setattr(vision_ops, "BLOCK", 7)
    boxes, scores = random_boxes(100, 3, grid=True)
    assert vision_ops.nms_kernel(boxes, scores, 0.4).tolist() == reference_nms(boxes, scores, 0.4)


def test_nms_iou_exactly_at_the_threshold_is_kept():
    boxes = torch.tensor([[0.0, 0, 4, 1], [1, 0, 4, 1], [0, 0, 2, 1], [0, 0, 1, 1]])  # IoU 0.75 and 0.5 exactly
    assert tv.ops.nms(boxes[:2], torch.tensor([0.9, 0.8]), 0.75).tolist() == [0, 1]
    assert tv.ops.nms(boxes[:2], torch.tensor([0.9, 0.8]), 0.7499).tolist() == [0]
    assert tv.ops.nms(boxes[2:], torch.tensor([0.8, 0.9]), 0.5).tolist() == [1, 0]  # by decreasing score
    assert tv.ops.nms(boxes[2:], torch.tensor([0.8, 0.9]), 0.4999).tolist() == [1]


def test_nms_ties_keep_input_order_and_empty_input():
    boxes = torch.tensor([[0.0, 0, 2, 2], [0, 0, 2, 2], [10, 10, 12, 12]])
    assert tv.ops.nms(boxes, torch.tensor([0.5, 0.5, 0.5]), 0.5).tolist() == [0, 2]
    empty = tv.ops.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.dtype == torch.int64 and empty.shape == (0,)
    assert tv.ops.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).shape == (0,)


@pytest.mark.parametrize("n", [200, 1500])  # torchvision's coordinate trick below 4000 numbers, per class above
def test_batched_nms_is_nms_per_class(n):
    boxes, scores = random_boxes(n, 4, grid=True)
    classes = torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(5))
    kept = tv.ops.batched_nms(boxes, scores, classes, 0.5).tolist()
    expected = []
    for c in range(5):
        idx = (classes == c).nonzero().flatten()
        expected += [int(idx[i]) for i in reference_nms(boxes[idx], scores[idx], 0.5)]
    assert sorted(kept) == sorted(expected)
    assert [float(s) for s in scores[kept]] == sorted((float(s) for s in scores[kept]), reverse=True)


def test_roi_align_fallback_runs_and_has_a_gradient():
    """RoIAlign keeps torchvision's Python fallback (eager here: no compile in the tests)."""
    vision_ops.set_roi_align("eager")
    x = torch.arange(16.0).view(1, 1, 4, 4).requires_grad_()
    out = tv.ops.roi_align(x, [torch.tensor([[0.0, 0, 4, 4]])], output_size=2, spatial_scale=1.0, sampling_ratio=2)
    # The map 4y + x is linear, so a bin is its samples' mean: samples at 0.5 and 1.5 (bin 0), 2.5 and 3.5 (bin 1),
    # where 3.5 lies past the last pixel and reads it (3): bin means 1 and 2.75 along each axis.
    assert out[0, 0].tolist() == [[5.0, 6.75], [12.0, 13.75]]
    out.sum().backward()
    vision_ops.set_roi_align("grid")
    assert x.grad is not None and x.grad.sum().item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="roi_align must be one of"):
        vision_ops.set_roi_align("fast")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed (the compare extra)")
def test_hybridvision_timm_imports():
    probe = _run("import hybridvision.timm, timm; print(timm.is_model('hybridvision_ascan_nano'))")
    assert probe.returncode == 0 and probe.stdout.strip() == "True", probe.stderr[-2000:]


DETECT = (
    "from hybridvision import vision_ops; tv = vision_ops.import_torchvision(); import torch; "
    "assert tv.ops.nms(torch.tensor([[0., 0, 2, 2], [0, 0, 2, 2]]), torch.tensor([1., .5]), .5).tolist() == [0]"
)
GENERATE = (
    "import sys; from hybridvision.diffusion._diffusers import diffusers; "
    "diffusers().DDPMScheduler(num_train_timesteps=10); "
    "print('hidden' if sys.modules.get('torchvision', 0) is None else 'visible')"
)


@pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="diffusers is not installed")
@pytest.mark.parametrize(
    "first, second, seen",
    [(DETECT, GENERATE, "visible"), (GENERATE, DETECT, "hidden" if vision_ops.completed() else "visible")],
    ids=["det-first", "gen-first"],
)
def test_detection_and_diffusers_in_one_process(first, second, seen):
    """Detection first: diffusers finds the completed torchvision. Generation first: the guard hides the broken
    one from diffusers, and detection still imports it, completed."""
    probe = _run(f"{first}\n{second}\nprint('ok')")
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.split() == [seen, "ok"]
