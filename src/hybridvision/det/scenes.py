"""Fashion-MNIST scenes as instances, written as a COCO folder so the COCO reader (``det.data``) reads them.

Scenes are drawn by the shared generator (``data.scenes``). Every item of a scene is an instance: its mask is
the pixels that show it (its solid ink that no later item covers), its box the tight box of that mask; an item
with less than ``CROWD_SHARE`` of its ink visible is a crowd region (left out of training, ignored by the
evaluation's matching); an item with nothing visible is no annotation. Categories are the ten Fashion-MNIST
classes, ids 1..10.

Splits (``data.scenes.scene_items``, segmentation's too): ``train2017`` from the training items less
``scenes.holdout`` of them (seeded), ``val2017`` from those held-out items only (never drawn into a training
scene), ``test2017`` from the test items. Each annotation file is written last and atomically, so an interrupted
write leaves no split that looks complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import to_dict
from ..data import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, DataError
from ..data.scenes import SceneConfig, SplitItems, item_ink, owners, render, scene_items, scene_table, visible_share
from ..fileio import save_json
from .data import annotation_file

CROWD_SHARE = 0.3  # an item with less of its ink visible is a crowd region
CHUNK = 500  # scenes rendered at once
SPLITS = ("train2017", "val2017", "test2017")  # the splits written


@dataclass(frozen=True)
class ScenesConfig:
    """How the detection scenes are made (the shared generator's settings, and the splits' sizes)."""

    fmnist_root: str = FASHION_MNIST_DIR  # the Fashion-MNIST idx files
    # the shared generator; its hold-out (training items kept for val2017 only) is segmentation's validation split
    scenes: SceneConfig = field(
        default_factory=lambda: SceneConfig(train_scenes=20000, eval_scenes=2000, val_scenes=1000)
    )


COCO_SPLITS = {"train2017": "train", "val2017": "val", "test2017": "test"}  # COCO folder split -> scenes split


def split_items(cfg: ScenesConfig) -> dict[str, SplitItems]:
    """COCO split name -> the items it draws from, its scene count and table stream (``data.scenes``' splits)."""
    return {coco: scene_items(cfg.fmnist_root, split, cfg.scenes) for coco, split in COCO_SPLITS.items()}


def write_scenes(root: str | Path, cfg: ScenesConfig) -> Path:
    """Write the three splits under ``root`` (a split whose annotation file exists is kept); returns ``root``."""
    root = Path(root)
    recorded = root / "scenes.json"
    if root.exists() and not root.is_dir():
        raise DataError(f"--data.root {root} is a file; give a folder for the scenes' COCO files")
    if not recorded.is_file() and any(annotation_file(root, s).is_file() for s in SPLITS):
        raise DataError(
            f"{root} holds COCO annotations not written as scenes (no scenes.json); pass --data.dataset coco to use "
            "them, or choose another --data.root for the scenes"
        )
    wanted = json.loads(json.dumps(to_dict(cfg)))  # as read back (tuples become lists)
    if recorded.is_file() and json.loads(recorded.read_text()) != wanted:
        raise DataError(f"{root} holds scenes made with other settings ({recorded}); choose another --data.root")
    save_json(wanted, recorded)
    for split, got in split_items(cfg).items():
        if not annotation_file(root, split).is_file():
            write_split(root, split, cfg.scenes, got.images, got.labels, got.scenes, got.stream)
    return root


def write_split(root: Path, split: str, cfg: SceneConfig, items: Tensor, labels: Tensor, count: int, stream: int):
    """PNGs ``root/<split>/NNNNNN.png`` and ``root/annotations/instances_<split>.json``."""
    from PIL import Image

    table = scene_table(cfg, count, len(items), stream)
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for start in range(0, count, CHUNK):
        index = torch.arange(start, min(start + CHUNK, count))
        pixels, _ = render(cfg, table, items, labels, index)
        ink = item_ink(cfg, table, items, index)
        shown, share = owners(ink, cfg.threshold), visible_share(ink, cfg.threshold)
        classes = labels[table.items[index]]  # (B, K)
        for b, scene in enumerate(index.tolist()):
            name = f"{scene:06d}.png"
            Image.fromarray(pixels[b, 0].numpy()).save(root / split / name)
            images.append({"id": scene + 1, "file_name": name, "height": cfg.canvas, "width": cfg.canvas})
            active = table.active[scene].tolist()
            for k in (k for k in range(len(active)) if active[k] and shown[b, k].any()):
                ann = instance(shown[b, k], int(classes[b, k]) + 1, float(share[b, k]) < CROWD_SHARE)
                annotations.append({**ann, "id": len(annotations) + 1, "image_id": scene + 1})
    categories = [
        {"id": i + 1, "name": name, "supercategory": "fashion"} for i, name in enumerate(FASHION_MNIST_CLASSES)
    ]
    coco = {"images": images, "annotations": annotations, "categories": categories, "info": {"split": split}}
    path = annotation_file(root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_json(coco, path)


def instance(mask: Tensor, category_id: int, crowd: bool) -> dict:
    """One COCO annotation (without ids) of a bool (H, W) mask: compressed RLE, tight box, area."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))
    ys, xs = mask.nonzero(as_tuple=True)
    x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    return {
        "category_id": category_id,
        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
        "bbox": [x1, y1, x2 - x1, y2 - y1],
        "area": int(mask.sum()),
        "iscrowd": int(crowd),
    }
