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

from ..data import decode_image, fit_size, list_folder, load_idx_split
from .config import DataConfig


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
