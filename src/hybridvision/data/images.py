"""Image folders (``root/<class>/<images>``) and decoding one image to a fixed size."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .idx import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_folder(root: str | Path, classes: Sequence[str] | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, class index) pairs of ``root/<class>/*`` in sorted order, and the class names.

    ``classes`` fixes the class list (and so the indices), e.g. a validation split indexed like its training
    split: a folder it lacks keeps the others' indices, a folder it does not name is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; expected {root}/<class name>/<image files>")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not found:
        raise DataError(f"{root} has no class sub-folders; expected {root}/<class name>/<image files>")
    unknown = sorted(set(found) - set(classes)) if classes is not None else []
    if unknown:
        raise DataError(
            f"{root} has class folder(s) {unknown} that the training split does not have (its classes: "
            f"{', '.join(classes)}); remove them or add them to the training split"
        )
    classes = list(classes) if classes is not None else found
    items = [
        (f, classes.index(c))
        for c in found
        for f in sorted((root / c).rglob("*"))
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise DataError(f"{root} has no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    return items, classes


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """The images named, or found (sorted, recursively) in the folders named."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist; pass image files or folders of images")
    if not out:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return out


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def decode_image(path: Path, size: int, channels: int) -> Tensor | None:
    """uint8 (C, size, size): shorter side resized to ``size``, centre crop. None when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            w, h = img.size
            s = size / min(w, h)
            img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
            left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
            img = img.crop((left, top, left + size, top + size))
            arr = np.asarray(img, dtype=np.uint8).reshape(size, size, channels)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        warnings.warn(f"skipping unreadable image {path}: {e}", stacklevel=2)
        return None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)


def fit_size(images: Tensor, size: int) -> Tensor:
    """uint8 (N, C, h, w) -> (N, C, size, size): zero-pad when smaller (Fashion-MNIST 28 -> 32), else resize."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if h <= size and w <= size:
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(images, (left, size - w - left, top, size - h - top))  # (N, C, size, size)
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)  # (N, C, size, size)
