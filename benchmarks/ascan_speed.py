"""Params, MACs and CPU throughput of the AsCAN models beside CoAtNet-0 and EfficientMod-S, in one run.

For every model and batch size: eager fp32 and fused-for-inference (BatchNorm folded, ``model.fuse()``)
throughput, each model at its own native input size, in the layout the family runs in (``model.memory_format``).
This CPU's fp32 GEMM peak is measured in the same run, before and after the models; each row carries the
fraction of the better of the two that the model reaches (2 x MACs x img/s / peak FLOP/s). Names that are not
registered are skipped with a message. Writes JSON (rows + the environment block):

    python benchmarks/ascan_speed.py                     # every named model -> results/speed/cpu-ascan.json
    python benchmarks/ascan_speed.py --models ascan_nano,ascan_t --batch-sizes 1 --min-seconds 0.2 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import logging

import torch

import hybridvision as hv
from hybridvision.bench.timing import gemm_peak_flops, time_forward
from hybridvision.env import environment
from hybridvision.fileio import save_json
from hybridvision.macs import model_cost

log = logging.getLogger("ascan_speed")
DEFAULT_MODELS = "ascan_*,coatnet_0,efficientmod_s"


def select(patterns: str) -> list[str]:
    """Registered names matching comma-separated globs, in the given order, test variants left out."""
    names: list[str] = []
    for pattern in patterns.split(","):
        hits = hv.list_models(pattern, test=False, task="classification")
        if not hits:
            log.warning("skipping %r: no registered model matches it", pattern)
        names += [n for n in hits if n not in names]
    return names


def measure(name: str, batch_sizes: list[int], min_s: float) -> dict:
    """One row: cost, then eager and fused throughput per batch size (same weights, same inputs)."""
    cost = model_cost(name)
    row: dict = {"model": name, "params": cost.params, "macs": cost.macs, "img_size": cost.input_shape[-1]}
    torch.manual_seed(0)
    model = hv.create_model(name).eval()
    row["memory_format"] = str(getattr(model, "memory_format", torch.contiguous_format)).replace("torch.", "")
    for mode in ("eager", "fused"):
        if mode == "fused":
            model.fuse()
        for bs in batch_sizes:
            x = torch.randn(bs, *cost.input_shape[1:])
            iters = dict(min_iters=2, warmup_iters=1, warmup_s=0.0) if cost.macs * bs > 5e10 else dict(min_iters=5)
            timing = time_forward(model, x, min_s=min_s, **iters)
            row[f"{mode}_b{bs}_p50_ms"] = round(timing.p50_ms, 2)
            row[f"{mode}_b{bs}_img_s"] = round(timing.img_per_s, 3)
        log.info("%s %s done", name, mode)
    return row


def add_peak_fractions(rows: list[dict], batch_sizes: list[int], peak: float) -> None:
    for row in rows:
        for mode in ("eager", "fused"):
            for bs in batch_sizes:
                row[f"{mode}_b{bs}_peak_frac"] = round(2 * row["macs"] * row[f"{mode}_b{bs}_img_s"] / peak, 4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated globs (default {DEFAULT_MODELS})")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time each setting at least this long")
    parser.add_argument("--peak-seconds", type=float, default=1.0, help="time the GEMM peak this long, twice")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default="results/speed/cpu-ascan.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    names = select(args.models)
    peak_before = gemm_peak_flops(seconds=args.peak_seconds)
    rows = [measure(name, batch_sizes, args.min_seconds) for name in names]
    peak_after = gemm_peak_flops(seconds=args.peak_seconds)
    peak = max(peak_before, peak_after)
    add_peak_fractions(rows, batch_sizes, peak)
    meta = {
        "precision": "fp32",
        "mode": "inference_mode; eager = as built, fused = after model.fuse() (BatchNorm folded)",
        "gemm_peak_gflops": {"before": round(peak_before / 1e9, 1), "after": round(peak_after / 1e9, 1)},
    }
    save_json({**meta, "environment": environment(), "rows": rows}, args.out)
    for row in rows:
        cells = [f"{row['model']:<20}", f"{row['params'] / 1e6:7.2f}M", f"{row['macs'] / 1e9:7.3f}G"]
        cells += [f"{m}/b{b} {row[f'{m}_b{b}_img_s']:8.2f} img/s" for m in ("eager", "fused") for b in batch_sizes]
        print("  ".join(cells))
    ascan_t = next((r for r in rows if r["model"] == "ascan_t"), None)
    if ascan_t:
        fracs = ", ".join(f"b{b} {100 * ascan_t[f'fused_b{b}_peak_frac']:.1f}%" for b in batch_sizes)
        print(f"ascan_t reaches {fracs} of this CPU's fp32 GEMM peak ({peak / 1e9:.0f} GFLOP/s, fused)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
