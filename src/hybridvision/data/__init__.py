"""Reading data sets from disk: idx files (Fashion-MNIST) and image folders. Tasks build their batches on top."""

from .idx import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    DataError,
    load_idx_split,
    read_idx,
)
from .images import IMAGE_SUFFIXES, decode_image, fit_size, image_files, list_folder

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "IMAGE_SUFFIXES",
    "DataError",
    "decode_image",
    "fit_size",
    "image_files",
    "list_folder",
    "load_idx_split",
    "read_idx",
]
