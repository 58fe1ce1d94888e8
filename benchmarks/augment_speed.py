"""Our batched augmentation against kornia's, interleaved in one process (the reason we wrote our own).

    pip install kornia   # not a project dependency; only this comparison uses it
    python benchmarks/augment_speed.py --threads 1 --batch 256   # -> results/speed/cpu-augment-speed.json

Both pipelines do the same work on a batch of 32x32 uint8 images: random-resized-crop, horizontal flip,
RandAugment(2, 9), random erasing (p 0.25) and MixUp. Reported: median ms per batch and the ratio. The images
have 3 channels because kornia's RandAugment rejects grey ones (its saturation op needs (*, 3, H, W)); ours
takes either.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

import torch

from hybridvision.bench.interleave import interleaved
from hybridvision.classify.augment import Augment
from hybridvision.classify.config import AugConfig
from hybridvision.env import environment


def kornia_pipeline(batch: int):
    import kornia.augmentation as K
    from kornia.augmentation.auto import RandAugment

    geo = K.AugmentationSequential(K.RandomResizedCrop((32, 32), scale=(0.35, 1.0)), K.RandomHorizontalFlip())
    rand, erase = RandAugment(n=2, m=9), K.RandomErasing(p=0.25)
    mixup = K.RandomMixUpV2(p=1.0, data_keys=["input", "class"])

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = rand(geo(x.float() / 255))
        x = erase((x - 0.286) / 0.353)
        return mixup(x, y)

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default="results/speed/cpu-augment-speed.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(args.batch) % 10
    ours = Augment(AugConfig(crop="rrc", randaug_n=2, randaug_m=9, mixup_alpha=0.8), (0.286,) * 3, (0.353,) * 3, 10)
    seeds = itertools.count()  # a new augmentation draw on every call
    runs = {"hybridvision": lambda: ours(x, y, torch.Generator().manual_seed(next(seeds)))}
    try:
        k = kornia_pipeline(args.batch)
        runs["kornia"] = lambda: k(x, y)
    except ImportError:
        print("kornia is not installed: timing ours only")
    timings = interleaved(runs, args.batch, rounds=args.rounds, min_s=0.0, min_iters=3, warmup_iters=3)
    rows = {name: round(statistics.median(t.p50_ms for t in runs_), 2) for name, runs_ in timings.items()}
    result = {"batch": args.batch, "ms_per_batch": rows, "environment": environment()}
    if "kornia" in rows:
        result["kornia_over_ours"] = round(rows["kornia"] / rows["hybridvision"], 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ms_per_batch"]), result.get("kornia_over_ours"))


if __name__ == "__main__":
    main()
