"""Data: Fashion-MNIST idx files and image folders as uint8 batches, in an order that resumes exactly.

Images stay uint8 until the batch reaches the training device, where ``augment`` turns them into float.
The order of an epoch is a pure function of (seed, epoch), and a global batch is cut into micro-batches the
same way whatever the process count, so a resumed, a 1-process and an N-process run see the same samples.
"""

from __future__ import annotations

import gzip
import logging
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import DataConfig

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """Missing or malformed data; the message says how to get or fix it."""


# ---- idx files (MNIST / Fashion-MNIST)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (optionally gzipped) into an array of its stored shape and type."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read idx file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an idx file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{path} is truncated or padded: {len(data)} bytes, header says {expected}")
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)


def _idx_file(root: Path, split: str, kind: str) -> Path:
    for name in (f"{split}-{kind}-ubyte.gz", f"{split}-{kind}-ubyte", f"{split}-{kind}.idx"):
        if (root / name).is_file():
            return root / name
    raise DataError(
        f"no {split}-{kind}-ubyte[.gz] in {root}. Install Fashion-MNIST with "
        "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files go to "
        "/usr/share/datasets/fashion-mnist), or pass --data.root DIR with the four idx files."
    )


def load_idx_split(root: str | Path, split: str) -> tuple[Tensor, Tensor]:
    """uint8 images (N, 1, H, W) and int64 labels (N,) of one idx split."""
    root = Path(root)
    if not root.is_dir():
        _idx_file(root, split, "images-idx3")  # raises the install hint
    images = read_idx(_idx_file(root, split, "images-idx3"))
    labels = read_idx(_idx_file(root, split, "labels-idx1"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{root}/{split}: {images.shape} images do not pair with {labels.shape} labels")
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))  # (N, 1, H, W)


# ---- Image folders


def list_folder(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, class index) pairs of ``root/<class>/*`` in sorted order, and the class names."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; expected {root}/<class name>/<image files>")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root} has no class sub-folders; expected {root}/<class name>/<image files>")
    items = [
        (f, i)
        for i, c in enumerate(classes)
        for f in sorted((root / c).rglob("*"))
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise DataError(f"{root} has no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    return items, classes


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
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        warnings.warn(f"skipping unreadable image {path}: {e}", stacklevel=2)
        return None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)


class FolderBatches(torch.utils.data.Dataset):
    """Decodes one batch of folder images per item (index = a list of sample indices); bad files are skipped."""

    def __init__(self, items: list[tuple[Path, int]], size: int, channels: int) -> None:
        self.items, self.size, self.channels = items, size, channels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, indices: list[int]) -> tuple[Tensor, Tensor, int]:
        images, labels = [], []
        for i in indices:
            path, label = self.items[i]
            img = decode_image(path, self.size, self.channels)
            if img is not None:
                images.append(img)
                labels.append(label)
        skipped = len(indices) - len(images)
        if not images:
            empty = torch.empty(0, self.channels, self.size, self.size, dtype=torch.uint8)
            return empty, torch.empty(0, dtype=torch.long), skipped
        return torch.stack(images), torch.tensor(labels), skipped  # (B, C, H, W) uint8, (B,), skipped


# ---- Data sets as a whole


@dataclass
class Split:
    """One split: uint8 images in memory (idx) or a folder decoded per batch."""

    num_classes: int
    size: int
    images: Tensor | None = None  # (N, C, H, W) uint8, already at the training size
    labels: Tensor | None = None
    folder: FolderBatches | None = None
    workers: int = 0

    def __len__(self) -> int:
        return len(self.labels) if self.labels is not None else len(self.folder)

    def batches(self, index_lists: list[list[int]]) -> Iterator[tuple[Tensor, Tensor, int]]:
        """(uint8 images, labels, skipped count) for each list of sample indices."""
        if self.folder is None:
            for idx in index_lists:
                t = torch.as_tensor(idx, dtype=torch.long)
                yield self.images[t], self.labels[t], 0
            return
        loader = torch.utils.data.DataLoader(
            self.folder, batch_size=None, sampler=index_lists, num_workers=self.workers, persistent_workers=False
        )
        yield from loader


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


def load_split(cfg: DataConfig, split: str, size: int, subset: int = 0) -> Split:
    """A split of the configured data set at training size ``size``."""
    if cfg.dataset == "fashion_mnist":
        images, labels = load_idx_split(cfg.root, split)
        if subset:
            images, labels = images[:subset], labels[:subset]
        if cfg.channels != 1:
            images = images.expand(-1, cfg.channels, -1, -1)  # grey -> C identical channels
        return Split(10, size, fit_size(images, size).contiguous(), labels)
    items, classes = list_folder(Path(cfg.root) / split)
    if subset:
        items = items[:subset]
    load = max(cfg.load_size, size)  # decoded larger, the batch crop (random or central) brings it to ``size``
    return Split(len(classes), size, folder=FolderBatches(items, load, cfg.channels), workers=cfg.workers)


# ---- Order: resumable, identical for any number of processes


def epoch_order(num_samples: int, seed: int, epoch: int) -> Tensor:
    """The sample order of one epoch: a permutation fixed by (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_samples, generator=g)


def steps_per_epoch(num_samples: int, batch_size: int) -> int:
    """Optimizer steps per epoch; the last incomplete batch is dropped (as timm does for training)."""
    steps = num_samples // batch_size
    if steps == 0:
        raise DataError(f"the training split has {num_samples} images, fewer than one batch of {batch_size}")
    return steps


def micro_batches(order: Tensor, step: int, batch_size: int, chunks: int) -> list[list[int]]:
    """The global batch of ``step`` cut into ``chunks`` equal micro-batches (chunk k goes to one process/micro-step)."""
    if batch_size % chunks:
        raise DataError(
            f"batch_size {batch_size} does not split into {chunks} equal micro-batches "
            "(processes x optim.accum_steps); choose a batch size divisible by it"
        )
    idx = order[step * batch_size : (step + 1) * batch_size]
    return [c.tolist() for c in idx.view(chunks, -1)]  # (batch,) -> (chunks, batch / chunks)


def eval_batches(num_samples: int, batch_size: int, rank: int, world: int) -> list[list[int]]:
    """This process's share of the evaluation set, in order, in batches (every sample exactly once overall)."""
    mine = list(range(rank, num_samples, world))
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
