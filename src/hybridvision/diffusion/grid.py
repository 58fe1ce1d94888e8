"""Sample grids: uint8 images tiled row by row, written (atomically, through PIL) as the file name says: PNG, JPEG..."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..data.images import save_image


def make_grid(images: Tensor, nrow: int = 0, pad: int = 2, fill: int = 255) -> Tensor:
    """uint8 (N, C, H, W) -> one uint8 (C, rows * (H + pad) + pad, nrow * (W + pad) + pad) image.

    ``nrow`` images per row (0: a near-square grid); gaps and unfilled cells take ``fill``.
    """
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / nrow))
    grid = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), fill, dtype=torch.uint8)
    for i, img in enumerate(images):
        top, left = pad + (i // nrow) * (h + pad), pad + (i % nrow) * (w + pad)
        grid[:, top : top + h, left : left + w] = img
    return grid


def class_rows(images: Tensor, labels: Tensor, num_classes: int, per_class: int) -> Tensor:
    """The first ``per_class`` images of each class, class after class (blank where a class has fewer)."""
    blank = torch.full_like(images[:1], 255)
    out = []
    for k in range(num_classes):
        mine = images[labels == k][:per_class]
        out += [mine, blank.expand(per_class - len(mine), -1, -1, -1)]
    return torch.cat(out)  # (num_classes * per_class, C, H, W)


def save_grid(
    grid: Tensor, path: str | Path, scale: int = 2, row_labels: Sequence[str] | None = None, pad: int = 2
) -> Path:
    """Write a uint8 (C, H, W) grid (C = 1 or 3) in the format ``path``'s suffix names (.png, .jpg ...), upscaled
    ``scale`` times (nearest) for viewing; with ``row_labels``, each row's label (e.g. its prompt) is written to
    its left."""
    from PIL import Image

    path = Path(path)
    array = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2).permute(1, 2, 0).numpy()  # (H, W, C)
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    if row_labels:
        image = _label_rows(image, row_labels, pad * scale)
    save_image(image, path)
    return path


def _label_rows(image, labels: Sequence[str], pad: int):
    """A copy of ``image`` with a white margin on the left holding one label per row, centred on the row."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(image)
    width = int(max(draw.textlength(t, font=font) for t in labels)) + 2 * pad + 4
    out = Image.new(image.mode, (image.width + width, image.height), 255 if image.mode == "L" else (255, 255, 255))
    out.paste(image, (width, 0))
    draw, row_h = ImageDraw.Draw(out), (image.height - pad) / len(labels)
    for i, text in enumerate(labels):
        draw.text((pad, pad / 2 + row_h * (i + 0.5) - 7), text, fill=0, font=font)  # about centred on the row
    return out
