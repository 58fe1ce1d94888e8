"""Classification data: Fashion-MNIST idx files and image folders as uint8 batches of (images, labels).

Images stay uint8 until the batch reaches the training device, where ``augment`` turns them into float.
Reading files is ``hybridvision.data``'s job; the sample order is the engine's (``engine.order``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..data import FASHION_MNIST_CLASSES, decode_image, fit_size, list_folder, load_idx_split
from .config import DataConfig


class FolderBatches(torch.utils.data.Dataset):
    """Decodes one batch of folder images per item (index = a list of sample indices); bad files are skipped."""

    def __init__(self, items: list[tuple[Path, int]], size: int, channels: int) -> None:
        self.items, self.size, self.channels = items, size, channels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, indices: list[int]) -> tuple[Tensor, Tensor, list[str]]:
        images, labels, skipped = [], [], []
        for i in indices:
            path, label = self.items[i]
            img = decode_image(path, self.size, self.channels)
            if img is None:
                skipped.append(str(path))
            else:
                images.append(img)
                labels.append(label)
        if not images:
            empty = torch.empty(0, self.channels, self.size, self.size, dtype=torch.uint8)
            return empty, torch.empty(0, dtype=torch.long), skipped
        return torch.stack(images), torch.tensor(labels), skipped  # (B, C, H, W) uint8, (B,), unreadable files


# ---- Data sets as a whole


@dataclass
class Split:
    """One split: uint8 images in memory (idx) or a folder decoded per batch."""

    classes: list[str]  # class names; a label is an index into this list
    size: int
    images: Tensor | None = None  # (N, C, H, W) uint8, already at the training size
    labels: Tensor | None = None
    folder: FolderBatches | None = None
    workers: int = 0

    def __len__(self) -> int:
        return len(self.labels) if self.labels is not None else len(self.folder)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def batches(self, index_lists: list[list[int]]) -> Iterator[tuple[Tensor, Tensor, list[str]]]:
        """(uint8 images, labels, unreadable files) for each list of sample indices."""
        if self.folder is None:
            for idx in index_lists:
                t = torch.as_tensor(idx, dtype=torch.long)
                yield self.images[t], self.labels[t], []
            return
        loader = torch.utils.data.DataLoader(
            self.folder, batch_size=None, sampler=index_lists, num_workers=self.workers, persistent_workers=False
        )
        yield from loader


def load_split(cfg: DataConfig, split: str, size: int, subset: int = 0, classes: list[str] | None = None) -> Split:
    """A split of the configured data set at training size ``size``.

    ``classes``: the training split's class names, so an evaluation folder is indexed like it (a class the
    training split lacks is an error; one it has and this split lacks is fine).
    """
    if cfg.dataset == "fashion_mnist":
        images, labels = load_idx_split(cfg.root, split)
        if subset:
            images, labels = images[:subset], labels[:subset]
        if cfg.channels != 1:
            images = images.expand(-1, cfg.channels, -1, -1)  # grey -> C identical channels
        return Split(list(FASHION_MNIST_CLASSES), size, fit_size(images, size).contiguous(), labels)
    items, names = list_folder(Path(cfg.root) / split, classes)
    if subset:
        items = items[:subset]
    load = max(cfg.load_size, size)  # decoded larger, the batch crop (random or central) brings it to ``size``
    return Split(names, size, folder=FolderBatches(items, load, cfg.channels), workers=cfg.workers)
