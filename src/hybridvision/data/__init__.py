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
from .images import (
    IMAGE_SUFFIXES,
    ImageError,
    decode_image,
    fit_size,
    image_files,
    list_folder,
    open_image,
    read_image,
)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "IMAGE_SUFFIXES",
    "DataError",
    "ImageError",
    "decode_image",
    "fit_size",
    "image_files",
    "list_folder",
    "load_idx_split",
    "open_image",
    "read_idx",
    "read_image",
]
