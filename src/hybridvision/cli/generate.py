"""``hybridvision generate RUN``: a PNG grid of samples from a trained diffusion run (or its final/ folder).

hybridvision generate runs/000-ascan_unet_fmnist --class 9 --n 16 --sampler heun --cfg 2.0 --seed 0 --out grid.png
hybridvision generate runs/000-ascan_unet_fmnist --class sneaker --class bag --cfg-schedule sampled
hybridvision generate runs/000-ascan_unet_fmnist --n 10 --out all.png     # every class, one row each
hybridvision generate runs/t2i_stage2 --prompt "a photo of a sneaker" --n 16 --out grid.png
hybridvision generate runs/t2i_stage2 --prompts-file prompts.txt --n 8    # one prompt per line, one row each
hybridvision generate runs/000-ascan_unet_fmnist --save-pipeline pipe/    # a diffusers pipeline folder, no grid

Sampling runs through the run's ``AsCANPipeline`` (a diffusers ``DiffusionPipeline``); ``--save-pipeline`` writes
that pipeline (EMA weights unless --weights model, the --sampler's scheduler) for ``from_pretrained``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..data.images import image_format
from ..fileio import check_folder, check_writable
from .common import console

MEMORY_HINT = "sample on the CPU (--device cpu), or a smaller model; --n only sets how many images in total"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="diffusion run directory, or a saved final/ folder")
    parser.add_argument(
        "--class",
        dest="classes",
        action="append",
        metavar="N|NAME",
        help="class index or name (repeatable; default: all) for a class-conditioned run",
    )
    parser.add_argument(
        "--prompt", dest="prompts", action="append", metavar="TEXT", help="a prompt for a text run (repeatable)"
    )
    parser.add_argument("--prompts-file", type=Path, metavar="FILE", help="prompts for a text run, one per line")
    parser.add_argument(
        "--allow-empty", action="store_true", help='accept empty prompts: "" samples unconditionally (the CFG null)'
    )
    parser.add_argument("--n", type=int, default=16, help="images per class or prompt (default: 16)")
    parser.add_argument("--sampler", default="heun", help="ddpm, ddim, euler or heun (default: heun, the paper's)")
    parser.add_argument("--steps", type=int, default=30, help="sampler steps (default: 30)")
    parser.add_argument("--cfg", type=float, default=1.78, help="constant guidance scale (default: 1.78, the paper's)")
    parser.add_argument(
        "--cfg-schedule",
        default="constant",
        help="constant (--cfg at every step), sampled (AsCAN: steps 5..N, 1.1 -> 3.6) or none",
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed: the same seed gives the same images")
    parser.add_argument("--weights", default="ema", choices=("ema", "model"), help="EMA (default) or raw weights")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--out", type=Path, default=Path("grid.png"), help="image to write: .png (default: grid.png), .jpg, .webp, .bmp"
    )
    parser.add_argument(
        "--save-pipeline",
        type=Path,
        metavar="DIR",
        help="write the run as a diffusers pipeline folder (AsCANPipeline.from_pretrained) instead of a grid",
    )


def prompts_of(args: argparse.Namespace) -> list[str] | None:
    """The cleaned prompts of --prompt and --prompts-file (None when neither was given)."""
    from ..diffusion.text.prompts import clean_prompts, read_prompts_file

    if args.prompts is None and args.prompts_file is None:
        return None
    if args.classes:
        raise ValueError("pass --class or --prompt/--prompts-file, not both")
    given = list(args.prompts or [])
    if args.prompts_file is not None:
        given += read_prompts_file(args.prompts_file, allow_empty=args.allow_empty)
    return clean_prompts(given, allow_empty=args.allow_empty)


def run(args: argparse.Namespace) -> int:
    from ..diffusion.generate import generate_grid, save_pipeline
    from ..diffusion.sampling.samplers import SampleConfig

    if args.save_pipeline is not None:
        check_folder(args.save_pipeline, "--save-pipeline", "to write the pipeline in")
        SampleConfig(sampler=args.sampler)  # an unknown sampler is refused before the run is read
        folder = save_pipeline(args.run, args.save_pipeline, sampler=args.sampler, use_ema=args.weights == "ema")
        console.print(f"wrote {folder} (AsCANPipeline, {args.weights} weights, {args.sampler} scheduler)")
        return 0

    for flag, value in (("--n", args.n), ("--steps", args.steps)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if not (math.isfinite(args.cfg) and args.cfg >= 0):  # inf would saturate every pixel to 0 or 255
        raise ValueError(f"--cfg must be a finite guidance scale >= 0 (the paper's: 1.78), got {args.cfg}")
    check_writable(args.out, "--out")
    image_format(args.out)  # a grid is written in the format its name says, or refused before sampling
    prompts = prompts_of(args)
    cfg = SampleConfig(sampler=args.sampler, steps=args.steps, cfg=args.cfg_schedule, cfg_scale=args.cfg)
    out = generate_grid(
        args.run, args.classes, args.n, cfg, args.out, prompts=prompts, seed=args.seed,
        use_ema=args.weights == "ema", device=args.device,
    )  # fmt: skip
    console.print(f"wrote {out}")
    return 0
