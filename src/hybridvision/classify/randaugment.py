"""RandAugment (Cubuk et al., 2020) on whole batches: each image draws its own ops and magnitudes.

Magnitudes use timm's 0..10 scale and its "increasing" op variants (a larger magnitude is always a stronger
change), with Gaussian magnitude noise (``mstd``). Geometric ops of every image are folded into one affine
matrix and resampled once per layer; colour ops run on the subset of images that drew them. Images are float
(B, C, H, W) on [0, 1]; grey images are handled (colour = identity on one channel).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import RANDAUG_OPS

GEOMETRIC = RANDAUG_OPS[:5]  # folded into one affine resample
OPS = RANDAUG_OPS


def affine_sample(
    x: Tensor,
    theta: Tensor,
    fill: float = 0.0,
    mode: str = "bilinear",
    padding: str = "fill",
    out_size: tuple[int, int] | None = None,
) -> Tensor:
    """Resample ``x`` (B, C, H, W) through per-sample output->input maps ``theta`` (B, 2, 3), normalised coords.

    ``padding``: "fill" brings in ``fill`` outside the image; "border" repeats edge pixels (crops inside the image).
    ``out_size``: the output's (H, W) (default: the input's).
    """
    shape = [*x.shape[:2], *(out_size or x.shape[-2:])]
    grid = F.affine_grid(theta.to(x.device, x.dtype), shape, align_corners=False)  # (B, H_out, W_out, 2)
    if padding == "border":
        return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
    if fill == 0.0:
        return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return F.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros", align_corners=False) + fill


def _blend(degenerate: Tensor, x: Tensor, factor: Tensor) -> Tensor:
    """PIL ImageEnhance: degenerate + factor * (x - degenerate), clipped; ``factor`` is (b,)."""
    return (degenerate + factor.view(-1, 1, 1, 1) * (x - degenerate)).clamp_(0.0, 1.0)  # (b,) -> (b, 1, 1, 1)


def _grey(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R 601-2 luma, as PIL's "L"
    return (x * w).sum(1, keepdim=True)  # (b, 3, H, W) -> (b, 1, H, W)


def _levels(x: Tensor) -> Tensor:
    return (x * 255.0).round_().clamp_(0, 255)


def autocontrast(x: Tensor, level: Tensor) -> Tensor:
    lo = x.amin((2, 3), keepdim=True)  # (b, C, 1, 1)
    hi = x.amax((2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp(min=1e-6), x)


def equalize(x: Tensor, level: Tensor) -> Tensor:
    """PIL's histogram equalisation per image and channel, on 256 levels."""
    b, c, h, w = x.shape
    q = _levels(x).long().view(b, c, h * w)  # (b, C, HW) integer levels
    hist = torch.zeros(b, c, 256, device=x.device).scatter_add_(2, q, torch.ones_like(q, dtype=torch.float))
    last = 255 - (hist.flip(-1) > 0).float().argmax(-1, keepdim=True)  # highest used level, (b, C, 1)
    step = ((h * w - hist.gather(2, last)) / 255).floor()  # (b, C, 1)
    before = hist.cumsum(-1) - hist  # pixels below each level
    lut = ((before + (step / 2).floor()) / step.clamp(min=1)).floor().clamp_(0, 255)  # (b, C, 256)
    lut = torch.where(step > 0, lut, torch.arange(256.0, device=x.device))  # one-level images stay as they are
    return (lut.gather(2, q) / 255.0).view(b, c, h, w)  # (b, C, HW) -> (b, C, H, W)


def invert(x: Tensor, level: Tensor) -> Tensor:
    return 1.0 - x


def posterize(x: Tensor, level: Tensor) -> Tensor:
    bits = (4 - (level * 4).long()).clamp(1, 4)  # keep 4 .. 1 most significant bits
    drop = (2 ** (8 - bits)).view(-1, 1, 1, 1).float()  # (b,) -> (b, 1, 1, 1)
    return (_levels(x) / drop).floor() * drop / 255.0


def solarize(x: Tensor, level: Tensor) -> Tensor:
    threshold = (1.0 - level).view(-1, 1, 1, 1)  # invert pixels above it; level 1 inverts everything
    return torch.where(x >= threshold, 1.0 - x, x)


def solarize_add(x: Tensor, level: Tensor) -> Tensor:
    add = (level * 110 / 255).view(-1, 1, 1, 1)
    return torch.where(x < 128 / 255, (x + add).clamp(max=1.0), x)


