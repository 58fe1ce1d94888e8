"""Training speed of the 30-minute Fashion-MNIST-scenes recipes, measured interleaved in one process.

The recipes are time-boxed, so the mIoU each backbone reaches in 30 minutes depends on how many scenes it trains
on. Runs made in different sessions saw hosts of different speeds; this times one optimizer step (the recipe's
augmentation, forward, backward, AdamW) of every recipe's model on the same batch, round-robin in one process, so
the ratios hold whatever the host's load. ``--bf16`` adds each model under bf16 autocast; ``--infer`` adds its
inference (eval mode, fp32, random pixels) at batch 1 and at the training batch; ``--recipes`` times recipe files
of any head instead of the three models' 30-minute recipes.

    python benchmarks/seg_train_speed.py                 # -> results/speed/seg_fmnist_train_speed.json
    python benchmarks/seg_train_speed.py --bf16 --extra '--head.refine 16'
    python benchmarks/seg_train_speed.py --infer --out results/speed/seg_fmnist_heads_speed.json \
        --recipes configs/seg/fmnist_scenes_ascan_nano_30min.yaml,configs/seg/fmnist_scenes_ascan_nano_30min_fpn.yaml
    python benchmarks/seg_train_speed.py --models ascan_nano --bf16 --batch 32 --extra '--head.refine 16' \
        --profile 10 --out results/speed/seg_fmnist_train_profile.json   # where a step's time goes, by operator kind

``--profile N`` records N more steps of every candidate with torch.profiler and reports each one's self CPU time
by operator kind (convolutions forward and backward, attention, norms, ...), with the largest single operators.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch

from hybridvision.bench.interleave import interleaved
from hybridvision.config import parse_overrides, resolve
from hybridvision.engine import Runtime
from hybridvision.engine.distributed import Dist
from hybridvision.engine.optim import build_optimizer
from hybridvision.env import environment
from hybridvision.fileio import save_json
from hybridvision.seg.config import SegTrainConfig
from hybridvision.seg.task import Segmentation


def recipe_task(recipe: str, extra: list[str], batch: int) -> tuple[SegTrainConfig, Segmentation]:
    """``recipe``'s config (with ``extra`` and ``batch``) and its task, set up on this process."""
    cfg = resolve(SegTrainConfig, recipe, parse_overrides([*extra, "--batch_size", str(batch)]))
    task = Segmentation(cfg)
    task.setup(Runtime(Dist(), contextlib.nullcontext))
    return cfg, task


