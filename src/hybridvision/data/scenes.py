"""Fashion-MNIST scenes: a segmentation data set generated from the Fashion-MNIST items, deterministic and fast.

Each scene is a square canvas with a few items placed on it (item, size and position drawn from a seed); items
are drawn in order, so a later item covers an earlier one where its ink is. A pixel's label is the class of
the item whose ink (above ``threshold``) it shows, background (0) elsewhere; optionally the one-pixel ring
each side of every label edge is ignored (255). Three splits, as the detection scenes have them (one
definition, ``scene_items``): ``train`` scenes take their items from the training items less ``holdout`` of them
(drawn with ``seed``), ``val`` scenes from those held-out items only, ``test`` scenes from the test items; so
settings can be chosen on ``val`` and the test split scored once. Nothing is written to disk: a scene is
rendered from a small table of its parameters, drawn once per split, whenever a batch asks for it (every item
of a batch resampled by two batched matmuls).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import at_least, check
from .idx import FASHION_MNIST_CLASSES, DataError, load_idx_split

IGNORE = 255
SCENE_CLASSES = ("background", *FASHION_MNIST_CLASSES)
SCENE_SPLITS = {"train": 0, "val": 2, "test": 1}  # split -> the stream that seeds its scene table
LEGACY_SPLITS = {"t10k": "test"}  # the idx prefix older configs name the test split by


@dataclass(frozen=True)
class SceneConfig:
    """How Fashion-MNIST scenes are made."""

    canvas: int = 64  # side of the square scene, pixels
    items: tuple[int, int] = (2, 5)  # items per scene (min, max)
    scale: tuple[float, float] = (0.7, 1.6)  # item side / 28 pixels (min, max)
    threshold: int = 40  # ink (0..255) above which a pixel belongs to its item
    edge_ignore: bool = False  # label the one-pixel ring each side of every label edge 255 (ignored)
    train_scenes: int = 60000  # scenes in the training split (made from the training items less the held-out ones)
    eval_scenes: int = 2000  # scenes in the test split (made from the 10k test items)
    val_scenes: int = 2000  # scenes in the validation split (made from the held-out training items)
    holdout: int = 5000  # training items kept for the validation scenes only, never drawn into training scenes
    seed: int = 0  # the scene tables' and the hold-out's seed (every split's table differs)

    def __post_init__(self) -> None:
        lo, hi = self.items
        check(1 <= lo <= hi, f"data.scenes.items must be (min, max) with 1 <= min <= max, got {self.items}")
        check(
            0 < self.scale[0] <= self.scale[1] and self.scale[1] * 28 <= self.canvas,
            f"data.scenes.scale must be (min, max) with 0 < min <= max and max * 28 <= canvas "
            f"({self.canvas}), got {self.scale}",
        )
        check(0 <= self.threshold < 255, f"data.scenes.threshold must be in [0, 255), got {self.threshold}")
        at_least(self, 1, "train_scenes", "eval_scenes", "val_scenes", "holdout", prefix="data.scenes.")


@dataclass(frozen=True)
class SceneTable:
    """The parameters of every scene of a split: which items, how many, where, how large (drawing order = slot)."""

    items: Tensor  # (N, K) indices into the split's items
    active: Tensor  # (N, K) bool: slot k holds an item
    side: Tensor  # (N, K) item side, pixels
    top_left: Tensor  # (N, K, 2) item box corner (y, x), pixels

    def __len__(self) -> int:
        return self.items.shape[0]


def scene_table(cfg: SceneConfig, count: int, num_items: int, stream: int) -> SceneTable:
    """``count`` scenes drawing from ``num_items`` items; ``stream`` separates the splits' tables."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + stream)
    lo, hi = cfg.items
    slots = torch.arange(hi)
    n_items = torch.randint(lo, hi + 1, (count, 1), generator=g)
    items = torch.randint(0, num_items, (count, hi), generator=g)
    side = 28 * (cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * torch.rand(count, hi, generator=g))
    top_left = torch.rand(count, hi, 2, generator=g) * (cfg.canvas - side)[..., None]  # boxes inside the canvas
    return SceneTable(items, slots < n_items, side, top_left)


@dataclass(frozen=True)
class SplitItems:
    """The Fashion-MNIST items one split of scenes draws from, and how many scenes it has."""

    images: Tensor  # (N, 1, 28, 28) uint8
    labels: Tensor  # (N,)
    scenes: int  # scenes in the split
    stream: int  # seeds the split's scene table


def scene_split_name(split: str) -> str:
    """``split`` as one of ``SCENE_SPLITS`` ("t10k", the test items' idx prefix, names the test split)."""
    name = LEGACY_SPLITS.get(split, split)
    if name not in SCENE_SPLITS:
        raise DataError(f"the scenes have no split {split!r}; use one of {', '.join(SCENE_SPLITS)}")
    return name


def scene_items(root: str, split: str, cfg: SceneConfig) -> SplitItems:
    """The items of scenes split ``split`` (``train``, ``val`` or ``test``) from the idx files under ``root``."""
    name = scene_split_name(split)
    if name == "test":
        images, labels = load_idx_split(root, "t10k")
        return SplitItems(images, labels, cfg.eval_scenes, SCENE_SPLITS[name])
    images, labels = load_idx_split(root, "train")
    if cfg.holdout >= len(images):
        raise DataError(
            f"data.scenes.holdout ({cfg.holdout}) must be fewer than the {len(images)} training items under {root}; "
            "lower it"
        )
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(cfg.seed))
    keep = (perm[: cfg.holdout] if name == "val" else perm[cfg.holdout :]).sort().values
    count = cfg.val_scenes if name == "val" else cfg.train_scenes
    return SplitItems(images[keep], labels[keep], count, SCENE_SPLITS[name])


