"""COCO-format detection data: ``ROOT/annotations/instances_<split>.json`` and images under ``ROOT/<split>/``.

Read through pycocotools, so every segmentation COCO allows works: polygons (several per object), compressed and
uncompressed RLE. Category ids may have gaps: they map to contiguous labels 1..K (0 is torchvision's background)
and back (``category_ids[label - 1]``). Crowd regions (``iscrowd: 1``) and boxes with no width or height (after
clipping to the image) are kept out of the training targets, the latter counted in ``dropped``; the evaluation
reads the annotation file itself, crowd regions included. Images with no annotation are kept (negatives). Images
are decoded as grey or RGB to the model's channel count, any size.

A batch is ``(images, targets, unreadable)``: uint8 (C, H, W) images, torchvision's target dicts (``boxes`` (N, 4)
float x1 y1 x2 y2, ``labels`` (N,) int64, ``masks`` (N, H, W) uint8, ``image_id``) and the files that could not be
read.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data import DataError, ImageError
from ..data import read_image as shared_read_image
from ..fileio import read_json

Batch = tuple[list[Tensor], list[dict[str, Any]], list[str]]


def annotation_file(root: str | Path, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{split}.json"


def load_coco(path: Path) -> Any:
    """pycocotools' ``COCO`` index of an annotation file (its progress prints silenced); one clear line when the file
    is absent, not JSON, or not COCO's layout (a dict with ``images``, ``annotations`` and ``categories`` lists)."""
    try:
        from pycocotools.coco import COCO
    except ImportError as e:
        raise ImportError(
            f"detection needs pycocotools: pip install -c constraints.txt 'hybridvision[det]' ({e})"
        ) from e
    if not path.is_file():
        raise DataError(
            f"{path} does not exist; --data.root takes a COCO folder (annotations/instances_<split>.json, <split>/)"
        )
    coco = COCO()
    coco.dataset = coco_json(path)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


COCO_KEYS = ("images", "annotations", "categories")  # the lists a COCO instances file holds


def coco_json(path: Path) -> dict:
    """The annotation file's JSON, checked to be COCO's instances layout before pycocotools indexes it."""
    data = read_json(path, "a COCO annotation file is a JSON object")
    missing = [k for k in COCO_KEYS if not isinstance(data, dict) or not isinstance(data.get(k), list)]
    if missing:
        found = f"keys {sorted(data)[:6]}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise DataError(f"{path} is not a COCO instances file: it lacks the list(s) {missing} (it holds {found})")
    if not data["categories"]:
        raise DataError(f"{path} defines no categories; a detector needs at least one in its 'categories' list")
    return data


@dataclass
class CocoSplit:
    """One split of a COCO folder: its images, annotations and categories."""

    root: Path
    split: str
    channels: int  # 1 (grey) or 3 (RGB): what images are decoded to
    coco: Any = field(repr=False)  # pycocotools.coco.COCO
    image_ids: list[int] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)  # sorted; label k is category_ids[k - 1]
    classes: tuple[str, ...] = ()  # "background", then the category names in label order
    dropped: int = 0  # non-crowd annotations with a degenerate box, left out of the targets

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def annotation_file(self) -> Path:
        return annotation_file(self.root, self.split)

    def image_path(self, image_id: int) -> Path:
        return self.root / self.split / self.coco.imgs[image_id]["file_name"]

    def sample(self, index: int, with_target: bool = True) -> tuple[Tensor, dict[str, Any]] | None:
        """Image ``index`` (uint8 (C, H, W)) and its target (training's, or only its ``image_id``); None when the
        file cannot be read."""
        image_id = self.image_ids[index]
        image = read_image(self.image_path(image_id), self.channels)
        if image is None:
            return None
        target = self.target(image_id, image.shape[-2:]) if with_target else {}
        return image, {**target, "image_id": image_id}

    def target(self, image_id: int, size: Sequence[int]) -> dict[str, Tensor]:
        """Boxes, labels and masks of the image's non-crowd, non-degenerate annotations."""
        h, w = size
        anns = solid_annotations(self.coco, image_id)
        boxes, keep = clipped_boxes(anns, h, w)
        anns = [a for a, k in zip(anns, keep.tolist()) if k]
        masks = [self._mask(a, h, w) for a in anns]
        labels = [self.category_ids.index(a["category_id"]) + 1 for a in anns]
        return {
            "boxes": boxes[keep],
            "labels": torch.tensor(labels, dtype=torch.int64),
            "masks": torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, h, w, dtype=torch.uint8),
        }

    def _mask(self, ann: dict, h: int, w: int) -> np.ndarray:
        """The annotation's mask at the decoded image's size (an annotation sized otherwise is an error)."""
        info = self.coco.imgs[ann["image_id"]]
        if (info["height"], info["width"]) != (h, w):
            raise DataError(
                f"{self.image_path(ann['image_id'])} is {w}x{h} but {self.annotation_file} says "
                f"{info['width']}x{info['height']}; fix the annotation's width/height"
            )
        return self.coco.annToMask(ann).astype(np.uint8)

    def batches(self, index_lists: Sequence[Sequence[int]], with_targets: bool = True) -> Iterator[Batch]:
        for idx in index_lists:
            images, targets, unreadable = [], [], []
            for i in idx:
                got = self.sample(int(i), with_targets)
                if got is None:
                    unreadable.append(str(self.image_path(self.image_ids[int(i)])))
                    continue
                images.append(got[0])
                targets.append(got[1])
            yield images, targets, unreadable


