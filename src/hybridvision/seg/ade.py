"""ADE20K's folder layout (``images/<split>/*.jpg`` with ``annotations/<split>/*.png``), read without mmcv.

Annotations are single-channel label PNGs; with mmseg's ``reduce_zero_label`` label 0 ("other") becomes 255
(ignored) and label k becomes class k - 1. Images keep their own size; a batch is padded to its largest image
(masks with 255) and carries every image's size, so augmentation and evaluation see only real pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data import IMAGE_SUFFIXES, DataError, ImageError, read_image
from ..data.images import SIXTEEN_BIT, decode_errors, unreadable
from ..data.scenes import IGNORE

# mmseg's ADE20KDataset order: class k is annotation value k + 1.
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip


def class_names(num_classes: int) -> tuple[str, ...]:
    """ADE20K's names for its 150 classes; numbered names for another class count."""
    return ADE20K_CLASSES if num_classes == len(ADE20K_CLASSES) else tuple(f"class_{i}" for i in range(num_classes))


def list_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(image, annotation) pairs of ``root/images/<split>`` and ``root/annotations/<split>``, sorted by name."""
    images, annotations = Path(root) / "images" / split, Path(root) / "annotations" / split
    for folder in (images, annotations):
        if not folder.is_dir():
            raise DataError(
                f"{folder} does not exist; an ADE20K-style data set has images/{split}/*.jpg and "
                f"annotations/{split}/*.png under --data.root (e.g. ADEChallengeData2016)"
            )
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{images} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    pairs = [(p, annotations / f"{p.stem}.png") for p in files]
    missing = [a for _, a in pairs if not a.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) of {images} have no annotation, e.g. {missing[0]} is missing; every "
            "images/<split>/<name>.jpg needs annotations/<split>/<name>.png"
        )
    return pairs


def reduce_zero_label(mask: np.ndarray) -> np.ndarray:
    """mmseg's reduce_zero_label: 0 -> 255 (ignore), k -> k - 1, 255 stays 255."""
    out = mask.astype(np.int16) - 1
    out[(mask == 0) | (mask == IGNORE)] = IGNORE
    return out.astype(np.uint8)


def read_mask(path: Path, num_classes: int, reduce_zero: bool) -> np.ndarray:
    """A label PNG as (H, W) uint8 class indices (255 = ignore); out-of-range labels are an error."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            mode, mask = img.mode, np.asarray(img)
    except decode_errors() as e:
        raise unreadable(path, e) from None
    if mode not in ("L", "P", *SIXTEEN_BIT):
        raise DataError(f"{path} is a {mode} image; annotations must be single-channel label PNGs")
    if mask.max(initial=0) > 255:
        raise DataError(f"{path} holds label {mask.max()}: labels must fit 0..255 (255 = ignore)")
    mask = mask.astype(np.uint8)
    mask = reduce_zero_label(mask) if reduce_zero else mask
    bad = mask[(mask != IGNORE) & (mask >= num_classes)]
    if bad.size:
        shift = " after reduce_zero_label (k -> k - 1)" if reduce_zero else ""
        raise DataError(
            f"{path} holds label {int(bad.max())}, out of range for {num_classes} classes{shift}; "
            "255 is ignore. Set data.num_classes to the data set's class count, or fix the annotation"
        )
    return mask


def read_pair(image: Path, annotation: Path, channels: int, num_classes: int, reduce_zero: bool) -> tuple | None:
    """uint8 image (C, H, W) and mask (H, W), or None when the image cannot be decoded (skipped, warned)."""
    try:
        arr = read_image(image, channels)
    except ImageError as e:
        warnings.warn(f"skipping unreadable image: {e}", stacklevel=2)
        return None
    mask = read_mask(annotation, num_classes, reduce_zero)
    if mask.shape != arr.shape[:2]:
        raise DataError(
            f"{annotation} is {mask.shape[1]}x{mask.shape[0]} but its image {image} is "
            f"{arr.shape[1]}x{arr.shape[0]} (width x height); a mask must have its image's size"
        )
    return torch.from_numpy(arr.copy()).permute(2, 0, 1), torch.from_numpy(mask)  # (H, W, C) -> (C, H, W)


def pad_batch(pairs: list[tuple[Tensor, Tensor]], channels: int) -> tuple[Tensor, Tensor, Tensor]:
    """Images (B, C, H, W) zero-padded and masks (B, H, W) 255-padded to the largest, with each (h, w)."""
    if not pairs:  # every file of the batch was unreadable
        images, masks = torch.empty(0, channels, 1, 1, dtype=torch.uint8), torch.empty(0, 1, 1, dtype=torch.uint8)
        return images, masks, torch.empty(0, 2, dtype=torch.long)
    sizes = torch.tensor([list(m.shape) for _, m in pairs])  # (B, 2)
    h, w = sizes.amax(0).tolist()
    images = torch.zeros(len(pairs), channels, h, w, dtype=torch.uint8)
    masks = torch.full((len(pairs), h, w), IGNORE, dtype=torch.uint8)
    for i, (img, mask) in enumerate(pairs):
        images[i, :, : img.shape[1], : img.shape[2]] = img
        masks[i, : mask.shape[0], : mask.shape[1]] = mask
    return images, masks, sizes


class PairBatches(torch.utils.data.Dataset):
    """Decodes one batch of (image, annotation) pairs per item (index = a list of pair indices)."""

    def __init__(self, pairs: list[tuple[Path, Path]], channels: int, num_classes: int, reduce_zero: bool) -> None:
        self.pairs, self.channels, self.num_classes, self.reduce_zero = pairs, channels, num_classes, reduce_zero

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor, list[str]]:
        decoded, skipped = [], []
        for i in indices:
            image, annotation = self.pairs[i]
            pair = read_pair(image, annotation, self.channels, self.num_classes, self.reduce_zero)
            if pair is None:
                skipped.append(str(image))
            else:
                decoded.append(pair)
        return (*pad_batch(decoded, self.channels), skipped)
