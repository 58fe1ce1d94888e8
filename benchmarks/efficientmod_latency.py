"""CPU latency of the EfficientMod variants at batch 1: eager PyTorch and onnxruntime, fp32, all threads.

Protocol (docs/models/efficientmod.md, spec §5): eval + inference mode, drop path off, channels_last, layer
scale folded (``model.fuse()``); the ONNX file is exported from that same model with
``hybridvision.export.export_onnx`` (opset 20 by default: its native Gelu stays one kernel in onnxruntime,
where opset 18's decomposed erf form is not re-fused) and run by onnxruntime's CPU provider with ``--threads``
intra-op threads.
Each variant's two backends take turns for ``--rounds`` rounds (warm-up >= 2 s, then >= ``--min-iters``
iterations and >= ``--min-seconds``); p50/p90/p99 come from all timed iterations pooled over rounds, and
``ratio_to_eager`` is the median of the per-round p50 ratios (robust to load drifting between rounds).

Writes results/cpu-efficientmod-latency.csv, one row per (model, backend), each with the environment.

    python benchmarks/efficientmod_latency.py                                    # the committed result
    python benchmarks/efficientmod_latency.py --rounds 1 --min-iters 5 --min-seconds 0.1 \\
        --models efficientmod_xxs --out /tmp/lat.csv                             # smoke run
"""

from __future__ import annotations

import csv
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from _ab import interleaved, parser

import hybridvision as hv
from hybridvision.bench.env import environment
from hybridvision.bench.macs import model_cost
from hybridvision.bench.timing import Timing
from hybridvision.checkpoint import atomic_write
from hybridvision.export import check_onnx, export_onnx, onnx_session


def backends(name: str, tmp: Path, threads: int, opset: int) -> tuple[dict[str, Callable[[], object]], float]:
    """The eager and onnxruntime forwards of one variant, and onnxruntime's max |difference| from eager."""
    torch.manual_seed(0)
    model = hv.create_model(name).eval().fuse()
    x = torch.randn(1, 3, *model.config.img_hw)
    onnx = export_onnx(model, tmp / f"{name}.onnx", tuple(x.shape), opset=opset)
    diff = check_onnx(model, onnx.path, x, atol=1e-4)
    session = onnx_session(onnx.path, threads=threads)
    feed = {session.get_inputs()[0].name: x.numpy()}

    def eager() -> object:
        with torch.inference_mode():
            return model(x)

    return {"eager": eager, "onnxruntime": lambda: session.run(None, feed)}, diff


def rows_for(name: str, timings: dict[str, list[Timing]], diff: float, opset: int, env: dict) -> list[dict]:
    cost = model_cost(name)
    eager_p50 = [t.p50_ms for t in timings["eager"]]
    rows = []
    for backend, runs in timings.items():
        pooled = Timing(1, tuple(s for t in runs for s in t.times))
        ratios = [t.p50_ms / e for t, e in zip(runs, eager_p50)]
        rows.append(
            {
                "model": name,
                "backend": backend,
                "batch": 1,
                "img_size": cost.input_shape[-1],
                "precision": "fp32",
                "layout": "channels_last" if backend == "eager" else "onnx (NCHW input)",
                "fused": True,
                "params": cost.params,
                "macs": cost.macs,
                "p50_ms": round(pooled.p50_ms, 3),
                "p90_ms": round(pooled.p90_ms, 3),
                "p99_ms": round(pooled.p99_ms, 3),
                "ratio_to_eager": round(statistics.median(ratios), 4),
                "iters": len(pooled.times),
                "rounds": len(runs),
                "onnx_opset": opset if backend == "onnxruntime" else "",
                "onnx_max_abs_diff": diff,
                **env,
            }
        )
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def main() -> None:
    p = parser(__doc__, "results/cpu-efficientmod-latency.csv", rounds=3)
    p.add_argument("--min-iters", type=int, default=200, help="timed iterations per backend and round")
    p.add_argument("--opset", type=int, default=20, help="ONNX opset (20 has a native Gelu; default: 20)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            fns, diff = backends(name, Path(tmp), args.threads, args.opset)
            timings = interleaved(
                fns,
                1,
                rounds=args.rounds,
                min_s=args.min_seconds,
                min_iters=args.min_iters,
                warmup_iters=10,
                warmup_s=2,
            )
            rows += rows_for(name, timings, diff, args.opset, environment())
            for row in rows[-2:]:
                print({k: row[k] for k in ("model", "backend", "p50_ms", "p90_ms", "p99_ms", "ratio_to_eager")})
    write_csv(rows, Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
