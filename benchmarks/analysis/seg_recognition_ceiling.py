"""How well Fashion-MNIST scenes can be segmented when edges are perfect and each item is recognised by a classifier.

Every item pixel of the evaluation scenes gets the class a trained Fashion-MNIST classifier gives its item;
background stays background. So edges are perfect and only recognition errs: the mIoU this reaches is what
recognition at that classifier's quality allows. Three ways of showing the classifier each item:

- ``whole item``: its own 28x28 image, as the classifier was trained (no scaling, nothing covering it);
- ``as placed``: the item drawn at its scene size, read back from its box to 28x28 (scaling costs only);
- ``visible part``: the same, with the pixels later items cover set to background (scaling and occlusion).

The classifier never saw a scaled or covered item, so the last two rows say how hard each item is for a model
trained on whole items, not a bound on a model trained on scenes. Writes JSON with the environment.

    python benchmarks/analysis/seg_recognition_ceiling.py       # -> results/seg/seg_recognition_ceiling.json
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor

from hybridvision.data.scenes import SCENE_CLASSES, SceneTable, covered, item_ink, owners, paint, render, visible_share
from hybridvision.diffusion.eval.judge import load_classifier, probe_images
from hybridvision.env import environment
from hybridvision.fileio import save_json
from hybridvision.seg.config import SegDataConfig
from hybridvision.seg.data import load_split
from hybridvision.seg.metrics import binned_accuracy, confusion_matrix, scores

VISIBLE_EDGES = (0.0, 0.25, 0.5, 0.75, 1.0)  # as benchmarks/analysis/seg_error_breakdown.py


def read_back(ink: Tensor, table: SceneTable, canvas: int) -> Tensor:
    """Each slot's box resampled back to 28x28, padded to the classifier's 32: (N, K, C, C) -> (N * K, 1, 32, 32)."""
    side, corner = table.side.reshape(-1), table.top_left.reshape(-1, 2)  # (M,), (M, 2) with M = N * K
    centres = (torch.arange(28, dtype=torch.float32) + 0.5) / 28  # item pixel centres on [0, 1]
    ys = (corner[:, :1] + centres * side[:, None]) / canvas * 2 - 1  # (M, 28) canvas coordinates on [-1, 1]
    xs = (corner[:, 1:] + centres * side[:, None]) / canvas * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), -1)  # (M, 28, 28, 2) as (x, y)
    flat = ink.reshape(-1, 1, canvas, canvas)  # (N, K, C, C) -> (M, 1, C, C)
    item = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (M, 1, 28, 28)
    return F.pad(item.round().clamp(0, 255).to(torch.uint8), (2, 2, 2, 2))  # (M, 1, 32, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", default="assets/fmnist_ascan_nano")
    parser.add_argument("--out", default="results/seg/seg_recognition_ceiling.json")
    args = parser.parse_args()
    cfg = SegDataConfig()
    split = load_split(cfg, train=False)  # the evaluation scenes
    table, items, labels, index = split.table, split.items, split.labels, torch.arange(len(split))
    _, mask = render(cfg.scenes, table, items, labels, index)
    target, k = mask.long(), len(SCENE_CLASSES)
    ink = item_ink(cfg.scenes, table, items, index)  # (N, K, C, C), as render() draws them
    own = owners(ink, cfg.scenes.threshold)  # (N, K, C, C): the slot whose label each pixel shows
    visible = ink * ~covered(ink, cfg.scenes.threshold)  # what later items leave of each item
    probe = load_classifier(args.classifier)
    views = {
        "whole item": F.pad(items[table.items.reshape(-1)], (2, 2, 2, 2)),  # (M, 1, 32, 32)
        "as placed": read_back(ink, table, cfg.scenes.canvas),
        "visible part": read_back(visible, table, cfg.scenes.canvas),
    }
    truth = labels[table.items]  # (N, K) each slot's class
    owned = own.flatten(2).any(2)  # (N, K): slots with at least one labelled pixel
    share = visible_share(ink, cfg.scenes.threshold)  # (N, K): how much of each item is left visible
    if not torch.equal(paint(own, truth), target):
        raise RuntimeError("the slots' ownership does not reproduce render()'s labels: the two drawings disagree")
    rows = []
    for how, view in views.items():
        classes = probe_images(probe, view, batch_size=500).view_as(truth)  # (N * K,) -> (N, K)
        pred = paint(own, classes)
        agree = (classes == truth)[owned].float().mean().item() * 100  # items with at least one labelled pixel
        by_share = binned_accuracy(share, classes == truth, owned, VISIBLE_EDGES)
        row = {"view": how, "item_accuracy": agree, "items_right_by_visible_share": by_share}
        row |= scores(confusion_matrix(pred, target, k))
        rows.append(row)
        print(f"{how:13s}  items right {agree:6.2f}%  mIoU {row['miou']:6.2f}  aAcc {row['aacc']:6.2f}")
    data = {"scenes": len(table), "items": int(owned.sum()), "classifier": args.classifier, "rows": rows}
    save_json(data | {"environment": environment()}, args.out)


if __name__ == "__main__":
    main()
