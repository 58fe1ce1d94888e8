"""Masks stay aligned with their images under every augmentation: checked on images whose label is a function of
the pixel position (the image's channels hold the position, so every output pixel says where it came from)."""

from __future__ import annotations

import pytest
import torch

from hybridvision.seg.augment import SegAugment
from hybridvision.seg.config import SegAugConfig

K = 5  # classes


def label_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The label at source pixel (x, y): a checkerboard of 8-pixel cells over 5 classes."""
    return (x // 8 + 3 * (y // 8)).long() % K


def position_batch(sizes: list[tuple[int, int]], side: int = 64) -> tuple[torch.Tensor, ...]:
    """uint8 images (B, 3, side, side) holding 4x / 4y in channels 0 / 1, their labels, and the valid sizes;
    images smaller than the batch are padded like ADE20K batches (image 0, mask 255)."""
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    images = torch.zeros(len(sizes), 3, side, side, dtype=torch.uint8)
    masks = torch.full((len(sizes), side, side), 255, dtype=torch.uint8)
    for i, (h, w) in enumerate(sizes):
        images[i, 0, :h, :w], images[i, 1, :h, :w] = 4 * xs[:h, :w], 4 * ys[:h, :w]
        masks[i, :h, :w] = label_of(xs, ys)[:h, :w]
    return images, masks, torch.tensor(sizes)


def augment(cfg: SegAugConfig, crop: int = 48) -> SegAugment:
    return SegAugment(cfg, crop, mean=(0, 0, 0), std=(1 / 255,) * 3, num_classes=K)  # outputs stay raw 0..255


def assert_aligned(x: torch.Tensor, target: torch.Tensor, sizes: torch.Tensor) -> None:
    """Every labelled output pixel carries the label of the source pixel its image value comes from."""
    xs, ys = x[:, 0] / 4, x[:, 1] / 4  # bilinear source coordinates
    rx, ry = xs.round(), ys.round()
    tie_x, tie_y = (xs.frac() - 0.5).abs() < 1e-3, (ys.frac() - 0.5).abs() < 1e-3  # nearest may go either way
    ox, oy = xs.floor() + xs.ceil() - rx, ys.floor() + ys.ceil() - ry
    ok = target == label_of(rx, ry)
    ok |= tie_x & (target == label_of(ox, ry))
    ok |= tie_y & (target == label_of(rx, oy))
    ok |= tie_x & tie_y & (target == label_of(ox, oy))
    kept = target != 255
    assert kept.float().mean() > 0.2, "too little of the crops is labelled to check"
    assert ok[kept].all(), f"{int((~ok & kept).sum())} labelled pixels are misaligned"
    assert (x[:, :2][(~kept)[:, None].expand(-1, 2, -1, -1)] == 0).all()  # padding: the mean, no image
    h, w = sizes[:, 0].view(-1, 1, 1), sizes[:, 1].view(-1, 1, 1)
    assert ((ry < h) & (rx < w))[kept].all()  # nothing read from a neighbour's batch padding


CASES = {
    "shrink": SegAugConfig(ratio=(0.5, 0.5), hflip=0.0, cat_max_ratio=1.0, photometric=False),
    "enlarge": SegAugConfig(ratio=(2.0, 2.0), hflip=0.0, cat_max_ratio=1.0, photometric=False),
    "flip": SegAugConfig(ratio=(1.0, 1.0), hflip=1.0, cat_max_ratio=1.0, photometric=False),
    "class-share crop": SegAugConfig(ratio=(1.3, 1.3), hflip=0.0, cat_max_ratio=0.3, photometric=False),
    "all, fitted to a scale": SegAugConfig(scale=(80, 60), photometric=False),
}


@pytest.mark.parametrize("name", CASES)
def test_masks_stay_aligned(name):
    images, masks, sizes = position_batch([(64, 64), (48, 40), (64, 30), (20, 64)] * 2)
    x, target = augment(CASES[name])(images, masks, sizes, torch.Generator().manual_seed(1))
    assert x.shape == (8, 3, 48, 48) and target.shape == (8, 48, 48) and target.dtype == torch.long
    assert_aligned(x, target, sizes)


def test_flip_mirrors_and_ratio_scales():
    images, masks, sizes = position_batch([(64, 64)])
    flipped, _ = augment(CASES["flip"])(images, masks, sizes, torch.Generator().manual_seed(0))
    assert (flipped[0, 0, :, :-1] > flipped[0, 0, :, 1:]).all()  # x decreases left to right
    big, _ = augment(CASES["enlarge"])(images, masks, sizes, torch.Generator().manual_seed(0))
    assert torch.allclose(big[0, 0, 0, 1:-1] - big[0, 0, 0, :-2], torch.tensor(2.0))  # 2 px per source px


def test_photometric_changes_only_the_image_and_runs_on_colour():
    images, masks, sizes = position_batch([(64, 64)] * 4)
    images[:, 2] = 128  # some colour, so saturation and hue act
    cfg = SegAugConfig(ratio=(0.8, 1.5))
    plain = augment(SegAugConfig(ratio=(0.8, 1.5), photometric=False))(
        images, masks, sizes, torch.Generator().manual_seed(3)
    )
    x, target = augment(cfg)(images, masks, sizes, torch.Generator().manual_seed(3))
    assert torch.equal(target, plain[1]) and not torch.allclose(x, plain[0])
    assert x.min() >= 0 and x.max() <= 255
    again = augment(cfg)(images, masks, sizes, torch.Generator().manual_seed(3))
    assert torch.equal(again[0], x) and torch.equal(again[1], target)  # the generator fixes every draw


def test_class_share_rule_prefers_mixed_crops():
    masks = torch.zeros(32, 64, 64, dtype=torch.uint8)
    masks[:, :, :32] = 1  # two classes, one boundary
    images, sizes = torch.zeros(32, 3, 64, 64, dtype=torch.uint8), torch.tensor([[64, 64]] * 32)

    def mixed_share(max_ratio: float) -> float:
        cfg = SegAugConfig(ratio=(1.0, 1.0), hflip=0.0, photometric=False, cat_max_ratio=max_ratio)
        _, t = augment(cfg, crop=16)(images, masks, sizes, torch.Generator().manual_seed(0))
        ones = (t == 1).flatten(1).float().mean(1)
        return float(((ones > 0.25) & (ones < 0.75)).float().mean())

    assert mixed_share(0.75) > 0.7 > 0.4 > mixed_share(1.0)


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="aug.ratio"):
        SegAugConfig(ratio=(2.0, 0.5))
    with pytest.raises(ValueError, match="aug.cat_max_ratio"):
        SegAugConfig(cat_max_ratio=0.0)
