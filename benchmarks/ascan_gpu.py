"""AsCAN-T against timm's MaxViT-T and CoAtNet-0 (rw) on a GPU, the paper's protocol, in one run.

fp16 weights and inputs, channels_last, ``torch.compile`` (compile time reported apart), batch 16 and 64 at 224,
per-iteration CUDA sync. Our models run as built and fused (``model.fuse()``); timm's run as built (random
weights: speed does not depend on them). timm names are skipped with a message where timm is not installed.
Writes JSON with the environment block and each row's throughput relative to ascan_t's in the same run:

    python benchmarks/ascan_gpu.py --out results/speed/gpu-ascan-h100.json
    python benchmarks/ascan_gpu.py --device cpu --dtype float32 --no-compile --batch-sizes 2 --ours ascan_test \\
        --timm '' --img-size 64 --warmup 1 --warmup-s 0 --iters 2 --out /tmp/smoke.json  # CPU smoke run
"""

from __future__ import annotations

import argparse
import logging

import torch

import hybridvision as hv
from hybridvision.bench.measure import Bounds
from hybridvision.bench.measure import measure as bench_measure
from hybridvision.bench.memory import MemoryMeter
from hybridvision.bench.timing import device_sync
from hybridvision.env import environment
from hybridvision.fileio import save_json

log = logging.getLogger("ascan_gpu")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def candidates(ours: list[str], timm_names: list[str]) -> dict[str, object]:
    """label -> zero-argument builder, ours as built and fused, then timm's (when importable)."""
    out: dict[str, object] = {}
    for name in ours:
        out[name] = lambda n=name: hv.create_model(n).eval()
        out[f"{name}+fused"] = lambda n=name: hv.create_model(n).eval().fuse()
    if timm_names:
        try:
            import timm
        except ImportError:
            log.warning("timm is not installed: skipping %s", ", ".join(timm_names))
            return out
        for name in timm_names:
            out[f"timm/{name}"] = lambda n=name: timm.create_model(n, pretrained=False).eval()
    return out


def measure(label: str, build, args: argparse.Namespace) -> dict:
    """The bench package's measurement of one model at every batch size: first call (compile), latency, img/s."""
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    torch.manual_seed(0)
    model = build().to(device=device, dtype=dtype, memory_format=torch.channels_last)
    row: dict = {"model": label, "params": sum(p.numel() for p in model.parameters())}
    run = inference(torch.compile(model) if args.compile else model)
    bounds = Bounds(warmup_iters=args.warmup, warmup_s=args.warmup_s, iters=args.iters)
    for bs in args.batch_sizes:
        x = torch.randn(bs, 3, args.img_size, args.img_size, device=device, dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        out = bench_measure(run, x, batch_size=bs, latency=True, bounds=bounds, sync=device_sync(device),
                            memory=MemoryMeter(args.device))  # fmt: skip
        row[f"b{bs}_first_call_s"] = round(out["first_call_s"], 2)  # compiles for this shape
        row[f"b{bs}_img_s"] = round(out["throughput_img_s"], 1)
        row[f"b{bs}_p50_ms"] = round(out["latency_p50_ms"], 3)
        log.info("%s b%d: %.1f img/s", label, bs, out["throughput_img_s"])
    return row


def inference(model: torch.nn.Module):
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ours", default="ascan_t", help="comma-separated hybridvision names")
    parser.add_argument("--timm", default="maxvit_tiny_tf_224,coatnet_0_rw_224", help="comma-separated timm names")
    parser.add_argument("--batch-sizes", default="16,64")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", choices=sorted(DTYPES))
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=50, help="warm-up iterations (at least)")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="warm-up seconds (at least)")
    parser.add_argument("--iters", type=int, default=200, help="timed iterations (and at least 1 s)")
    parser.add_argument("--out", default="results/speed/gpu-ascan.json")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ours = [n for n in args.ours.split(",") if n]
    builders = candidates(ours, [n for n in args.timm.split(",") if n])
    rows = [measure(label, build, args) for label, build in builders.items()]
    ref = next((r for r in rows if r["model"] == ours[0]), None) if ours else None
    for row in rows:
        for bs in args.batch_sizes:
            if ref:
                row[f"b{bs}_vs_{ref['model']}"] = round(row[f"b{bs}_img_s"] / ref[f"b{bs}_img_s"], 3)
    meta = {"precision": args.dtype, "layout": "channels_last", "compile": args.compile, "img_size": args.img_size}
    save_json({**meta, "environment": environment(args.device), "rows": rows}, args.out)
    for row in rows:
        print(row)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
