"""Which memory layout EfficientMod runs in, and what folding the layer scale buys, measured on this machine.

Candidates (same weights), timed interleaved in one process, round after round:
- ``channels_last``: the family default; every block's permutes are free views;
- ``nchw``: contiguous NCHW storage (each block's LayerNorm and residual then work on strided views);
- ``channels_last_fused``: channels_last after ``model.fuse()`` (layer scale folded into the projection).

Writes results/speed/cpu-efficientmod-layout.json with the environment block; ratios are to ``channels_last``.

    python benchmarks/efficientmod_layout.py
    python benchmarks/efficientmod_layout.py --rounds 1 --min-seconds 0.05 --models efficientmod_xxs --out /tmp/l.json
"""

from __future__ import annotations

import torch
from _efficientmod_options import parser, write_result

import hybridvision as hv
from hybridvision.bench.interleave import inference, interleaved, summarize


def candidates(name: str) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    base = hv.create_model(name).eval()
    out = {}
    for label, fmt, fuse in [
        ("channels_last", torch.channels_last, False),
        ("nchw", torch.contiguous_format, False),
        ("channels_last_fused", torch.channels_last, True),
    ]:
        model = hv.create_model(name).eval()
        model.load_state_dict(base.state_dict())
        model.memory_format = fmt
        model = model.to(memory_format=fmt)
        out[label] = model.fuse() if fuse else model
    return out


def main() -> None:
    p = parser(__doc__, "results/speed/cpu-efficientmod-layout.json")
    p.add_argument("--batch-sizes", default="1,16", help="comma-separated batch sizes (default: 1,16)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models.split(","):
        models = candidates(name)
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            x = torch.randn(bs, 3, 224, 224)
            fns = {label: inference(m, x) for label, m in models.items()}
            stats = summarize(interleaved(fns, bs, rounds=args.rounds, min_s=args.min_seconds), "channels_last")
            rows.append({"model": name, "batch": bs, **{f"{k}_{s}": v for k, d in stats.items() for s, v in d.items()}})
            print(rows[-1], flush=True)
    what = "EfficientMod memory layout and layer-scale folding, interleaved rounds; ratio = x / channels_last"
    write_result(args, what, "eager, inference_mode", rows)


if __name__ == "__main__":
    main()