def _interp_matrix(side: Tensor, start: Tensor, canvas: int, size: int = 28) -> Tensor:
    """Bilinear resampling along one axis as a matrix: (M, canvas, size), zero outside the item (its box).

    Row i holds the weights of item pixels for canvas pixel i: a triangle kernel at the item coordinate of the
    pixel's centre (align_corners=False), so ``R_y @ item @ R_x^T`` places an item like ``grid_sample`` with
    zero padding would, as two batched matmuls.
    """
    centers = torch.arange(canvas, dtype=torch.float32) + 0.5
    pos = (centers[None, :] - start[:, None]) / side[:, None] * size - 0.5  # (M, canvas) item coordinates
    taps = torch.arange(size, dtype=torch.float32)
    return (1 - (pos[:, :, None] - taps).abs()).clamp_min(0)  # (M, canvas) -> (M, canvas, size)


def edge_ring(labels: Tensor) -> Tensor:
    """Pixels whose 3x3 neighbourhood holds another label: (B, H, W) -> bool (B, H, W)."""
    x = labels[:, None].float()  # (B, H, W) -> (B, 1, H, W)
    high = F.max_pool2d(x, 3, stride=1, padding=1)
    low = -F.max_pool2d(-x, 3, stride=1, padding=1)
    return (high != low)[:, 0]  # (B, 1, H, W) -> (B, H, W)


def item_ink(cfg: SceneConfig, table: SceneTable, images: Tensor, index: Tensor) -> Tensor:
    """Every slot of scenes ``index`` drawn alone on the canvas, before any covering: float (B, K, C, C).

    ``images`` (N, 1, 28, 28) uint8 are the split's items; empty slots are zero.
    """
    b, k, c = len(index), table.items.shape[1], cfg.canvas
    items = table.items[index].reshape(-1)  # (B, K) -> (B * K,)
    side, corner = table.side[index].reshape(-1), table.top_left[index].reshape(-1, 2)  # (B * K,), (B * K, 2)
    rows, cols = _interp_matrix(side, corner[:, 0], c), _interp_matrix(side, corner[:, 1], c)
    ink = rows @ images[items, 0].float() @ cols.transpose(1, 2)  # (M, C, 28) @ (M, 28, 28) @ (M, 28, C)
    ink = ink.view(b, k, c, c)  # (B * K, C, C) -> (B, K, C, C)
    return ink * table.active[index][..., None, None]  # empty slots draw nothing


def covered(ink: Tensor, threshold: int) -> Tensor:
    """Where a later slot's solid ink covers each slot: ``item_ink``'s (B, K, C, C) -> bool (B, K, C, C)."""
    solid = (ink > threshold).flip(1).cumsum(1).flip(1) > 0  # solid in this slot or a later one
    return F.pad(solid[:, 1:], (0, 0, 0, 0, 0, 1))  # shifted by one slot: later ones only; the last is never covered


def owners(ink: Tensor, threshold: int) -> Tensor:
    """The slot whose label each pixel shows, as ``render`` draws it: (B, K, C, C) -> bool (B, K, C, C),
    at most one slot per pixel, none on background."""
    return (ink > threshold) & ~covered(ink, threshold)


def visible_share(ink: Tensor, threshold: int) -> Tensor:
    """The share of each slot's solid ink that no later slot covers: (B, K, C, C) -> (B, K), 0 for empty slots."""
    solid = ink > threshold
    return (solid & ~covered(ink, threshold)).flatten(2).sum(2) / solid.flatten(2).sum(2).clamp(min=1)


def paint(own: Tensor, classes: Tensor) -> Tensor:
    """A label map with each owned pixel painted 1 + its slot's class, 0 elsewhere:
    ``own`` (B, K, C, C) bool from ``owners``, ``classes`` (B, K) -> (B, C, C)."""
    return (own * (classes + 1)[..., None, None]).sum(1)


def render(cfg: SceneConfig, table: SceneTable, images: Tensor, labels: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Scenes ``index`` of ``table`` from the split's items: uint8 images (B, 1, C, C) and masks (B, C, C).

    ``images`` (N, 1, 28, 28) uint8 and ``labels`` (N,) are the split's items; mask values are 0 (background),
    1 + the item's class, or 255 at ignored edges.
    """
    b, k, c = len(index), table.items.shape[1], cfg.canvas
    ink = item_ink(cfg, table, images, index)
    classes = labels[table.items[index]] + 1  # (B, K)
    canvas = torch.zeros(b, c, c)
    mask = torch.zeros(b, c, c, dtype=torch.long)
    for slot in range(k):  # drawing order: a later item covers an earlier one where its ink is
        layer = ink[:, slot]
        solid = layer > cfg.threshold
        canvas = torch.where(solid, layer, torch.maximum(canvas, layer))  # faint rims blend, ink covers
        mask = torch.where(solid, classes[:, slot, None, None], mask)
    if cfg.edge_ignore:
        mask = mask.masked_fill(edge_ring(mask), IGNORE)
    image = canvas.round().clamp(0, 255).to(torch.uint8)[:, None]  # (B, C, C) -> (B, 1, C, C)
    return image, mask.to(torch.uint8)
