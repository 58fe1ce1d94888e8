"""Speed against the model AsCAN claims to beat: the paper-size T2I AsCAN UNet vs SDXL's UNet, one run.

``ascan_unet_t2i`` (widths 320/640/1280, heads 5/10/20, with its two-block text adapter over 4096-wide Flan-T5-XXL
tokens) against diffusers' ``UNet2DConditionModel`` built from SDXL base's published config (2048-wide tokens,
``hybridvision.diffusion.models.sdxl``), both with random weights (speed does not depend on them; nothing is
downloaded), at the same latent sizes (64x64 = 512^2 images, 128x128 = 1024^2) and the same text context
length (77 tokens).
Per denoiser step (one forward, batch 1, eval and inference mode; CFG doubles both alike): p50 latency through
the bench package's timing core, the latency ratio ours / SDXL's, and the parameter ratio (counted on the meta
device). Writes JSON with the environment.

    python benchmarks/t2i_vs_sdxl.py                             # CPU fp32 -> results/speed/t2i_vs_sdxl-cpu-fp32.json
    python benchmarks/t2i_vs_sdxl.py --device cuda --dtype bf16  # a GPU -> results/speed/t2i_vs_sdxl-cuda-bf16.json
    python benchmarks/t2i_vs_sdxl.py --tiny --out /tmp/t.json    # seconds: tiny stand-ins (tests)

Memory: fp32, ours is 8.8 GB and SDXL's 10.3 GB, too much for both at once on a 23 GB machine, so the models are
timed one after the other (each at every size), not interleaved: run it on a quiet machine. On 2 CPU cores a
128x128 SDXL step takes about 40 s: the default bounds (1 warm-up, at least 3 timed steps) keep the whole run
to about six minutes (measured on a 2-core AMD EPYC).
"""

from __future__ import annotations

import argparse
import gc
import logging
from pathlib import Path
from typing import Any

import torch

import hybridvision as hv
import hybridvision.diffusion  # noqa: F401  (registers ascan_unet_*)
from hybridvision.bench.timing import time_fn
from hybridvision.diffusion.models.sdxl import SDXL_TINY, SDXL_UNET, sdxl_inputs, sdxl_unet
from hybridvision.env import environment
from hybridvision.fileio import save_json
from hybridvision.macs import count_params

log = logging.getLogger("t2i_vs_sdxl")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TINY_OURS = "ascan_unet_t2i_test"


def build_ours(tiny: bool) -> torch.nn.Module:
    return hv.create_model(TINY_OURS, in_chans=4) if tiny else hv.create_model("ascan_unet_t2i")


def build_sdxl(tiny: bool) -> torch.nn.Module:
    return sdxl_unet(SDXL_TINY if tiny else SDXL_UNET)


def ours_inputs(model: torch.nn.Module, batch: int, latent: int, tokens: int, **to: Any) -> dict[str, Any]:
    """Random inputs of one step of ours: latents, timestep, ``tokens`` encoder tokens and their mask."""
    c = model.config
    return dict(
        sample=torch.randn(batch, c.in_chans, latent, latent, **to),
        timestep=torch.tensor(500, device=to.get("device")),
        encoder_hidden_states=torch.randn(batch, tokens, c.context_dim, **to),
        encoder_attention_mask=torch.ones(batch, tokens, dtype=torch.bool, device=to.get("device")),
    )


CANDIDATES = {"ascan_unet_t2i": (build_ours, ours_inputs), "sdxl_unet": (build_sdxl, sdxl_inputs)}


