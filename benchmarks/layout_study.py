"""Which memory layout and inference fusion to run a family in, measured on this machine.

Writes results/speed/cpu-layout-<model>.json: eager fp32 latency (batch 1) and throughput (batch 16) for NCHW vs
channels_last, unfused vs BatchNorm-folded. The four settings are timed interleaved, round after round, in one
process, so load from other processes hits them alike; each row carries its median and its speed relative to
the first setting (NCHW, unfused) over the same rounds.
    python benchmarks/layout_study.py coatnet_0_rw_224 [--rounds 5] [--batch-sizes 1,16] [--threads N] [--out-dir D]
On a machine shared with other work, ``--threads 1`` keeps OpenMP barriers from turning others' load into noise.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

import hybridvision as hv
from hybridvision.bench.interleave import inference, interleaved
from hybridvision.env import environment
from hybridvision.fileio import save_json

FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def build(name: str, fmt: torch.memory_format, fused: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = hv.create_model(name).eval()
    model.memory_format = fmt
    model = model.to(memory_format=fmt)
    return model.fuse() if fused else model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out-dir", default="results/speed")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {f"{f}{'+fused' if fused else ''}": (f, fused) for f in FORMATS for fused in (False, True)}
    models = {key: build(args.model, FORMATS[f], fused) for key, (f, fused) in settings.items()}
    rows = []
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        x = torch.randn(bs, models["nchw"].config.in_chans, *models["nchw"].config.img_hw)
        candidates = {key: inference(model, x) for key, model in models.items()}
        timings = interleaved(candidates, bs, rounds=args.rounds, min_s=0.0, min_iters=3 if bs == 1 else 1)
        times = {key: [t.percentile(50) for t in runs] for key, runs in timings.items()}
        base = times["nchw"]
        for key, (fmt, fused) in settings.items():
            ratios = [b / t for b, t in zip(base, times[key])]  # > 1: faster than NCHW unfused, same round
            row = {
                "layout": fmt,
                "fused": fused,
                "batch_size": bs,
                "p50_ms": round(statistics.median(times[key]) * 1e3, 2),
                "img_s": round(bs / statistics.median(times[key]), 2),
                "speedup_vs_nchw_unfused": round(statistics.median(ratios), 3),
                "speedup_per_round": [round(r, 3) for r in ratios],
            }
            print(row, flush=True)
            rows.append(row)
    path = Path(args.out_dir) / f"cpu-layout-{args.model}.json"
    meta = {"model": args.model, "precision": "fp32", "mode": "eager, inference_mode", "rounds": args.rounds}
    save_json({**meta, "environment": environment(), "rows": rows}, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
