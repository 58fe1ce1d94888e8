"""Our batched augmentation against kornia's, interleaved in one process (the reason we wrote our own).

    pip install kornia   # not a project dependency; only this comparison uses it
    python benchmarks/augment_speed.py --threads 1 --batch 256   # -> results/cpu-augment-speed.json

Both pipelines do the same work on a batch of 32x32 uint8 images: random-resized-crop, horizontal flip,
RandAugment(2, 9), random erasing (p 0.25) and MixUp. Reported: median ms per batch and the ratio. The images
have 3 channels because kornia's RandAugment rejects grey ones (its saturation op needs (*, 3, H, W)); ours
takes either.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from hybridvision.env import environment
from hybridvision.train.augment import Augment
from hybridvision.train.config import AugConfig


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
    p.add_argument("--out", default="results/cpu-augment-speed.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(args.batch) % 10
    ours = Augment(AugConfig(crop="rrc", randaug_n=2, randaug_m=9, mixup_alpha=0.8), (0.286,) * 3, (0.353,) * 3, 10)
    runs = {"hybridvision": lambda i: ours(x, y, torch.Generator().manual_seed(i)), "kornia": None}
    try:
        k = kornia_pipeline(args.batch)
        runs["kornia"] = lambda i: k(x, y)
    except ImportError:
        del runs["kornia"]
        print("kornia is not installed: timing ours only")
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds + 1):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            for i in range(3):
                fn(r * 3 + i)
            if r:  # round 0 is warm-up
                times[name].append((time.perf_counter() - t0) / 3 * 1e3)
    rows = {name: round(statistics.median(t), 2) for name, t in times.items()}
    result = {"batch": args.batch, "ms_per_batch": rows, "environment": environment()}
    if "kornia" in rows:
        result["kornia_over_ours"] = round(rows["kornia"] / rows["hybridvision"], 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ms_per_batch"]), result.get("kornia_over_ours"))


if __name__ == "__main__":
    main()
