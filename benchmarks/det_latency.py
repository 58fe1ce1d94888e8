"""Mask R-CNN latency on the CPU at COCO's test size: the paper's three detectors, one 800x1333 image, batch 1.

    python benchmarks/det_latency.py                  # -> results/speed/det-cpu-fp32-800x1333.json
    python benchmarks/det_latency.py --rounds 1 --out /tmp/det.json --models maskrcnn_efficientmod_s   # smoke
    python benchmarks/det_latency.py --runs runs/det/det_fmnist_ascan_nano,... --size 64,64 --channels 1 \
        --out results/speed/det_fmnist_speed.json    # trained detectors on one Fashion-MNIST test scene

``maskrcnn_efficientmod_s``, ``maskrcnn_ascan_t`` and ``maskrcnn_coatnet_0`` (the COCO 1x settings of
``configs/det/``: images resized to 800 on the short side, at most 1333) with random weights, since no trained
detector exists here: the backbone, FPN and RPN cost does not depend on the weights, but how many boxes reach the
mask head does, so every row records its detections. Eval mode, inference mode, fp32, one image of 800x1333
(no resize needed), timed interleaved in one process (round after round, order reversed every other round) with
the bench package's timing loop; rows hold the median p50 over rounds and the spread of the rounds' p50s. The
record names which nms and RoIAlign kernels ran (``hybridvision.vision_ops.kernels()``): where torchvision's C
extension cannot load, nms is ours (pure torch) and RoIAlign is ``--roi_align``: ours (``grid``, the default of
``det train``, ``det eval`` and ``det predict``) or torchvision's Python fallback (``eager``, ``compiled``).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import hybridvision as hv
from hybridvision.bench.interleave import inference, interleaved
from hybridvision.env import environment
from hybridvision.fileio import save_json
from hybridvision.vision_ops import ROI_ALIGN_MODES, import_torchvision, kernels, set_roi_align

MODELS = ("maskrcnn_efficientmod_s", "maskrcnn_ascan_t", "maskrcnn_coatnet_0")
OUT = "results/speed/det-cpu-fp32-800x1333.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated registered detectors")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument(
        "--runs", default="", help="comma-separated detection runs or saved weights folders (instead of --models)"
    )
    p.add_argument("--size", default="800,1333", help="the image's H,W")
    p.add_argument("--channels", type=int, default=3, help="the image's channels")
    p.add_argument("--roi_align", default="grid", choices=ROI_ALIGN_MODES, help="RoIAlign without the extension")
    p.add_argument("--out", default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import_torchvision()
    set_roi_align(args.roi_align)
    torch.manual_seed(0)
    h, w = (int(v) for v in args.size.split(","))
    image = _image(args, h, w)
    models = _runs(args.runs) if args.runs else {name: hv.create_model(name).eval() for name in args.models.split(",")}
    timings = interleaved(
        {name: inference(model, [image]) for name, model in models.items()},
        1,
        rounds=args.rounds,
        min_s=0.0,
        min_iters=2,
        warmup_iters=1,
        warmup_s=0.0,
    )
    rows = []
    for name, model in models.items():
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            detections = len(model([image])[0]["boxes"])
        p50 = [t.p50_ms for t in timings[name]]
        rows.append(
            {
                "model": name,
                "params_m": round(sum(q.numel() for q in model.parameters()) / 1e6, 2),
                "latency_p50_ms": round(statistics.median(p50), 1),
                "latency_p50_ms_min": round(min(p50), 1),
                "latency_p50_ms_max": round(max(p50), 1),
                "detections": detections,
                "gmacs": round(counter.get_total_flops() / 2e9, 3),  # what ran on this image, mask head included
            }
        )
        print(rows[-1])
    record = {
        "what": f"Mask R-CNN latency, one {h}x{w} image, batch 1, fp32, eval, "
        + ("trained weights (EMA where kept)" if args.runs else "random weights"),
        "rounds": args.rounds,
        "threads": args.threads,
        "kernels": kernels(),
        "rows": rows,
        "environment": environment("cpu"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_json(record, args.out)
    print(f"wrote {args.out}")


def _image(args: argparse.Namespace, h: int, w: int) -> torch.Tensor:
    """Random pixels for random weights; for trained runs, a scene of their own test split (so they detect)."""
    if not args.runs:
        return torch.rand(args.channels, h, w, generator=torch.Generator().manual_seed(0))  # (C, H, W) on [0, 1]
    from hybridvision.data import FASHION_MNIST_DIR
    from hybridvision.data.scenes import SceneConfig, render, scene_items, scene_table

    cfg = SceneConfig(canvas=h)
    got = scene_items(FASHION_MNIST_DIR, "test", cfg)
    table = scene_table(cfg, 1, len(got.images), got.stream)
    pixels, _ = render(cfg, table, got.images, got.labels, torch.tensor([0]))  # (1, 1, H, W) uint8
    return pixels[0].float().div(255).expand(args.channels, -1, -1)  # (1, H, W) -> (C, H, W)


def _runs(runs: str) -> dict[str, torch.nn.Module]:
    """Trained detection runs or saved folders by detector name (EMA weights where kept, as det eval's default)."""
    from hybridvision.det.evaluate import saved_model

    out = {}
    for run in runs.split(","):
        model, info = saved_model(Path(run))
        out[info["model"]] = model.eval()
    return out


if __name__ == "__main__":
    main()
