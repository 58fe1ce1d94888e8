"""Batched augmentation: shapes, ranges, determinism under a seed, and what each op does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridvision.classify.augment import Augment, mix_batch, random_crop_flip, random_erasing, smooth_targets
from hybridvision.classify.config import AugConfig
from hybridvision.classify.randaugment import OPS, equalize, geometric_theta, rand_augment


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b: int = 16, c: int = 1, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (b, c, size, size), generator=gen(123), dtype=torch.uint8)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 32])
def test_pipeline_shapes_and_determinism(channels, size):
    cfg = AugConfig(crop="rrc", mixup_alpha=0.8, cutmix_alpha=1.0)
    aug = Augment(cfg, (0.5,) * channels, (0.25,) * channels, num_classes=10)
    x, labels = images(16, channels, size), torch.arange(16) % 10
    out1, t1 = aug(x, labels, gen(5))
    out2, t2 = aug(x, labels, gen(5))
    out3, _ = aug(x, labels, gen(6))
    assert out1.shape == (16, channels, size, size) and out1.dtype == torch.float32
    assert torch.equal(out1, out2) and torch.equal(t1, t2) and not torch.equal(out1, out3)
    assert t1.shape == (16, 10) and torch.allclose(t1.sum(1), torch.ones(16))


@pytest.mark.parametrize("op", OPS)
def test_every_randaugment_op(op):
    x = images(8, 3).float() / 255 * 0.6 + 0.2  # low contrast, so autocontrast has work to do
    out = rand_augment(x, 1, 9.0, 0.5, (op,), 0.0, gen())
    assert out.shape == x.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert torch.equal(out, rand_augment(x, 1, 9.0, 0.5, (op,), 0.0, gen()))
    if op == "identity":
        assert torch.equal(out, x)
    else:
        assert not torch.equal(out, x), f"{op} left every image unchanged"
    with pytest.raises(ValueError, match="unknown RandAugment op"):
        rand_augment(x, 1, 9.0, 0.5, ("wobble",), 0.0, gen())


def test_magnitude_zero_is_identity_for_blends_and_geometry():
    x = images(8, 3).float() / 255
    for op in ("rotate", "shear_x", "translate_y", "brightness", "contrast", "color", "sharpness"):
        out = rand_augment(x, 1, 0.0, 0.0, (op,), 0.0, gen())
        torch.testing.assert_close(out, x, atol=1e-5, rtol=0, msg=op)


def test_equalize_matches_pil():
    from PIL import Image, ImageOps

    x = (torch.rand(2, 1, 32, 32, generator=gen()) ** 2 * 200).round() / 255  # skewed histogram
    ours = (equalize(x, torch.zeros(2)) * 255).round().to(torch.uint8)
    for i in range(2):
        ref = ImageOps.equalize(Image.fromarray((x[i, 0] * 255).round().byte().numpy()))
        assert np.array_equal(ours[i, 0].numpy(), np.asarray(ref))


def test_flip_and_shift_are_exact():
    x = images(4).float()
    flipped = random_crop_flip(x, AugConfig(crop="none", hflip=1.0), gen())
    assert torch.equal(flipped, x.flip(-1))
    shifted = random_crop_flip(x, AugConfig(crop="shift", shift_px=3, hflip=0.0), gen())
    for i in range(4):  # every image is a whole-pixel translate of its source, with a zero border
        found = any(
            torch.equal(torch.roll(x[i], (dy, dx), (1, 2))[:, 3:-3, 3:-3], shifted[i, :, 3:-3, 3:-3])
            for dy in range(-3, 4)
            for dx in range(-3, 4)
        )
        assert found


def test_rrc_scale_and_rotation_matrix():
    x = torch.ones(64, 1, 32, 32)
    out = random_crop_flip(x, AugConfig(crop="rrc", crop_scale=(0.3, 0.3), hflip=0.0), gen())
    torch.testing.assert_close(out, x)  # a crop inside the image never reaches the border fill
    theta = geometric_theta(["rotate"], torch.zeros(1, dtype=torch.long), torch.ones(1), torch.ones(1), (32, 32))
    assert torch.allclose(theta[0, :, :2].det(), torch.tensor(1.0)) and abs(float(theta[0, 1, 0]) - 0.5) < 1e-6


def test_random_erasing_boxes():
    x = torch.zeros(32, 1, 32, 32)
    out = random_erasing(x, 1.0, (0.1, 0.1), gen())
    changed = (out != 0).flatten(1).sum(1).float() / (32 * 32)
    assert ((changed > 0.05) & (changed < 0.15)).all()  # ~10% of each image, as asked
    assert torch.equal(random_erasing(x, 0.0, (0.1, 0.1), gen()), x)


def test_mixing_targets_and_label_smoothing():
    soft = smooth_targets(torch.tensor([2, 0]), 4, 0.1)
    assert torch.allclose(soft[0], torch.tensor([0.025, 0.025, 0.925, 0.025]))
    x = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    for cfg in (AugConfig(mixup_alpha=1.0), AugConfig(cutmix_alpha=1.0)):
        mixed, t = mix_batch(x, soft, cfg, gen(3))
        assert torch.allclose(t.sum(1), torch.ones(2))
        share = float(mixed[0].mean())  # image 0 is zeros: the pasted share of image 1 equals its target weight
        assert abs(float(t[0, 0]) - (0.025 + 0.9 * share)) < 1e-5


def test_loss_uses_label_smoothing():
    aug = Augment(AugConfig(label_smoothing=0.1), (0.5,), (0.5,), 3)
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    torch.testing.assert_close(aug.loss(logits, labels), expected)
    torch.testing.assert_close(aug.loss(logits, smooth_targets(labels, 3, 0.1)), expected)


def test_crops_from_larger_decoded_images():
    x = images(4, 3, 40)
    aug = Augment(AugConfig(crop="rrc", randaug_n=0, erase_prob=0.0), (0.0,) * 3, (1.0,) * 3, 10, size=32)
    out, _ = aug(x, torch.arange(4), gen())
    assert out.shape == (4, 3, 32, 32)
    assert torch.equal(aug.normalize(x), x[:, :, 4:36, 4:36].float() / 255)  # evaluation: the centre
    shift = Augment(AugConfig(crop="shift", randaug_n=0, erase_prob=0.0), (0.0,) * 3, (1.0,) * 3, 10, size=32)
    assert shift(x, torch.arange(4), gen())[0].shape == (4, 3, 32, 32)
