"""RoIAlign by ``grid_sample`` (``vision_ops.roi_align_grid``), the default where torchvision's extension is missing:
values and gradients against torchvision's Python RoIAlign and against a slow reference written sample by sample
here, and the detector's box and mask heads running it."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
import torch

from hybridvision import vision_ops

if importlib.util.find_spec("torchvision") is None:
    pytest.skip("torchvision is not installed (the det extra)", allow_module_level=True)

tv = vision_ops.import_torchvision()
needs_completion = pytest.mark.skipif(not vision_ops.completed(), reason="torchvision's own kernels run here")


@pytest.fixture(params=["matmul", "grid_sample"])
def kernel(request, monkeypatch):
    """Each of ``roi_align_grid``'s two ways, on these small maps: matmuls (its way on maps of up to
    ``MATMUL_MAX_PIXELS``) and ``grid_sample`` (on larger ones)."""
    monkeypatch.setattr(vision_ops, "MATMUL_MAX_PIXELS", 10**9 if request.param == "matmul" else 0)
    return request.param


def reference_roi_align(x, rois, scale, out_h, out_w, ratio, aligned):
    """RoIAlign written out bin by bin and sample by sample in float64, the rules of torchvision's C++ kernel: a
    sample more than a pixel outside the map is 0, a nearer one reads the clamped edge."""
    _, c, h, w = x.shape
    x = x.double()
    out = torch.zeros(len(rois), c, out_h, out_w, dtype=torch.float64)
    for k, (b, x1, y1, x2, y2) in enumerate(rois.double().tolist()):
        off = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = x1 * scale - off, y1 * scale - off, x2 * scale - off, y2 * scale - off
        rw, rh = (x2 - x1, y2 - y1) if aligned else (max(x2 - x1, 1.0), max(y2 - y1, 1.0))
        bh, bw = rh / out_h, rw / out_w
        gy = ratio if ratio > 0 else math.ceil(rh / out_h)
        gx = ratio if ratio > 0 else math.ceil(rw / out_w)
        for i in range(out_h):
            for j in range(out_w):
                total = torch.zeros(c, dtype=torch.float64)
                for iy in range(gy):
                    for ix in range(gx):
                        y = y1 + i * bh + (iy + 0.5) * bh / gy
                        xx = x1 + j * bw + (ix + 0.5) * bw / gx
                        total += _bilinear(x[int(b)], y, xx)
                out[k, :, i, j] = total / max(gy * gx, 1)
    return out


def _bilinear(m, y, x):
    _, h, w = m.shape
    if y < -1 or y > h or x < -1 or x > w:
        return torch.zeros(m.shape[0], dtype=m.dtype)
    y, x = min(max(y, 0.0), h - 1), min(max(x, 0.0), w - 1)
    y0, x0 = int(y), int(x)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return (
        m[:, y0, x0] * (1 - ly) * (1 - lx)
        + m[:, y0, x1] * (1 - ly) * lx
        + m[:, y1, x0] * ly * (1 - lx)
        + m[:, y1, x1] * ly * lx
    )


def random_rois(k, images, h, w, gen, margin, dtype=torch.float64):
    """(K, 5) RoIs in map pixels over ``images`` maps of h x w: a quarter tiny (under a tenth of a pixel), the rest
    up to the map's size, reaching up to ``margin`` pixels past the first and the last pixel (a RoI of less than a
    pixel, which ``aligned=False`` widens to one, too)."""
    last = torch.tensor([w, h], dtype=dtype) - 1  # the last pixel's coordinates
    corner = torch.rand(k, 2, generator=gen, dtype=dtype) * (last + 2 * margin - 1) - margin
    size = torch.rand(k, 2, generator=gen, dtype=dtype) * (last + 1)
    size[: k // 4] *= 0.01
    index = torch.randint(0, images, (k, 1), generator=gen).to(dtype)
    return torch.cat([index, corner, torch.minimum(corner + size, last + margin)], 1)


def pooled(mode, x, rois, **kwargs):
    """``torchvision.ops.roi_align`` with the RoIAlign ``mode`` installed: output and the gradient of a weighted
    sum of it."""
    vision_ops.set_roi_align(mode)
    x = x.clone().requires_grad_()
    out = tv.ops.roi_align(x, rois, **kwargs)
    weights = torch.linspace(-1, 2, out.numel(), dtype=out.dtype).view(out.shape)
    (out * weights).sum().backward()
    vision_ops.set_roi_align("grid")
    return out.detach(), x.grad


@needs_completion
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("ratio", [0, 2])
def test_grid_matches_torchvisions_python_roi_align(dtype, aligned, ratio, kernel):
    """Three images, RoIs partly outside the maps (by up to a pixel, where both read the edge), tiny RoIs,
    non-square bins and a spatial scale: values and input gradients agree."""
    gen = torch.Generator().manual_seed(int(aligned) * 2 + ratio)
    x = torch.randn(3, 4, 11, 9, generator=gen, dtype=dtype)
    rois = random_rois(48, 3, 11, 9, gen, margin=1.0, dtype=dtype)
    rois[:, 1:] = (rois[:, 1:] + (0.5 if aligned else 0.0)) * 2  # image pixels, twice the map's (spatial scale)
    kwargs = dict(output_size=(5, 4), spatial_scale=0.5, sampling_ratio=ratio, aligned=aligned)
    ours, ours_grad = pooled("grid", x, rois, **kwargs)
    theirs, their_grad = pooled("eager", x, rois, **kwargs)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-10)
    assert ours.dtype == dtype and ours.shape == (48, 4, 5, 4)
    torch.testing.assert_close(ours, theirs, **tol)
    torch.testing.assert_close(ours_grad, their_grad, **tol)
    assert ours.abs().sum() > 0 and ours_grad.abs().sum() > 0


@needs_completion
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("ratio", [0, 1, 3])
def test_grid_matches_a_slow_reference_far_outside_the_maps_too(aligned, ratio, kernel):
    """RoIs reaching several pixels past the maps: samples more than a pixel outside count as 0 (torchvision's C++
    kernel; its Python fallback reads the edge there instead)."""
    gen = torch.Generator().manual_seed(10 + ratio)
    x = torch.randn(2, 3, 6, 7, generator=gen, dtype=torch.float64)
    rois = random_rois(24, 2, 6, 7, gen, margin=5.0)
    rois[:, 1:] += 0.5 if aligned else 0.0
    rois[0] = torch.tensor([1.0, -12.0, -12.0, -4.0, -4.0])  # wholly outside: every bin 0
    ours = vision_ops.roi_align_grid(x, rois, 1.0, 3, 2, ratio, aligned)
    torch.testing.assert_close(ours, reference_roi_align(x, rois, 1.0, 3, 2, ratio, aligned), atol=1e-10, rtol=1e-10)
    assert ours[0].abs().max() == 0 and ours[1:].abs().sum() > 0


@needs_completion
def test_grid_edge_cases(kernel):
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    none = vision_ops.roi_align_grid(x, torch.zeros(0, 5), 1.0, 2, 2, 2, False)
    assert none.shape == (0, 3, 2, 2)
    empty = torch.tensor([[0.0, 2, 2, 2, 2], [1.0, 3, 1, 1, 3]])  # no area, and inverted: adaptive takes no sample
    assert vision_ops.roi_align_grid(x, empty, 1.0, 2, 2, 0, True).abs().max() == 0
    rois = torch.tensor([[1.0, 0.5, 0.5, 4.0, 3.0]], requires_grad=True)
    half = vision_ops.roi_align_grid(x.bfloat16(), rois, 1.0, 2, 2, 2, False)
    full = vision_ops.roi_align_grid(x.requires_grad_(), rois, 1.0, 2, 2, 2, False)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), full, atol=0.05, rtol=0.02)
    full.sum().backward()
    assert rois.grad is None and x.grad[1].sum() == pytest.approx(12.0)  # 3 channels x 4 bins; the boxes get none
    assert x.grad[0].abs().max() == 0  # the other image's map is not read


@needs_completion
def test_grid_is_the_default_and_reported():
    """Completing torchvision installs the grid RoIAlign; ``set_roi_align`` swaps it and ``kernels`` says which."""
    module = sys.modules["torchvision.ops.roi_align"]
    assert module._roi_align is vision_ops.roi_align_grid
    assert vision_ops.kernels()["roi_align"] == "hybridvision (grid_sample)"
    vision_ops.set_roi_align("eager")
    try:
        assert module._roi_align is not vision_ops.roi_align_grid
        assert vision_ops.kernels()["roi_align"] == "torchvision's Python fallback (eager)"
    finally:
        vision_ops.set_roi_align("grid")


@needs_completion
def test_the_detectors_box_and_mask_heads_pool_through_it(monkeypatch):
    """A training step of a Mask R-CNN pools RoIs through the grid RoIAlign: 7x7 for the box head, 14x14 for the
    mask head (both through ``MultiScaleRoIAlign``), 28x28 for the mask targets; gradients reach the FPN."""
    from hybridvision.det.model import DetectorConfig, DetModel, DetModelConfig

    sizes = []

    def counting(input, rois, scale, out_h, out_w, ratio, aligned):
        sizes.append((out_h, out_w, ratio, aligned))
        return vision_ops.roi_align_grid(input, rois, scale, out_h, out_w, ratio, aligned)

    monkeypatch.setattr(sys.modules["torchvision.ops.roi_align"], "_roi_align", counting)
    torch.manual_seed(0)
    detector = DetectorConfig(fpn_channels=16, rpn_top_n=(50, 20), box_samples=16, detections=20)
    model = DetModel(DetModelConfig(backbone="ascan_test", detector=detector)).train()
    images = [torch.rand(1, 64, 64) for _ in range(2)]
    boxes = torch.tensor([[4.0, 6.0, 30.0, 28.0], [34.0, 30.0, 60.0, 62.0]])
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 6:28, 4:30] = masks[1, 30:62, 34:60] = 1
    targets = [{"boxes": boxes, "labels": torch.tensor([1, 2]), "masks": masks}] * 2
    losses = model(images, targets)
    sum(losses.values()).backward()
    # the heads' pooling, and the mask targets (the ground-truth masks cut to 28x28, adaptive sampling)
    assert set(sizes) == {(7, 7, 2, False), (14, 14, 2, False), (28, 28, -1, False)}
    assert losses["loss_mask"] > 0
    assert model.detector.backbone.fpn.layer_blocks[0][0].weight.grad.abs().sum() > 0
