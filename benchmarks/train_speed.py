"""Training speed on this machine: img/s and share of the fp32 GEMM peak, naive vs. our train path, one run.

    python benchmarks/train_speed.py                       # -> results/speed/cpu-train-speed.json
    python benchmarks/train_speed.py --model ascan_nano --threads 2 --batch 128 --rounds 5

Every configuration trains the same model on the same in-memory Fashion-MNIST-sized batches; they are
measured interleaved (round-robin, ``--rounds`` times) so machine load hits all alike, and reported as the
median img/s with the ratio to the naive baseline. "Share of peak" = training FLOPs (3 x 2 x forward MACs per
image: forward + backward) x img/s / the fp32 GEMM peak measured in the same process. A profile of the
default configuration, grouped by kind of work, shows where the remaining time goes.

On CPUs with AMX (where ``amp: auto`` trains in bf16) a bf16-autocast row is added; its share is still taken of
the fp32 peak, so it shows how far bf16 moves past the fp32 roofline.

The allocator policy (glibc keeping freed memory, ``TrainConfig.keep_freed_memory``) is switched per
configuration inside the one process; memory a kept-heap configuration left in glibc's free lists can still
serve the others, so the interleaved ratio under-states that gain rather than over-stating it.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import itertools
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from hybridvision.bench.interleave import interleaved
from hybridvision.bench.timing import gemm_peak_flops
from hybridvision.classify.augment import Augment
from hybridvision.classify.config import AugConfig
from hybridvision.engine.config import OptimConfig
from hybridvision.engine.distributed import keep_freed_memory
from hybridvision.engine.optim import build_optimizer
from hybridvision.env import environment
from hybridvision.factory import create_model
from hybridvision.macs import model_cost
from hybridvision.registry import get_entry, list_models

# coatnet_test re-sized to ~1.6M params / ~27 MMACs at 32x32 (stem stride 1): the stand-in when neither
# ascan_nano nor coatnet_nano is registered.
STANDIN = ("coatnet_test", dict(layout=("CC", "CC", "TTT", "TT"), dims=(32, 64, 128, 192), stem_dims=(16, 32),
                                stem_stride=1, head_dim=32, head_hidden_dim=0))  # fmt: skip

# name: (batched augmentation, channels_last, AdamW kernel, compile, host sync every step, glibc keeps freed memory,
#        bf16 autocast)
VARIANTS = {
    "naive": (False, False, "loop", False, True, False, False),
    "batched_aug": (True, False, "loop", False, True, False, False),
    "channels_last": (True, True, "loop", False, True, False, False),
    "fused_adamw_no_sync": (True, True, "fused", False, False, False, False),
    "keep_freed_memory (fp32 train default)": (True, True, "fused", False, False, True, False),
    "compile": (True, True, "fused", True, False, True, False),
    "bf16_autocast (default on AMX CPUs)": (True, True, "fused", False, False, True, True),
}
DEFAULT = "keep_freed_memory (fp32 train default)"

# Block-level alternatives, measured with the train default (CoAtNet-family models only: they are config fields):
# what the element-wise share of the profile would shrink to with cheaper activations or pooling.
CANDIDATES = {
    "block candidate: conv_act=silu": {"conv_act": "silu"},
    "block candidate: conv_act=gelu_tanh": {"conv_act": "gelu_tanh"},
    "block candidate: pool=avg2": {"pool": "avg2"},
}

KINDS = {  # profiler op name fragment -> kind of work
    "convolution": "conv (fwd+bwd)",
    "addmm": "matmul",
    "aten::mm": "matmul",
    "bmm": "matmul",
    "flash_attention": "attention (SDPA)",
    "batch_norm": "batch norm",
    "layer_norm": "layer norm",
    "gelu": "activation",
    "silu": "activation",
    "sigmoid": "activation",
    "pool": "pooling",
    "copy_": "layout/copies",
    "clone": "layout/copies",
    "adamw": "optimizer",
    "grid_sampler": "augmentation",
    "aten::mul": "element-wise mul/add/div",
    "aten::add": "element-wise mul/add/div",
    "aten::div": "element-wise mul/add/div",
    "aten::sum": "reductions",
    "aten::mean": "reductions",
}


def pick_model(name: str | None) -> tuple[str, dict]:
    if name:
        return name, {}
    for candidate in ("ascan_nano", "coatnet_nano"):
        if candidate in list_models():
            return candidate, {}
    return STANDIN


def set_heap(keep: bool) -> None:
    """glibc's allocation policy for what follows: keep freed memory (train default) or unmap big blocks."""
    if keep:
        keep_freed_memory()
    else:  # glibc's static defaults: blocks of 128 KiB and more are mmap-ed and unmapped on free
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024), libc.mallopt(-1, 128 * 1024)


@dataclass(frozen=True)
class Step:
    """One training configuration: ``prepare()`` before timing it (process-wide settings), ``run(i)`` per step."""

    prepare: Callable[[], None]
    run: Callable[[int], None]


