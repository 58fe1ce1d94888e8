"""Which part of a held-out prompt a text-to-image model fails on: the class *name* or the *template*.

The held-out prompts (``diffusion/prompts.py``) change both at once: names never trained on ("a pair of jeans")
in templates never trained on ("a studio shot of ..."). This crosses the two: training names x training
templates, held-out names x training templates, training names x held-out templates, held-out x held-out. Each
cell samples ``--per-class`` prompts of every class (cycling through that class's name x template combinations)
``--n`` times with one sampler and seed, and scores the samples with our Fashion-MNIST classifier (the share
assigned to the class the prompt names), overall and per class. Writes JSON with the environment.

    python benchmarks/t2i_prompt_split.py runs/t2i/fmnist_t2i_stage1_32      # -> results/t2i_prompt_split.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from hybridvision.diffusion.eval.judge import load_classifier, probe_images
from hybridvision.diffusion.generate import generate_prompts, load_denoiser
from hybridvision.diffusion.sampling.samplers import SampleConfig
from hybridvision.diffusion.text.prompts import FMNIST_NAMES, HELD_OUT_TEMPLATES, TRAIN_TEMPLATES
from hybridvision.env import environment
from hybridvision.fileio import save_json

CELLS = ((False, False), (True, False), (False, True), (True, True))  # (held-out names, held-out templates)


def cell_prompts(held_names: bool, held_templates: bool, per_class: int) -> list[tuple[str, int]]:
    """``per_class`` prompts of every class, spread over its name x template combinations: (prompt, class)."""
    templates = HELD_OUT_TEMPLATES if held_templates else TRAIN_TEMPLATES
    out = []
    for k, (train, held) in enumerate(FMNIST_NAMES):
        combos = [t.format(name) for name in (held if held_names else train) for t in templates]
        step = 5 if len(combos) % 5 else 1  # 5 is coprime to every other count: names and templates both vary
        out += [(combos[(i * step) % len(combos)], k) for i in range(per_class)]
    return out


def score_cell(denoiser, probe, prompts: list[tuple[str, int]], n: int, cfg: SampleConfig, seed: int) -> dict:
    images = generate_prompts(denoiser, [p for p, _ in prompts], n, cfg, seed=seed, batch_size=100)
    labels = torch.tensor([k for _, k in prompts]).repeat_interleave(n)  # (N,) the class each sample asks for
    right = probe_images(probe, images, 100) == labels
    per_class = [round(100 * right[labels == k].float().mean().item(), 1) for k in range(len(FMNIST_NAMES))]
    return {"cond_acc": round(100 * right.float().mean().item(), 2), "n": len(labels), "per_class": per_class}


def _split(held: bool) -> str:
    return "held-out" if held else "training"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a text-to-image training run (or its final/ folder)")
    parser.add_argument("--per-class", type=int, default=10, help="prompts per class and cell")
    parser.add_argument("--n", type=int, default=2, help="samples per prompt")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps (the training evaluations' sampler)")
    parser.add_argument("--cfg-scale", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classifier", default="assets/fmnist_ascan_nano")
    parser.add_argument("--out", default="results/t2i_prompt_split.json")
    args = parser.parse_args()

    denoiser = load_denoiser(args.run)  # EMA weights
    if not denoiser.is_text:
        raise SystemExit(f"{args.run} is class-conditioned: this splits text prompts")
    probe = load_classifier(args.classifier, size=32)
    cfg = SampleConfig(sampler="ddim", steps=args.steps, cfg="constant", cfg_scale=args.cfg_scale)
    cells = {}
    for held_names, held_templates in CELLS:
        name = f"{_split(held_names)} names x {_split(held_templates)} templates"
        prompts = cell_prompts(held_names, held_templates, args.per_class)
        cells[name] = score_cell(denoiser, probe, prompts, args.n, cfg, args.seed)
        print(f"{name}: {cells[name]['cond_acc']:.1f}% (N = {cells[name]['n']}) per class {cells[name]['per_class']}")
    payload = {
        "run": str(args.run),
        "weights": "EMA",
        "sampler": f"DDIM-{args.steps}, constant CFG {args.cfg_scale:g}, seed {args.seed}",
        "classes": [train[0] for train, _ in FMNIST_NAMES],
        "cells": cells,
        "environment": environment("cpu"),
    }
    save_json(payload, Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