def load_split(root: str | Path, split: str, channels: int, subset: int = 0) -> CocoSplit:
    """A COCO split, its images in id order (the first ``subset`` of them when > 0)."""
    root = Path(root)
    coco = load_coco(annotation_file(root, split))
    if not (root / split).is_dir():
        raise DataError(f"{root / split} does not exist; a COCO folder keeps the images of split {split} there")
    unknown = {a["category_id"] for a in coco.anns.values()} - set(coco.cats)
    if unknown:
        raise DataError(
            f"{annotation_file(root, split)}: annotations use category ids {sorted(unknown)} "
            "that its 'categories' list does not define"
        )
    category_ids = sorted(coco.cats)
    image_ids = sorted(coco.imgs)
    image_ids = image_ids[:subset] if subset else image_ids
    check_contents(root, split, coco, image_ids)
    split_ = CocoSplit(root, split, channels, coco, image_ids, category_ids)
    split_.classes = ("background", *(coco.cats[c]["name"] for c in category_ids))
    split_.dropped = count_degenerate(coco, image_ids)
    return split_


def check_contents(root: Path, split: str, coco: Any, image_ids: Sequence[int]) -> None:
    """A DataError when the split's images (the first ``subset``) hold nothing to learn or score: no images listed,
    none of their files present, or not one non-crowd annotation among them (COCOeval's AP would be -1)."""
    listed = annotation_file(root, split)
    if not image_ids:
        raise DataError(f"{listed} lists no images; a COCO split needs entries in its 'images' list")
    files = [root / split / coco.imgs[i]["file_name"] for i in image_ids]
    if not any(f.is_file() for f in files):
        raise DataError(
            f"{root / split} holds none of the {len(files)} image(s) {listed} lists (such as {files[0].name}); "
            "put the images there, or give --data.root the folder that has them"
        )
    if not any(solid_annotations(coco, i) for i in image_ids):
        raise DataError(
            f"{listed} has no annotations (other than crowd regions) on the {len(files)} image(s) used; a detector "
            "trains and is scored on boxes: annotate them, or use more images (--data.train_subset/eval_subset)"
        )


def solid_annotations(coco: Any, image_id: int) -> list[dict]:
    """The image's annotations that are not crowd regions."""
    return [a for a in coco.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]


def clipped_boxes(anns: Sequence[dict], h: int, w: int) -> tuple[Tensor, Tensor]:
    """The annotations' boxes as (N, 4) x1 y1 x2 y2 clipped to a (h, w) image, and which have width and height."""
    boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # (x, y, w, h) -> (x1, y1, x2, y2)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    return boxes, (boxes[:, 2:] > boxes[:, :2]).all(1)


def count_degenerate(coco: Any, image_ids: Sequence[int]) -> int:
    """Non-crowd annotations of these images whose box has no width or height inside its image."""
    dropped = 0
    for image_id in image_ids:
        info = coco.imgs[image_id]
        _, keep = clipped_boxes(solid_annotations(coco, image_id), info["height"], info["width"])
        dropped += int((~keep).sum())
    return dropped


def read_image(path: Path, channels: int) -> Tensor | None:
    """uint8 (C, H, W) at the file's own size, grey (C = 1) or RGB (C = 3), any kind ``data.read_image`` reads
    (16-bit grey scaled, not clipped); None (with a warning naming the file) when unreadable."""
    try:
        arr = shared_read_image(path, channels)
    except ImageError as e:
        warnings.warn(f"skipping unreadable image: {e}", stacklevel=2)
        return None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
