"""Real images for int8 calibration and for scoring the quantized model, never the same images for both.

``--calib fashion-mnist`` calibrates on Fashion-MNIST's training images and checks on its test images (t10k);
``--calib DIR`` (an image folder, flat or with one sub-folder per class) shuffles the files once with a fixed seed,
calibrates on the first ones and checks on the next ones. Images are brought to the model's input: grey images
repeated to RGB for 3-channel models, colour converted to grey for 1-channel ones, then resized/padded and
cropped as the artifact's ``Preprocess`` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    image_files,
    list_folder,
    load_idx_split,
)
from .artifact import Preprocess, prepare, preprocess_image

FASHION_MNIST = "fashion-mnist"


@dataclass(frozen=True)
class ImageSet:
    """uint8 images at the model's input size, with labels where the source has classes the model was trained on."""

    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray | None  # (N,) int64 indices into the model's labels; None: no comparable labels

    def inputs(self, spec: Preprocess) -> np.ndarray:
        """The normalised float32 batch the model takes."""
        return spec.normalize(self.images)


def calibration_and_check(
    source: str, spec: Preprocess, labels: tuple[str, ...], calib_count: int, check_count: int, seed: int = 0
) -> tuple[ImageSet, ImageSet]:
    """(calibration images, held-out check images) from ``source``; the two never share an image."""
    if source.replace("_", "-").lower() == FASHION_MNIST:
        return _fashion_mnist(spec, labels, calib_count, check_count, seed)
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(
            f"--calib {source}: not an image folder; pass 'fashion-mnist' or a folder of images (any depth)"
        )
    return _folder(root, spec, labels, calib_count, check_count, seed)


def _fashion_mnist(spec: Preprocess, labels: tuple[str, ...], calib: int, check: int, seed: int):
    comparable = tuple(labels) == FASHION_MNIST_CLASSES
    out = []
    for split, count in (("train", calib), ("t10k", check)):
        images, y = load_idx_split(FASHION_MNIST_DIR, split)
        pick = np.random.default_rng(seed).permutation(len(images))[:count]
        batch = adapt(images[torch.from_numpy(pick)].numpy(), spec)
        out.append(ImageSet(batch, y.numpy()[pick] if comparable else None))
    return out[0], out[1]


def _folder(root: Path, spec: Preprocess, labels: tuple[str, ...], calib: int, check: int, seed: int):
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if classes and set(classes) <= set(labels):
        pairs, _ = list_folder(root, classes)
        files, y = [p for p, _ in pairs], np.array([labels.index(classes[i]) for _, i in pairs])
    else:
        files, y = image_files([root]), None
    if len(files) < 2:
        raise ValueError(f"--calib {root}: found {len(files)} image(s); calibration and the check need at least 2")
    order = np.random.default_rng(seed).permutation(len(files))
    calib = min(calib, len(files) - 1)  # the check keeps at least one image
    parts = (order[:calib], order[calib : calib + check])
    sets = []
    for part in parts:
        batch = np.stack([preprocess_image(files[i], spec) for i in part])  # (N, C, H, W)
        sets.append(ImageSet(batch, y[part] if y is not None else None))
    return sets[0], sets[1]


def adapt(images: np.ndarray, spec: Preprocess) -> np.ndarray:
    """uint8 (N, c, h, w) from a data set -> (N, C, H, W) for the model: channels adapted, then sized like
    ``preprocess_image`` does (through Pillow, one image at a time, so calibration sees what deployment sees)."""
    from PIL import Image

    out = []
    for img in images:
        mode = "L" if img.shape[0] == 1 else "RGB"
        pil = Image.fromarray(img[0] if mode == "L" else img.transpose(1, 2, 0), mode)
        out.append(prepare(pil.convert("L" if spec.channels == 1 else "RGB"), spec))
    return np.stack(out)  # (N, C, H, W)


def card_preprocess(model, labels: tuple[str, ...]) -> Preprocess:
    """The preprocessing a model's card states (``pretrained_cfg``: mean/std, interpolation, crop), at its input size;
    a 1-channel model with Fashion-MNIST's classes gets Fashion-MNIST's statistics and padding (how it is trained
    here), and a card's RGB statistics on a grey model become their channel averages."""
    channels, size = model.config.in_chans, tuple(model.config.img_hw)
    if channels == 1 and tuple(labels) == FASHION_MNIST_CLASSES:
        return Preprocess(size, 1, FASHION_MNIST_MEAN, FASHION_MNIST_STD, "bilinear", "pad")
    cfg = model.pretrained_cfg
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if len(mean) != channels:
        mean, std = (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels
    crop = float(cfg.get("crop_pct", 1.0))
    return Preprocess(size, channels, mean, std, cfg.get("interpolation", "bicubic"), "shorter_side", crop)


def numbered_labels(count: int) -> tuple[str, ...]:
    """Labels of a model without named classes: class_0, class_1, ..."""
    return tuple(f"class_{i}" for i in range(count))