def make_step(name: str, kwargs: dict, variant: tuple, batch: int) -> Step:
    batched, channels_last, impl, compiled, sync, heap, bf16 = variant
    torch.manual_seed(0)
    model = create_model(name, in_chans=1, num_classes=10, img_size=32, drop_path_rate=0.1, **kwargs)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.memory_format = fmt  # the layout the trunk runs in
    model = model.to(memory_format=fmt)
    opt = build_optimizer(model, OptimConfig(impl=impl), torch.device("cpu"))
    fwd = torch.compile(model, fullgraph=True) if compiled else model
    aug = Augment(AugConfig(), (0.286,), (0.353,), 10)
    images = torch.randint(0, 256, (batch, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(batch) % 10

    def augment(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        if batched:
            return aug(images, labels, g)
        pairs = [aug(images[j : j + 1], labels[j : j + 1], g) for j in range(batch)]  # per-image work
        return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])

    def step(i: int) -> None:
        x, t = augment(i)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = aug.loss(fwd(x.contiguous(memory_format=fmt)), t)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if sync:
            loss.item()

    return Step(lambda: set_heap(heap), step)


def measure(steps: dict[str, Step], batch: int, rounds: int, iters: int) -> dict[str, list[float]]:
    """img/s of every configuration per round, the configurations taking turns (bench.interleave)."""
    for name, step in steps.items():
        t0 = time.perf_counter()
        step.prepare()
        step.run(0), step.run(1)  # warm-up (and compilation)
        print(f"warm-up {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    counter = itertools.count(2)
    runs = {name: (lambda s=step: s.run(next(counter))) for name, step in steps.items()}
    before = {name: step.prepare for name, step in steps.items()}
    # One untimed step per turn settles the allocator after a policy change; then ``iters`` timed steps.
    timings = interleaved(runs, batch, rounds=rounds, min_s=0.0, min_iters=iters, warmup_iters=1, warmup_s=0.0,
                          before=before)  # fmt: skip
    return {name: [t.img_per_s for t in runs_] for name, runs_ in timings.items()}


def profile_kinds(step: Step, iters: int = 3) -> dict[str, float]:
    """Share of self CPU time per kind of work over ``iters`` steps."""
    step.prepare()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(iters):
            step.run(i)
    totals: dict[str, float] = {}
    for evt in prof.key_averages():
        if not evt.key.startswith("aten::"):
            continue
        kind = next((v for k, v in KINDS.items() if k in evt.key), "other aten ops")
        totals[kind] = totals.get(kind, 0.0) + evt.self_cpu_time_total
    total = sum(totals.values())
    return {k: round(v / total, 4) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="registered model (default: ascan_nano, else coatnet_nano, else a stand-in)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--iters", type=int, default=3, help="steps per configuration per round")
    p.add_argument("--skip", default="", help="comma-separated variants to leave out (e.g. compile)")
    p.add_argument("--candidates", action="store_true", help="also time block-level alternatives (CoAtNet only)")
    p.add_argument("--out", default="results/speed/cpu-train-speed.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    name, kwargs = pick_model(args.model)
    cost = model_cost(name, img_size=32, in_chans=1, num_classes=10, **kwargs)
    peak = gemm_peak_flops()
    skip = set(args.skip.split(","))
    if not torch.cpu._is_amx_tile_supported():  # bf16 without AMX is emulated: orders of magnitude slower
        skip.add("bf16_autocast (default on AMX CPUs)")
    chosen = {k: v for k, v in VARIANTS.items() if k not in skip}
    steps = {k: make_step(name, kwargs, v, args.batch) for k, v in chosen.items()}
    if DEFAULT in steps and "fused_adamw_no_sync" in steps:  # the allocator A/B runs on the very same model
        steps[DEFAULT] = Step(steps[DEFAULT].prepare, steps["fused_adamw_no_sync"].run)
    if args.candidates and get_entry(name).family == "coatnet":
        default = VARIANTS[DEFAULT]
        steps.update({k: make_step(name, {**kwargs, **v}, default, args.batch) for k, v in CANDIDATES.items()})
    speeds = measure(steps, args.batch, args.rounds, args.iters)
    base = statistics.median(speeds["naive"]) if "naive" in speeds else None
    rows = []
    for k, v in speeds.items():
        med = statistics.median(v)
        rows.append({"config": k, "img_s": round(med, 1), "img_s_runs": [round(x, 1) for x in v],
                     "vs_naive": round(med / base, 3) if base else None,
                     "peak_share": round(6 * cost.macs * med / peak, 4)})  # fmt: skip
        print(f"{k:40s} {med:7.1f} img/s  x{rows[-1]['vs_naive']}  {100 * rows[-1]['peak_share']:.1f}% of peak")
    kinds = profile_kinds(steps[DEFAULT]) if DEFAULT in steps else {}
    result = {
        "what": f"training img/s (batch {args.batch}, 32x32 grey, AdamW, clip, RandAugment + erasing)",
        "model": name,
        "model_kwargs": kwargs,
        "params": cost.params,
        "forward_macs_per_img": cost.macs,
        "gemm_peak_gflops": round(peak / 1e9, 1),
        "rows": rows,
        "profile_of_default": kinds,
        "environment": environment(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(kinds, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
