"""Where a trained Fashion-MNIST-scenes model loses mIoU: background, item recognition, or the pixels of an item.

Runs a run's weights on its evaluation scenes (its own data and inference settings, fp32 as ``seg eval``) and
re-scores the same predictions under oracles that each fix one kind of error:

- ``model``: the predictions as they are (``seg eval``'s number, unless the run ignored the edge ring);
- ``true class on predicted foreground``: every pixel the model calls an item gets its true class, so only the
  item/background split errs;
- ``majority class with perfect edges``: every pixel of an item's visible part gets the class most of that part's
  pixels were given, so only per-item recognition errs;
- ``edge ring ignored``: the predictions scored without the ring of pixels each side of every label edge (the
  data set's optional ``edge_ignore``), what a VOC-style void border would leave out.

Every other row is scored against the full labels, with no ring ignored.

It also counts items right (the majority class of an item's visible part) by how much of the item is visible, and
the error rate of item pixels within a few pixels of another item against the rest. Writes JSON with the
environment.

    python benchmarks/analysis/seg_error_breakdown.py runs/seg/RUN --out results/seg/<run>/error_breakdown.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from hybridvision.data.scenes import IGNORE, SCENE_CLASSES, edge_ring, item_ink, owners, paint, visible_share
from hybridvision.engine.order import eval_batches
from hybridvision.env import environment
from hybridvision.fileio import save_json
from hybridvision.seg.augment import SegAugment
from hybridvision.seg.config import SegAugConfig
from hybridvision.seg.data import SceneSplit, load_split
from hybridvision.seg.evaluate import eval_defaults, saved_model, saved_train_config
from hybridvision.seg.infer import predict
from hybridvision.seg.metrics import binned_accuracy, confusion_matrix, scores

VISIBLE_EDGES = (0.0, 0.25, 0.5, 0.75, 1.0)


def predictions(run: Path, use_ema: bool) -> tuple[Tensor, Tensor, SceneSplit]:
    """Predicted and true labels (N, C, C) of the run's evaluation scenes, in order, and the split."""
    cfg = eval_defaults(run)
    split = load_split(cfg.data, train=False)
    if not isinstance(split, SceneSplit):
        raise SystemExit(f"{run} was not trained on Fashion-MNIST scenes: this breakdown needs the scenes' items")
    crop = saved_train_config(run).img_size
    augment = SegAugment(SegAugConfig(), crop, cfg.data.mean, cfg.data.std, len(SCENE_CLASSES))
    model, _ = saved_model(run, use_ema=use_ema)
    model = model.to(memory_format=torch.channels_last).eval()
    preds, masks = [], []
    for images, mask, _, _ in split.batches(eval_batches(len(split), cfg.batch_size, rank=0, world=1)):
        probs = predict(model, augment.normalize(images), cfg.infer, len(SCENE_CLASSES), augment.crop)
        preds.append(probs.argmax(1))
        masks.append(mask.long())
    return torch.cat(preds), torch.cat(masks), split


def near_other_item(target: Tensor, radius: int) -> Tensor:
    """Item pixels with a pixel of another item's label within ``radius`` (Chebyshev): (N, H, W) -> bool."""
    x = target[:, None].float()  # (N, H, W) -> (N, 1, H, W)
    size = 2 * radius + 1
    inf = torch.tensor(float("inf"))
    high = F.max_pool2d(torch.where(x > 0, x, -inf), size, stride=1, padding=radius)[:, 0]  # background: no item
    low = -F.max_pool2d(torch.where(x > 0, -x, -inf), size, stride=1, padding=radius)[:, 0]  # (N, 1, H, W) -> (N, H, W)
    return (target > 0) & ((high != target) | (low != target))


def oracle_rows(pred: Tensor, target: Tensor, own: Tensor, majority: Tensor) -> dict[str, dict]:
    """mIoU, aAcc and mAcc of the predictions and of the three oracles (the module's docstring), all against
    the full labels ``target`` (N, C, C), without an edge ring, except the row that ignores it."""
    k = len(SCENE_CLASSES)
    oracle_fg = torch.where(pred > 0, target, torch.zeros_like(target))
    return {
        "model": scores(confusion_matrix(pred, target, k)),
        "true class on predicted foreground": scores(confusion_matrix(oracle_fg, target, k)),
        "majority class with perfect edges": scores(confusion_matrix(paint(own, majority), target, k)),
        "edge ring ignored": scores(confusion_matrix(pred, target.masked_fill(edge_ring(target), IGNORE), k)),
    }