def infer_step(recipe: str, extra: list[str], batch: int) -> Callable[[], None]:
    """Inference of ``recipe``'s model (eval mode, fp32) on ``batch`` images of its size, as a closure."""
    cfg, task = recipe_task(recipe, extra, batch)
    model = task.build_model().eval()
    x = torch.randn(batch, cfg.data.channels, cfg.img_size, cfg.img_size)  # (B, C, H, W)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def train_step(recipe: str, extra: list[str], bf16: bool, batch: int) -> Callable[[], None]:
    """One optimizer step of ``recipe``'s model on a fixed batch of its training scenes, as a closure."""
    cfg, task = recipe_task(recipe, extra, batch)
    model = task.build_model().train()
    optimizer = build_optimizer(model, cfg.optim, torch.device("cpu"))
    data = next(task.batches([list(range(batch))]))
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = task.loss(model, data, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


# Operator kinds of a training step, by the aten operator's name (first match wins); the rest is "other".
OP_KINDS = (
    ("convolution", ("convolution",)),
    ("attention (matmul + softmax, SDPA's math path)", ("bmm", "softmax", "isneginf", "aten::all")),
    ("linear (mm / addmm)", ("aten::mm", "addmm")),
    ("batch norm", ("batch_norm",)),
    ("layer norm", ("layer_norm",)),
    ("GELU", ("gelu",)),
    ("bilinear resize", ("upsample",)),
    ("copies and casts", ("copy_", "_to_copy")),
    ("loss", ("log_softmax", "nll_loss")),
    ("optimizer", ("adamw",)),
)


def op_kind(name: str) -> str:
    return next((kind for kind, keys in OP_KINDS if any(k in name for k in keys)), "other")


def profile_step(step: Callable[[], None], steps: int) -> dict:
    """Self CPU time per step of ``step``, by operator kind and for its ten largest operators (ms, share)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    ops = [(e.key, e.self_cpu_time_total / 1000 / steps) for e in prof.key_averages()]  # (name, ms per step)
    total = sum(ms for _, ms in ops)
    kinds: Counter[str] = Counter()
    for name, ms in ops:
        kinds[op_kind(name)] += ms
    by_kind = [{"kind": k, "ms": round(ms, 1), "share": round(ms / total, 3)} for k, ms in kinds.items()]
    top = [{"op": n, "ms": round(ms, 1), "share": round(ms / total, 3)} for n, ms in sorted(ops, key=lambda o: -o[1])]
    by_kind.sort(key=lambda r: -r["ms"])
    return {"steps": steps, "ms_per_step": round(total, 1), "by_kind": by_kind, "top_ops": top[:10]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="ascan_nano,coatnet_nano,efficientmod_nano")
    ap.add_argument("--recipes", default="", help="comma-separated recipe files instead of --models (rows: stems)")
    ap.add_argument("--infer", action="store_true", help="also time inference (eval, fp32) at batch 1 and --batch")
    ap.add_argument("--extra", default="", help="flags added to every recipe, e.g. '--head.refine 16'")
    ap.add_argument("--bf16", action="store_true", help="also time each model under bf16 autocast")
    ap.add_argument("--batch", type=int, default=16, help="the recipes' batch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min_s", type=float, default=4.0, help="seconds per candidate per round")
    ap.add_argument("--profile", type=int, default=0, help="also profile this many steps of each candidate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/speed/seg_fmnist_train_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    extra = shlex.split(args.extra)
    candidates, batches = {}, {}
    for label, recipe in recipes(args).items():
        for bf16 in (False, True) if args.bf16 else (False,):
            candidates[f"{label}{' bf16' if bf16 else ''}"] = train_step(recipe, extra, bf16, args.batch)
        for batch in (1, args.batch) if args.infer else ():
            candidates[f"{label} infer b{batch}"] = infer_step(recipe, extra, batch)
            batches[f"{label} infer b{batch}"] = batch
    timings = interleaved(candidates, args.batch, rounds=args.rounds, min_s=args.min_s)
    first = next(iter(candidates))
    base = statistics.median(t.p50_ms for t in timings[first])
    rows = []
    for name, runs in timings.items():
        p50 = statistics.median(t.p50_ms for t in runs)
        batch = batches.get(name, args.batch)
        rows.append({"model": name, "step_ms": round(p50, 1), "img_s": round(1000 * batch / p50, 1)})
        if name not in batches:
            rows[-1]["speed_vs_" + first.replace(" ", "_")] = round(base / p50, 3)
        print(f"{name:32s} {p50:8.1f} ms/call  {rows[-1]['img_s']:7.1f} img/s")
    for row in rows if args.profile else ():
        if row["model"] in batches:
            continue
        row["profile"] = profile_step(candidates[row["model"]], args.profile)
        kinds = ", ".join(f"{k['kind']} {100 * k['share']:.0f}%" for k in row["profile"]["by_kind"][:6])
        print(f"{row['model']}: {kinds}")
    meta = {"batch": args.batch, "rounds": args.rounds, "extra": args.extra, "threads": args.threads}
    save_json({"rows": rows, **meta, "environment": environment()}, Path(args.out))


def recipes(args: argparse.Namespace) -> dict[str, str]:
    """Row label -> recipe file: ``--recipes`` by stem, else each of ``--models``' 30-minute recipe."""
    if args.recipes:
        return {Path(r).stem: r for r in args.recipes.split(",")}
    return {m: f"configs/seg/fmnist_scenes_{m}_30min.yaml" for m in args.models.split(",")}


if __name__ == "__main__":
    main()
