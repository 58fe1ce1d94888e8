"""Time of a training step and of inference of the scenes detector with each RoIAlign, interleaved in one process.

Where torchvision's C extension cannot load, ``hybridvision.vision_ops`` supplies RoIAlign: ``grid`` (ours, the
default: matmuls on maps of up to ``MATMUL_MAX_PIXELS`` pixels, which the scenes' maps all are, ``grid_sample`` on
larger ones), ``grid_sample`` (ours with ``grid_sample`` on every map) or torchvision's Python fallback (``eager``;
``compiled`` takes seconds to compile every new shape family, so it is left out unless named); ``MODE:bf16`` runs
MODE under bf16 autocast, as ``det train --amp bf16`` does, and ``MODE:roisN`` samples N RoIs per image for the
heads' loss (``--detector.box_samples N``; default the config's). This builds the
default detector (``det train``'s config: Mask R-CNN on ascan_nano, 64x64 grey scenes), takes one fixed batch of
training scenes, and times, mode after mode in every round (order reversed every other round), a training step
(forward with the targets and backward; no optimizer step, so every step does the same work) and inference on
the same images (eval mode), and the backbone with its FPN alone (forward and backward), so its share of a step shows.
Weights are random (seeded) unless ``--weights`` names a trained detector (a run's weights folder): a trained RPN
proposes boxes on the items, so more RoIs are positive and reach the mask head, as in a real run. Prints the
medians over rounds and each mode's per-round ratio to the first mode, and the time to read one batch of
training scenes (decode and masks, as ``det train`` reads them); ``--profile N`` adds each mode's self CPU time by
operator over N more training steps.

    python benchmarks/det_step.py                              # eager vs grid, batch 4, 3 rounds
    python benchmarks/det_step.py --modes grid_sample,grid --batch 16 --profile 2 \
        --out results/speed/det_fmnist_step.json
    python benchmarks/det_step.py --modes grid,grid:bf16 --batch 16 --rounds 5 --profile 2 \
        --weights results/det/det_fmnist_ascan_nano/weights --out results/speed/det_fmnist_step_trained.json
    python benchmarks/det_step.py --modes grid:bf16,grid:bf16:rois64,grid:bf16:rois32 --batch 16 --rounds 5 \
        --weights results/det/det_fmnist_ascan_nano_bf16_rois32/weights --out results/speed/det_fmnist_step_rois.json
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hybridvision import vision_ops
from hybridvision.bench.interleave import interleaved
from hybridvision.data.scenes import SceneConfig
from hybridvision.det.config import DetTrainConfig, detection_model
from hybridvision.det.data import annotation_file, load_split
from hybridvision.det.model import DetModel, load_weights
from hybridvision.det.scenes import ScenesConfig, write_scenes
from hybridvision.engine.precision import autocast_for
from hybridvision.env import environment
from hybridvision.fileio import save_json
from hybridvision.vision_ops import import_torchvision, kernels, set_roi_align

MATMUL_MAX_PIXELS = vision_ops.MATMUL_MAX_PIXELS


def scenes_batch(root: str, batch: int) -> tuple[list[torch.Tensor], list[dict]]:
    """The first ``batch`` training scenes of ``root`` (a few scenes are written to a temporary folder when it
    holds none), as the detector takes them: (1, 64, 64) images on [0, 1] and torchvision's targets."""
    if not annotation_file(root, "train2017").is_file():
        root = tempfile.mkdtemp(prefix="det_step_")
        small = SceneConfig(train_scenes=max(batch, 16), eval_scenes=16, val_scenes=16)
        write_scenes(root, ScenesConfig(scenes=small))
    images, targets, _ = next(load_split(root, "train2017", 1).batches([list(range(batch))]))
    return [x.float() / 255 for x in images], targets


def read_time(root: str, batch: int, rounds: int) -> float:
    """Median seconds to read ``batch`` random training scenes (image decode, targets, masks), as training does."""
    split = load_split(root, "train2017", 1)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(rounds):
        idx = torch.randint(len(split), (batch,), generator=gen).tolist()
        start = time.perf_counter()
        next(split.batches([idx]))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_mode(mode: str) -> tuple[str, bool, int | None]:
    """``ROI_ALIGN[:bf16][:roisN]`` -> (the RoIAlign mode, bf16 autocast or not, RoIs sampled per image or None)."""
    roi_align, *tail = mode.split(":")
    rois = [int(t[len("rois") :]) for t in tail if t.startswith("rois")]
    return roi_align, "bf16" in tail, rois[0] if rois else None


def use_mode(model: DetModel, mode: str) -> None:
    """``set_roi_align`` for the mode's RoIAlign (``grid_sample``: ours with ``grid_sample`` on maps of any size)
    and the RoIs sampled per image its ``:roisN`` tail asks for (else the config's); ``:bf16`` is ``autocast``'s."""
    roi_align, _, rois = parse_mode(mode)
    set_roi_align("grid" if roi_align == "grid_sample" else roi_align)
    vision_ops.MATMUL_MAX_PIXELS = 0 if roi_align == "grid_sample" else MATMUL_MAX_PIXELS
    model.detector.roi_heads.fg_bg_sampler.batch_size_per_image = rois or model.config.detector.box_samples