def color(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    return _blend(_grey(x), x, 1.0 + sign * level * 0.9)


def contrast(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    mean = _grey(x).mean((1, 2, 3), keepdim=True)  # (b, 1, 1, 1)
    return _blend(mean, x, 1.0 + sign * level * 0.9)


def brightness(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    return _blend(torch.zeros_like(x), x, 1.0 + sign * level * 0.9)


def sharpness(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    """PIL's SMOOTH kernel (centre 5, ring 1, /13) as the degenerate image; the border keeps its pixels."""
    c = x.shape[1]
    k = x.new_ones(3, 3)
    k[1, 1] = 5.0
    kernel = (k / 13.0).expand(c, 1, 3, 3)  # depthwise (C, 1, 3, 3)
    smooth = x.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(x, kernel, groups=c)  # (b, C, H-2, W-2) interior
    return _blend(smooth, x, 1.0 + sign * level * 0.9)


_UNSIGNED: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "identity": lambda x, level: x,
    "autocontrast": autocontrast,
    "equalize": equalize,
    "invert": invert,
    "posterize": posterize,
    "solarize": solarize,
    "solarize_add": solarize_add,
}
_SIGNED: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "color": color,
    "contrast": contrast,
    "brightness": brightness,
    "sharpness": sharpness,
}


def geometric_theta(ops: list[str], kind: Tensor, level: Tensor, sign: Tensor, size: tuple[int, int]) -> Tensor:
    """Affine output->input maps (B, 2, 3) in normalised coords: rotate 30*l deg, shear 0.3*l, translate 0.45*l."""
    b = kind.shape[0]
    h, w = size
    a = torch.zeros(b, 2, 2)  # pixel-space linear part
    a[:, 0, 0] = a[:, 1, 1] = 1.0
    t = torch.zeros(b, 2)  # translation as a fraction of the image (normalised units / 2)
    s = sign * level
    for i, name in enumerate(ops):
        sel = kind == i
        if name == "rotate":
            ang = s[sel] * math.radians(30.0)
            a[sel] = torch.stack([ang.cos(), -ang.sin(), ang.sin(), ang.cos()], -1).view(-1, 2, 2)
        elif name == "shear_x":
            a[sel, 0, 1] = s[sel] * 0.3
        elif name == "shear_y":
            a[sel, 1, 0] = s[sel] * 0.3
        elif name == "translate_x":
            t[sel, 0] = s[sel] * 0.45 * 2
        elif name == "translate_y":
            t[sel, 1] = s[sel] * 0.45 * 2
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = a[:, 0, 0], a[:, 1, 1]
    theta[:, 0, 1] = a[:, 0, 1] * h / w  # pixel shear -> normalised coordinates
    theta[:, 1, 0] = a[:, 1, 0] * w / h
    theta[:, :, 2] = t
    return theta


def check_ops(ops: tuple[str, ...]) -> None:
    unknown = sorted(set(ops) - set(OPS))
    if unknown:
        raise ValueError(f"unknown RandAugment op(s) {unknown}; choose from {', '.join(OPS)}")


def rand_augment(
    x: Tensor, n: int, magnitude: float, mstd: float, ops: tuple[str, ...], fill: float, gen: torch.Generator
) -> Tensor:
    """Apply ``n`` random ops per image, magnitude ~ N(magnitude, mstd) clipped to [0, 10]."""
    check_ops(ops)
    names = list(ops)
    b = x.shape[0]
    for _ in range(n):
        kind = torch.randint(len(names), (b,), generator=gen)
        level = (magnitude + mstd * torch.randn(b, generator=gen)).clamp(0, 10) / 10
        sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
        geo = torch.tensor([names[k] in GEOMETRIC for k in kind.tolist()], dtype=torch.bool)
        if geo.any():
            idx = geo.nonzero().squeeze(1)
            theta = geometric_theta(names, kind[idx], level[idx], sign[idx], x.shape[-2:])
            x = x.index_copy(0, idx.to(x.device), affine_sample(x[idx.to(x.device)], theta, fill))
        for i, name in enumerate(names):
            if name in GEOMETRIC or name == "identity":
                continue
            idx = (kind == i).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            dev_idx = idx.to(x.device)
            lv, sg = level[idx].to(x.device), sign[idx].to(x.device)
            part = _SIGNED[name](x[dev_idx], lv, sg) if name in _SIGNED else _UNSIGNED[name](x[dev_idx], lv)
            x = x.index_copy(0, dev_idx, part)
    return x
