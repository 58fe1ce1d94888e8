"""Repeat vs reshape for the EfficientMod modulation, measured on this machine (paper §3.4, Fig. 2).

The paper reports "repeat" (tile the context r times, then multiply) faster on CPU and "reshape" (broadcast the
context over a (.., r, C) view of the value) faster on GPU. Both give identical outputs (checked here and in
tests/test_efficientmod.py). This script times them interleaved in one process, round after round:

- ``model`` rows: whole networks (same weights, only ``modulation`` differs), per variant and batch size;
- ``onnxruntime`` rows: both networks exported to ONNX (Tile + Mul vs Reshape + broadcast Mul) and run by
  onnxruntime's CPU provider at batch 1, the setting of the paper's latency tables;
- ``op`` rows: the modulation alone at each stage's value shape (r = the variant's largest expansion).

Writes results/speed/cpu-efficientmod-modulation.json with the environment block. Ratios are reshape / repeat
(> 1: repeat is faster).

    python benchmarks/efficientmod_modulation.py                      # the committed result (quiet machine)
    python benchmarks/efficientmod_modulation.py --rounds 1 --min-seconds 0.05 --models efficientmod_xxs \\
        --out /tmp/mod.json                                           # smoke run
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from _efficientmod_options import parser, write_result

import hybridvision as hv
from hybridvision.bench.interleave import inference, interleaved, summarize
from hybridvision.export import export_onnx, onnx_session
from hybridvision.models.blocks import modulate


def twin_models(name: str) -> dict[str, torch.nn.Module]:
    """The variant with each modulation, same weights."""
    torch.manual_seed(0)
    models = {mode: hv.create_model(name, modulation=mode).eval() for mode in ("repeat", "reshape")}
    models["reshape"].load_state_dict(models["repeat"].state_dict())
    return models


def model_rows(name: str, batch_sizes: list[int], rounds: int, min_s: float) -> list[dict]:
    models, rows = twin_models(name), []
    for bs in batch_sizes:
        x = torch.randn(bs, 3, 224, 224)
        with torch.inference_mode():
            diff = (models["repeat"](x) - models["reshape"](x)).abs().max().item()
        timings = interleaved({m: inference(models[m], x) for m in models}, bs, rounds=rounds, min_s=min_s)
        rows.append({"kind": "model", "model": name, "batch": bs, "max_abs_diff": diff, **_flat(timings)})
        print(rows[-1], flush=True)
    return rows


def onnx_rows(name: str, rounds: int, min_s: float, threads: int, opset: int) -> list[dict]:
    x = torch.randn(1, 3, 224, 224)
    fns = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, model in twin_models(name).items():
            path = export_onnx(model, Path(tmp) / f"{mode}.onnx", tuple(x.shape), opset=opset).path
            session = onnx_session(path, threads)
            feed = {session.get_inputs()[0].name: x.numpy()}
            fns[mode] = lambda session=session, feed=feed: session.run(None, feed)
        timings = interleaved(fns, 1, rounds=rounds, min_s=min_s)
    row = {"kind": "onnxruntime", "model": name, "batch": 1, "opset": opset, **_flat(timings)}
    print(row, flush=True)
    return [row]


def op_rows(name: str, batch_sizes: list[int], rounds: int, min_s: float) -> list[dict]:
    cfg = hv.get_config(name)
    r, stride, rows = max(cfg.expand_ratios), cfg.stem_stride, []
    for stage, dim in enumerate(cfg.dims):
        side = 224 // (stride * 2**stage)
        for bs in batch_sizes:
            v, ctx = torch.randn(bs, side, side, r * dim), torch.randn(bs, side, side, dim)
            fns = {m: (lambda m=m, v=v, ctx=ctx: modulate(v, ctx, m)) for m in ("repeat", "reshape")}
            timings = interleaved(fns, bs, rounds=rounds, min_s=min_s)
            shape = [bs, side, side, r * dim]
            rows.append(
                {"kind": "op", "model": name, "stage": stage, "batch": bs, "value_shape": shape, **_flat(timings)}
            )
            print(rows[-1], flush=True)
    return rows


def _flat(timings: dict) -> dict:
    return {f"{mode}_{k}": v for mode, stats in summarize(timings, "repeat").items() for k, v in stats.items()}


def main() -> None:
    p = parser(__doc__, "results/speed/cpu-efficientmod-modulation.json")
    p.add_argument("--batch-sizes", default="1,16", help="comma-separated batch sizes (default: 1,16)")
    p.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime rows")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset of the onnxruntime rows (default: 18)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    for name in args.models.split(","):
        rows += model_rows(name, batch_sizes, args.rounds, args.min_seconds)
        if not args.no_onnx:
            rows += onnx_rows(name, args.rounds, args.min_seconds, args.threads, args.opset)
        rows += op_rows(name, batch_sizes, args.rounds, args.min_seconds)
    what = "EfficientMod modulation: repeat (official) vs reshape, interleaved rounds; ratio = reshape/repeat"
    write_result(args, what, "eager (channels_last) and onnxruntime, inference mode", rows)


if __name__ == "__main__":
    main()