def param_counts(tiny: bool) -> dict[str, int]:
    """Parameters of both, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        return {name: count_params(build(tiny)) for name, (build, _) in CANDIDATES.items()}


def time_model(name: str, args: argparse.Namespace) -> dict[int, dict[str, float]]:
    """p50/p90 ms of one denoiser step at each latent size, for one model (built, timed, freed)."""
    build, make_inputs = CANDIDATES[name]
    to = {"device": torch.device(args.device), "dtype": DTYPES[args.dtype]}
    model = build(args.tiny).to(**to).eval()
    rows = {}
    for latent in args.latents:
        rows[latent] = time_step(model, make_inputs(model, 1, latent, args.tokens, **to), args)
        log.info(
            "%s at %dx%d: p50 %.1f ms over %d steps",
            name,
            latent,
            latent,
            rows[latent]["p50_ms"],
            rows[latent]["iters"],
        )
    del model
    gc.collect()
    return rows


def time_step(model: torch.nn.Module, inputs: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    """p50/p90 ms of ``model(**inputs)`` in inference mode, on the bench's timing loop (one sync per step)."""

    def step() -> None:
        with torch.inference_mode():
            model(**inputs)

    timing = time_fn(
        step, 1, device=args.device, warmup_iters=args.warmup, warmup_s=0.0, min_iters=args.iters,
        min_s=args.min_s, max_s=args.max_s,
    )  # fmt: skip
    return {"p50_ms": round(timing.p50_ms, 2), "p90_ms": round(timing.p90_ms, 2), "iters": len(timing.times)}


def compare(args: argparse.Namespace) -> dict[str, Any]:
    params = param_counts(args.tiny)
    timings = {name: time_model(name, args) for name in CANDIDATES}
    rows = []
    for latent in args.latents:
        ours, theirs = timings["ascan_unet_t2i"][latent], timings["sdxl_unet"][latent]
        rows.append(
            {
                "latent": f"{latent}x{latent}", "image": f"{8 * latent}x{8 * latent}", "tokens": args.tokens,
                "ascan_p50_ms": ours["p50_ms"], "sdxl_p50_ms": theirs["p50_ms"],
                "latency_ratio_ascan_to_sdxl": round(ours["p50_ms"] / theirs["p50_ms"], 4),
                "ascan_iters": ours["iters"], "sdxl_iters": theirs["iters"],
            }
        )  # fmt: skip
    return {
        "what": "one denoiser step (batch 1, eval, inference mode), random weights, same latent and token count",
        "models": {
            "ascan_unet_t2i": "AsCAN T2I UNet (ours: our block counts) + 2-block text adapter, 4096-wide context",
            "sdxl_unet": "diffusers UNet2DConditionModel, SDXL base config, 2048-wide context + text_time",
        },
        "tiny": args.tiny, "device": args.device, "dtype": args.dtype, "order": "sequential: one model, then the other",
        "params": params, "param_ratio_ascan_to_sdxl": round(params["ascan_unet_t2i"] / params["sdxl_unet"], 4),
        "rows": rows, "environment": environment(args.device),
    }  # fmt: skip


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--latents", default="64,128", help="latent sizes, comma-separated (default: 64,128)")
    p.add_argument("--tokens", type=int, default=77, help="text context length (default: 77, CLIP's)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up steps per setting")
    p.add_argument("--iters", type=int, default=3, help="at least this many timed steps per setting")
    p.add_argument("--min-s", type=float, default=5.0, help="and at least this many seconds")
    p.add_argument("--max-s", type=float, default=600.0, help="but at most this many seconds per setting")
    p.add_argument("--tiny", action="store_true", help="tiny stand-ins of both models (seconds; for tests)")
    p.add_argument("--out", type=Path, help="JSON to write (default: results/speed/t2i_vs_sdxl-DEV-DTYPE.json)")
    args = p.parse_args(argv)
    args.latents = [int(s) for s in args.latents.split(",") if s]
    args.out = args.out or Path(f"results/speed/t2i_vs_sdxl-{torch.device(args.device).type}-{args.dtype}.json")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = compare(args)
    save_json(result, args.out)
    for row in result["rows"]:
        print(
            f"latent {row['latent']}: AsCAN {row['ascan_p50_ms']:.1f} ms, SDXL {row['sdxl_p50_ms']:.1f} ms, "
            f"ratio {row['latency_ratio_ascan_to_sdxl']:.3f}"
        )
    print(f"params: {result['params']} (ratio {result['param_ratio_ascan_to_sdxl']:.3f}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
