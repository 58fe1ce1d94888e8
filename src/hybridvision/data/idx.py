"""idx files (MNIST / Fashion-MNIST layout), optionally gzipped, and where Debian puts Fashion-MNIST."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)  # fmt: skip  (label order of the idx files)
FASHION_MNIST_MEAN = (0.2860,)  # of the training images' pixels on [0, 1]
FASHION_MNIST_STD = (0.3530,)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """Missing or malformed data; the message says how to get or fix it."""


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