def near_rates(pred: Tensor, target: Tensor) -> list[dict]:
    """Error rate (%) of item pixels within r pixels of another item, against the other item pixels."""
    wrong = (pred != target) & (target > 0)
    out = []
    for radius in (1, 2, 4):
        near = near_other_item(target, radius)
        far = (target > 0) & ~near
        out.append(
            {
                "radius": radius,
                "share_of_item_pixels": near.sum().item() / (target > 0).sum().item() * 100,
                "error_near": (wrong & near).sum().item() / max(1, near.sum().item()) * 100,
                "error_elsewhere": (wrong & far).sum().item() / max(1, far.sum().item()) * 100,
                "share_of_errors": (wrong & near).sum().item() / max(1, wrong.sum().item()) * 100,
            }
        )
    return out


def in_items_right(pred: Tensor, target: Tensor, majority_map: Tensor) -> float:
    """Share (%) of the wrong item pixels that lie in items whose majority class is right."""
    wrong = (pred != target) & (target > 0)
    return (wrong & (majority_map == target)).sum().item() / max(1, wrong.sum().item()) * 100


def breakdown(pred: Tensor, labels: Tensor, own: Tensor, share: Tensor, truth: Tensor) -> dict:
    """The oracle rows, items right (overall and by visible share) and the errors near other items.

    ``pred``, ``labels`` (N, C, C); ``own`` (N, S, C, C): the pixels each slot owns; ``share`` (N, S): the visible
    share of each slot's ink; ``truth`` (N, S): each slot's class.
    """
    votes = torch.stack(
        [((pred == c)[:, None] & own).flatten(2).sum(2) for c in range(1, len(SCENE_CLASSES))], -1
    )  # (N, S, 10)
    majority = votes.argmax(-1)  # (N, S): the most frequent item class of each item's visible part
    owned = own.flatten(2).any(2)  # (N, S): items with at least one labelled pixel
    right = majority == truth
    return {
        "rows": oracle_rows(pred, labels, own, majority),
        "items": int(owned.sum()),
        "items_right": right[owned].float().mean().item() * 100,
        "items_right_by_visible_share": binned_accuracy(share, right, owned, VISIBLE_EDGES),
        "wrong_item_pixels_in_items_right": in_items_right(pred, labels, paint(own, majority)),
        "near_other_item": near_rates(pred, labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--weights", choices=("ema", "model"), default="ema")
    parser.add_argument("--out", default="results/seg/seg_error_breakdown.json")
    args = parser.parse_args()
    with torch.inference_mode():
        pred, target, split = predictions(args.run, args.weights == "ema")
    scenes = split.cfg.scenes
    index = torch.arange(len(split))
    ink = item_ink(scenes, split.table, split.items, index)  # (N, S, C, C)
    own = owners(ink, scenes.threshold)
    truth = split.labels[split.table.items]  # (N, S)
    labels = paint(own, truth)  # (N, C, C): the scenes' labels without the optional edge ring
    ring = edge_ring(labels)
    if not torch.equal(labels.masked_fill(ring, IGNORE) if scenes.edge_ignore else labels, target):
        raise RuntimeError("slot ownership does not reproduce the scenes' labels")
    data = {"run": str(args.run), "weights": args.weights, "scenes": len(split), "edge_ignore": scenes.edge_ignore}
    data |= breakdown(pred, labels, own, visible_share(ink, scenes.threshold), truth)
    for name, row in data["rows"].items():
        print(f"{name:36s} mIoU {row['miou']:6.2f}  aAcc {row['aacc']:6.2f}")
    print(f"items right {data['items_right']:.2f}% of {data['items']}")
    save_json(data | {"environment": environment()}, args.out)


if __name__ == "__main__":
    main()
