"""Small data sets written to disk for training tests: idx files (Fashion-MNIST layout) and image folders."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """An idx file of a uint8 array (magic 0x08, big-endian dims), gzipped when ``compress``."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(data)
    return path


def class_images(n: int, seed: int, size: int = 28, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Learnable grey images: class k is a bright bar at a class-specific place and angle, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size] / size
    images = rng.integers(0, 60, (n, size, size)).astype(np.float32)
    for k in range(classes):
        angle = np.pi * k / classes
        band = np.abs((yy - 0.5) * np.cos(angle) - (xx - 0.5) * np.sin(angle)) < 0.08
        images[labels == k] += 180 * band
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_fmnist_like(root: Path, train: int = 256, test: int = 128) -> Path:
    """``root`` with train-/t10k- image and label idx files (gzipped), like Debian's Fashion-MNIST."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = class_images(n, seed)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def write_image_folder(root: Path, per_class: int = 4, classes: int = 3, size: int = 20) -> Path:
    """``root/train/<class>/*.png|jpg`` and ``root/val/...`` of small RGB images."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)
                suffix = ".png" if i % 2 else ".jpg"
                Image.fromarray(arr).save(folder / f"img_{i}{suffix}")
    return root