def autocast(mode: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for a mode with a ``:bf16`` tail (what ``det train --amp bf16`` runs), else nothing."""
    return autocast_for(torch.bfloat16 if parse_mode(mode)[1] else None, torch.device("cpu"))()


def train_step(model: DetModel, images: list, targets: list, clock: dict, mode: str) -> Callable[[], None]:
    """Forward with the targets and backward, the two timed apart into ``clock``."""

    def step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        with autocast(mode):
            loss = sum(model(images, targets).values())
        middle = time.perf_counter()
        loss.backward()
        clock["forward"].append(middle - start)
        clock["backward"].append(time.perf_counter() - middle)

    return step


def backbone_step(model: DetModel, images: list, mode: str) -> Callable[[], None]:
    """The backbone and its FPN alone on the detector's own input batch: forward, and backward from every level."""
    batch = model.detector.transform(images)[0].tensors  # (B, C, H, W), normalised and padded

    def step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        with autocast(mode):
            levels = model.detector.backbone(batch)
        sum(level.float().mean() for level in levels.values()).backward()

    return step


def predict(model: DetModel, images: list, mode: str) -> Callable[[], object]:
    def run() -> object:
        model.eval()
        with torch.inference_mode(), autocast(mode):
            return model(images)

    return run


def profile(step: Callable[[], None], steps: int) -> list[dict]:
    """The 12 largest operators by self CPU time per step (ms, share of the step's total)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as record

    with record(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    ops = [(e.key, e.self_cpu_time_total / 1000 / steps) for e in prof.key_averages()]
    total = sum(ms for _, ms in ops)
    top = sorted(ops, key=lambda o: -o[1])[:12]
    return [{"op": name, "ms": round(ms, 1), "share": round(ms / total, 3)} for name, ms in top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--modes", default="eager,grid", help="RoIAlign modes (grid:bf16 for bf16 autocast), the first the baseline"
    )
    ap.add_argument("--batch", type=int, default=4, help="scenes per step")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--root", default=DetTrainConfig().data.root, help="a scenes COCO folder (else a few are made)")
    ap.add_argument("--profile", type=int, default=0, help="also profile this many training steps per mode")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", default="", help="a trained detector's weights (default: random, seeded)")
    ap.add_argument("--out", default="", help="JSON file for the numbers (none: print only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import_torchvision()
    modes = args.modes.split(",")
    torch.manual_seed(0)
    cfg = DetTrainConfig()
    model = DetModel(detection_model(cfg, 11))
    if args.weights:
        load_weights(model, args.weights)
    images, targets = scenes_batch(args.root, args.batch)
    clocks = {m: {"forward": [], "backward": []} for m in modes}
    candidates, before = {}, {}
    for mode in modes:
        candidates[f"{mode} train"] = train_step(model, images, targets, clocks[mode], mode)
        candidates[f"{mode} predict"] = predict(model, images, mode)
        candidates[f"{mode} backbone"] = backbone_step(model, images, mode)
        for what in ("train", "predict", "backbone"):
            before[f"{mode} {what}"] = lambda m=mode: use_mode(model, m)
    for name, run in candidates.items():  # one untimed call each (first-call costs), then one timed per round
        before[name]()
        run()
    timings = interleaved(
        candidates, args.batch, rounds=args.rounds, min_s=0.0, min_iters=1, warmup_iters=0, warmup_s=0.0, before=before
    )
    rows, baseline = [], modes[0].replace(":", "_")  # a JSON key: grid:bf16 -> grid_bf16
    for mode in modes:
        row = {"roi_align": mode}
        for what in ("train", "predict"):
            runs = [t.p50_ms for t in timings[f"{mode} {what}"]]
            base = [t.p50_ms for t in timings[f"{modes[0]} {what}"]]
            row[f"{what}_ms"] = round(statistics.median(runs), 1)
            row[f"{what}_ms_min"], row[f"{what}_ms_max"] = round(min(runs), 1), round(max(runs), 1)
            row[f"{what}_speedup_vs_{baseline}"] = round(statistics.median(b / r for b, r in zip(base, runs)), 2)
        for part in ("forward", "backward"):  # the untimed first step included
            row[f"train_{part}_ms"] = round(1000 * statistics.median(clocks[mode][part]), 1)
        backbone = [t.p50_ms for t in timings[f"{mode} backbone"]]
        row["backbone_train_ms"] = round(statistics.median(backbone), 1)  # forward and backward, FPN included
        row["backbone_share"] = round(row["backbone_train_ms"] / row["train_ms"], 3)
        rows.append(row)
        print(
            f"{mode:9s} train {row['train_ms']:9.1f} ms (forward {row['train_forward_ms']:.0f}, backward "
            f"{row['train_backward_ms']:.0f}; x{row[f'train_speedup_vs_{baseline}']})   predict "
            f"{row['predict_ms']:8.1f} ms (x{row[f'predict_speedup_vs_{baseline}']})   backbone+FPN "
            f"{row['backbone_train_ms']:.0f} ms ({100 * row['backbone_share']:.0f}% of a step)"
        )
    read_s = read_time(args.root, args.batch, args.rounds) if annotation_file(args.root, "train2017").is_file() else 0
    print(f"reading a batch of {args.batch} training scenes: {1000 * read_s:.1f} ms")
    for row in rows if args.profile else ():
        use_mode(model, row["roi_align"])
        row["profile"] = profile(candidates[f"{row['roi_align']} train"], args.profile)
        print(row["roi_align"], ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in row["profile"][:8]))
    if args.out:
        meta = {"batch": args.batch, "rounds": args.rounds, "threads": args.threads, "nms": kernels()["nms"]}
        meta |= {"weights": args.weights or "random (seeded)", "read_batch_ms": round(1000 * read_s, 1)}
        save_json({"rows": rows, **meta, "environment": environment("cpu")}, Path(args.out))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
