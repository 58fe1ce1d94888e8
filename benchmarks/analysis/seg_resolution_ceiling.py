"""The best mIoU a head can reach on Fashion-MNIST scenes when it classifies at stride s and is upsampled.

A perfect head at stride s is the ground truth's one-hot map average-pooled by s (its best guess of every
cell), upsampled back bilinearly (as UperNet's scores are) and arg-maxed. No model is involved: this is the
ceiling the output resolution alone puts on mIoU, per stride. A second row per stride puts the foreground back
at the pixel from the image itself (ink above the scenes' threshold), the classes still from the stride-s map:
what a refinement that reads the image (``head.refine``) could recover at best. Writes JSON with the
environment.

    python benchmarks/analysis/seg_resolution_ceiling.py              # -> results/seg/seg_resolution_ceiling.json
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from hybridvision.data.scenes import SCENE_CLASSES, render
from hybridvision.env import environment
from hybridvision.fileio import save_json
from hybridvision.seg.config import SegDataConfig
from hybridvision.seg.data import load_split
from hybridvision.seg.heads import resize
from hybridvision.seg.metrics import confusion_matrix, scores


def perfect_at_stride(onehot: torch.Tensor, stride: int) -> torch.Tensor:
    """A perfect head's scores at ``stride``, upsampled: (B, K, H, W) one-hot -> (B, K, H, W)."""
    low = F.avg_pool2d(onehot, stride)  # (B, K, H, W) -> (B, K, H/s, W/s)
    return resize(low, onehot.shape[-2:])  # UperNet's own upsampling; a no-op at stride 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strides", default="1,2,4,8")
    parser.add_argument("--out", default="results/seg/seg_resolution_ceiling.json")
    args = parser.parse_args()
    cfg = SegDataConfig()
    split = load_split(cfg, train=False)  # the evaluation scenes
    image, mask = render(cfg.scenes, split.table, split.items, split.labels, torch.arange(len(split)))
    target = mask.long()
    k = len(SCENE_CLASSES)
    onehot = F.one_hot(target, k).permute(0, 3, 1, 2).float()  # (B, H, W, K) -> (B, K, H, W)
    ink = image[:, 0].long() > cfg.scenes.threshold  # (B, 1, H, W) -> (B, H, W)
    rows = []
    for stride in (int(s) for s in args.strides.split(",")):
        up = perfect_at_stride(onehot, stride)
        items_only = up[:, 1:].argmax(1) + 1  # the best item class of every pixel
        preds = {"upsampled": up.argmax(1), "foreground from the image": torch.where(ink, items_only, 0)}
        for how, pred in preds.items():
            row = {"stride": stride, "foreground": how} | scores(confusion_matrix(pred, target, k))
            rows.append(row)
            print(f"stride {stride:2d}  {how:26s}  mIoU {row['miou']:6.2f}  aAcc {row['aacc']:6.2f}")
    agree = (ink == (target > 0)).float().mean().item() * 100
    print(f"ink above the threshold = an item's pixel on {agree:.2f}% of pixels")
    data = {"scenes": len(split), "canvas": cfg.scenes.canvas, "ink_agrees_pct": agree, "rows": rows}
    save_json(data | {"environment": environment()}, args.out)


if __name__ == "__main__":
    main()
