"""Segmentation splits as uint8 batches of (images, masks, sizes): Fashion-MNIST scenes or ADE20K folders.

A batch is ``images`` (B, C, H, W) uint8, ``masks`` (B, H, W) uint8 (255 = ignore) and ``sizes`` (B, 2): the
real (h, w) of each image inside the padded batch (scenes all have the canvas size). Images stay uint8 until
the batch reaches the training device; the sample order is the engine's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.scenes import SCENE_CLASSES, SceneTable, render, scene_items, scene_table
from .ade import PairBatches, class_names, list_pairs
from .config import SegDataConfig

Batch = tuple[Tensor, Tensor, Tensor, list[str]]  # images, masks, sizes, unreadable files


@dataclass
class SceneSplit:
    """Scenes rendered on demand from a table and the split's Fashion-MNIST items."""

    cfg: SegDataConfig
    table: SceneTable
    items: Tensor  # (N, 1, 28, 28) uint8
    labels: Tensor  # (N,)
    classes: tuple[str, ...] = SCENE_CLASSES

    def __len__(self) -> int:
        return len(self.table)

    def batches(self, index_lists: list[list[int]]) -> Iterator[Batch]:
        side = self.cfg.scenes.canvas
        for idx in index_lists:
            index = torch.as_tensor(idx, dtype=torch.long)
            images, masks = render(self.cfg.scenes, self.table, self.items, self.labels, index)
            images = images.expand(-1, self.cfg.channels, -1, -1)  # grey -> C identical channels
            yield images, masks, torch.tensor([[side, side]]).repeat(len(idx), 1), []


@dataclass
class FolderSplit:
    """ADE20K-style folders, decoded per batch (in ``workers`` processes when asked)."""

    pairs: PairBatches
    classes: tuple[str, ...]
    workers: int = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def batches(self, index_lists: list[list[int]]) -> Iterator[Batch]:
        loader = torch.utils.data.DataLoader(
            self.pairs, batch_size=None, sampler=index_lists, num_workers=self.workers, persistent_workers=False
        )
        yield from loader


def dataset_classes(cfg: SegDataConfig) -> tuple[str, ...]:
    """The class names of the configured data set, without reading it."""
    return SCENE_CLASSES if cfg.dataset == "fmnist_scenes" else class_names(cfg.num_classes or 150)


def load_split(cfg: SegDataConfig, train: bool) -> SceneSplit | FolderSplit:
    """The training (``train``) or evaluation split of the configured data set."""
    split = cfg.train_split if train else cfg.eval_split
    subset = cfg.train_subset if train else cfg.eval_subset
    if cfg.dataset == "fmnist_scenes":
        got = scene_items(cfg.root, split, cfg.scenes)
        table = scene_table(cfg.scenes, min(got.scenes, subset or got.scenes), len(got.images), got.stream)
        return SceneSplit(cfg, table, got.images, got.labels)
    pairs = list_pairs(cfg.root, split)
    pairs = pairs[:subset] if subset else pairs
    classes = dataset_classes(cfg)
    batches = PairBatches(pairs, cfg.channels, len(classes), cfg.reduce_zero_label)
    return FolderSplit(batches, classes, cfg.workers)
