"""CPU latency of the EfficientMod variants at batch 1: eager PyTorch and onnxruntime, fp32, both threads.

Runs the project's harness (``hybridvision bench``, docs/benchmarking.md) with the settings of the model card:
the four variants at batch 1, channels_last, layer scale folded (``fuse()``), and our onnxruntime export of the
same weights (CPU provider, same thread count) timed in the same run. Each repeat is a fresh process and the
repeats of the two backends are interleaved; rows hold p50/p90/p99 ms (median over repeats, min/max of the
p50s as the spread), ``rel_latency_p50`` = onnxruntime / eager, parity, MACs and the environment.

Writes results/speed/cpu-efficientmod-latency.csv (+ .json with the resolved config and notes). Equivalent to:

    hybridvision bench efficientmod_xxs efficientmod_xs efficientmod_s efficientmod_s_conv \\
        --device cpu --precision fp32 --channels-last --fused --batch-sizes 1 --threads 2 \\
        --against onnxruntime --repeats 5 \\
        --csv results/speed/cpu-efficientmod-latency.csv --json results/speed/cpu-efficientmod-latency.json

    python benchmarks/efficientmod_latency.py                                         # the committed result
    python benchmarks/efficientmod_latency.py --quick --models efficientmod_xxs --out /tmp/lat.csv  # smoke
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridvision.cli.main import main as cli

VARIANTS = ("efficientmod_xxs", "efficientmod_xs", "efficientmod_s", "efficientmod_s_conv")


def command(args: argparse.Namespace) -> list[str]:
    out = Path(args.out)
    cmd = ["bench", *args.models.split(","), "--device", "cpu", "--precision", "fp32", "--channels-last"]
    cmd += ["--fused", "--batch-sizes", "1", "--threads", str(args.threads), "--against", "onnxruntime"]
    cmd += ["--repeats", str(args.repeats), "--csv", str(out), "--json", str(out.with_suffix(".json"))]
    return cmd + (["--quick"] if args.quick else [])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(VARIANTS), help="comma-separated names")
    p.add_argument("--repeats", type=int, default=5, help="fresh-process repeats per backend (default: 5)")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads (default: 2)")
    p.add_argument("--quick", action="store_true", help="smoke-test bounds (a few iterations, one repeat)")
    p.add_argument("--out", default="results/speed/cpu-efficientmod-latency.csv", help="CSV path (JSON next to it)")
    return cli(command(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
