"""Where onnxruntime's batch-1 time goes, fp32 against static int8 (QDQ), operator kind by operator kind.

For each model: exports fp32 ONNX and int8 QDQ ONNX (calibrated on Fashion-MNIST resized to the model's input, as
``hybridvision export --precision int8`` does), runs each at batch 1 with onnxruntime's profiler (2 intra-op
threads, warm-up first), and sums the profiled kernel time per operator kind (the kernels onnxruntime runs after
its graph fusions: ``QLinearConv``, ``MatMulIntegerToFloat``, ``FusedConv``, ...). Shares show what stays slow in
int8 and why: kernels that are not GEMMs (softmax, norms, elementwise) run in float either way, and every
QuantizeLinear/DequantizeLinear pair left between them costs a pass over the activations. Writes
``results/deploy/int8_profile_<model>.json`` (per kind: milliseconds per image and share, both precisions; the
end-to-end speed-up; where it ran).

    python benchmarks/int8_profile.py ascan_t efficientmod_s [--iters 50] [--out-dir results/deploy]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

import hybridvision as hv
from hybridvision.env import environment
from hybridvision.export.calib import card_preprocess, numbered_labels
from hybridvision.export.deploy import ExportRequest, export_artifact
from hybridvision.export.scoring import Tolerance
from hybridvision.fileio import save_json

THREADS = 2


def export_pair(name: str, folder: Path) -> dict[str, Path]:
    """fp32 and int8 (QDQ, checked) ONNX files of ``name`` at its own input size."""
    torch.manual_seed(0)
    model = hv.create_model(name).eval()
    model.fuse()
    labels = numbered_labels(model.config.num_classes)
    spec = card_preprocess(model, labels)
    files = {}
    for precision in ("fp32", "int8"):
        calib = "fashion-mnist" if precision == "int8" else None
        request = ExportRequest("onnx", precision, 1, False, calib, 64, 64, True, Tolerance.sqnr_only(), THREADS)
        files[precision] = export_artifact(model, folder / f"{precision}.onnx", spec, labels, name, request).path
    return files


def profile(path: Path, iters: int) -> tuple[dict[str, float], float]:
    """(milliseconds per run per operator kind from the profiler, wall milliseconds per run without it)."""
    session = _session(path)
    inp = session.get_inputs()[0]
    x = {inp.name: np.random.default_rng(0).standard_normal([1, *inp.shape[1:]], dtype=np.float32)}
    for _ in range(10):
        session.run(None, x)
    start = time.perf_counter()
    for _ in range(iters):
        session.run(None, x)
    wall_ms = (time.perf_counter() - start) / iters * 1e3
    session = _session(path, profile=True)
    for _ in range(10):
        session.run(None, x)
    kinds: dict[str, float] = defaultdict(float)
    trace = json.loads(Path(session.end_profiling()).read_text())
    runs = sum(1 for e in trace if e.get("name") == "model_run")
    for event in trace:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            kinds[event["args"]["op_name"]] += event["dur"] / 1e3  # microseconds -> ms
    return {k: v / runs for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}, wall_ms


def _session(path: Path, profile: bool = False):
    """An onnxruntime CPU session on ``THREADS`` threads; ``profile``: tracing every kernel beside ``path``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.log_severity_level = 3
    if profile:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(path.with_suffix(""))
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def compare(name: str, iters: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        files = export_pair(name, Path(tmp))
        out = {}
        for precision, path in files.items():
            kinds, wall = profile(path, iters)
            total = sum(kinds.values())
            out[precision] = {
                "wall_ms": wall,
                "kernel_ms": total,
                "kinds": {k: {"ms": v, "share": v / total} for k, v in kinds.items()},
            }
    out["int8_speedup_b1"] = out["fp32"]["wall_ms"] / out["int8"]["wall_ms"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out-dir", default="results/deploy")
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    for name in args.models:
        result = {"model": name, "threads": THREADS, "iters": args.iters} | compare(name, args.iters)
        result["command"] = "python benchmarks/int8_profile.py " + name
        result["environment"] = environment()
        path = Path(args.out_dir) / f"int8_profile_{name}.json"
        save_json(result, path)
        print(f"{path}: int8 {result['int8_speedup_b1']:.2f}x fp32 at batch 1")
        for precision in ("fp32", "int8"):
            top = list(result[precision]["kinds"].items())[:8]
            cells = ", ".join(f"{k} {v['ms']:.2f} ms ({100 * v['share']:.0f}%)" for k, v in top)
            print(f"  {precision} ({result[precision]['wall_ms']:.2f} ms): {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
