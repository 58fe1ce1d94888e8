"""Image folders (``root/<class>/<images>``) and decoding one image to a fixed size."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..fileio import atomic_write
from .idx import DataError

IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}  # suffix: PIL format
IMAGE_SUFFIXES = tuple(IMAGE_FORMATS)  # the files read as images


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


def image_files(paths: Sequence[str | Path], skip: Path | None = None) -> list[Path]:
    """The images named, or found (sorted, recursively) in the folders named; each once, in order given.

    Files under ``skip`` (the output folder, when it lies inside an input folder) are not inputs.
    """
    out: dict[Path, None] = {}
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            out |= dict.fromkeys(f for f in found if skip is None or not f.absolute().is_relative_to(skip.absolute()))
        elif p.is_file():
            out[p] = None
        else:
            raise FileNotFoundError(f"{p} does not exist; pass image files or folders of images")
    if not out:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return list(out)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


class ImageError(DataError):
    """An image file that cannot be decoded; the message names the file."""


SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # PIL's 16/32-bit integer grey modes (16-bit PNGs, TIFFs)


def open_image(path: str | Path, channels: int):
    """The image at ``path`` as a loaded PIL image in "L" (``channels`` = 1) or "RGB" (3), whatever its kind.

    16-bit grey is scaled to 8 bits (PIL's own conversion clips it: nearly every pixel would be white); palette
    images (with transparency), 1-bit, CMYK and images with alpha are converted by PIL (alpha is dropped).
    Raises ``ImageError`` naming the file when it cannot be decoded: truncated, not an image, a decompression bomb.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return _eight_bit(img).convert("L" if channels == 1 else "RGB")
    except decode_errors() as e:
        raise unreadable(path, e) from None


def decode_errors() -> tuple[type[BaseException], ...]:
    """What PIL raises for a file it cannot decode (``UnidentifiedImageError`` is an OSError)."""
    from PIL import Image

    return OSError, ValueError, SyntaxError, Image.DecompressionBombError


def unreadable(path: str | Path, error: BaseException) -> ImageError:
    """The one-line error for an image file PIL could not decode, naming the file and what to do."""
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return ImageError(f"{path} is not an image file PIL can read; remove it or convert it (PNG, JPEG)")
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ImageError(f"{path} cannot be read ({reason}); replace the file or remove it")


def _eight_bit(img):
    """16-bit (and 32-bit integer) grey as 8-bit grey, by the 16-bit range (v / 257); palette images as RGBA."""
    from PIL import Image

    if img.mode in SIXTEEN_BIT:
        values = np.clip(np.asarray(img, dtype=np.float32), 0, 65535)  # (H, W)
        return Image.fromarray(np.round(values / 257).astype(np.uint8))  # mode "L"
    if img.mode in ("P", "PA"):
        return img.convert("RGBA")  # keeps a transparent palette entry's colour instead of warning
    return img


def read_image(path: str | Path, channels: int) -> np.ndarray:
    """An image file as (H, W, C) uint8, grey (C = 1) or RGB (C = 3), at its own size (``open_image``'s rules)."""
    arr = np.asarray(open_image(path, channels))
    return arr.reshape(arr.shape[0], arr.shape[1], -1)  # (H, W) or (H, W, C) -> (H, W, C)


def decode_image(path: Path, size: int, channels: int) -> Tensor | None:
    """uint8 (C, size, size): shorter side resized to ``size``, centre crop. None when unreadable (warned)."""
    from PIL import Image

    try:
        img = open_image(path, channels)
    except ImageError as e:
        warnings.warn(f"skipping unreadable image: {e}", stacklevel=2)
        return None
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
    left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.uint8).reshape(size, size, channels)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)


def image_format(path: str | Path) -> str:
    """PIL's format name for writing an image at ``path``, from its suffix (one of ``IMAGE_SUFFIXES``).

    Raises ValueError naming the suffixes understood, so a file is never written in a format its name denies.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        given = f"suffix {suffix!r}" if suffix else "no suffix"
        raise ValueError(f"{path} has {given}; name the image file with one of {', '.join(IMAGE_SUFFIXES)}")
    return IMAGE_FORMATS[suffix]


def save_image(image, path: str | Path) -> None:
    """Write a PIL image atomically in the format its suffix names (lossy formats at quality 95)."""
    fmt = image_format(path)
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    atomic_write(path, lambda tmp: image.save(tmp, format=fmt, **options))


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
