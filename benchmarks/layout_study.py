"""Which memory layout and inference fusion to run a family in, measured on this machine.

Writes results/cpu-layout-<model>.json: eager fp32 latency (batch 1) and throughput (batch 16) for NCHW vs
channels_last, unfused vs BatchNorm-folded, in one run with the environment recorded.
    python benchmarks/layout_study.py coatnet_0_rw_224
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import hybridvision as hv
from hybridvision.bench.env import environment
from hybridvision.bench.timing import time_forward

FORMATS = {"channels_last": torch.channels_last, "nchw": torch.contiguous_format}


def main(name: str, out_dir: str = "results") -> None:
    rows = []
    for fmt_name, fmt in FORMATS.items():
        for fused in (False, True):
            torch.manual_seed(0)
            model = hv.create_model(name).eval()
            model.memory_format = fmt
            model = model.to(memory_format=fmt)
            if fused:
                model.fuse()
            row = {"layout": fmt_name, "fused": fused}
            for bs in (1, 16):
                t = time_forward(model, torch.randn(bs, 3, 224, 224), min_s=2.0, min_iters=5, warmup_iters=3)
                row[f"b{bs}_p50_ms"] = round(t.p50_ms, 2)
                row[f"b{bs}_img_s"] = round(t.img_per_s, 2)
            print(row, flush=True)
            rows.append(row)
    path = Path(out_dir) / f"cpu-layout-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "model": name,
                "precision": "fp32",
                "mode": "eager, inference_mode",
                "environment": environment(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
