"""How far a text-to-image run gets on the held-out prompts when each is swapped for its nearest training prompt.

A stage-1 Fashion-MNIST model draws the class its *training* prompts name 86-89% of the time, and the class its
held-out prompts name about half the time (docs/generation.md). This asks what the first of those numbers is
worth on the held-out set if the denoiser's text map generalised exactly as far as the frozen encoder's
neighbourhoods do: every held-out prompt is replaced by the training prompt whose pooled all-MiniLM-L6-v2 vector
lies nearest it (cosine; ``diffusion.agreement.nearest_prompts``), and the run is evaluated on those, with the
usual protocol (``diffusion eval``: class-balanced samples judged by our classifier, held-out prompt i // 10 of
each class). It is a measurement, not a way to sample: the denoiser is given only prompts it was trained on.

Printed beside each accuracy: the share of held-out prompts whose nearest training prompt names their class (the
one-nearest-neighbour agreement; the class-centroid agreement is ``encoder_agreement``).

    python benchmarks/t2i_nearest_prompt.py runs/t2i/fmnist_t2i_stage1_32 --scales 2,4 --n 200 \\
        --out_dir results/t2i_fmnist_stage1
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from hybridvision.config import parse_overrides, resolve
from hybridvision.diffusion.config import DiffusionEvalConfig
from hybridvision.diffusion.evaluate import ConditionFor, evaluate_run
from hybridvision.diffusion.generate import Denoiser, prompt_condition, text_cache, train_names
from hybridvision.diffusion.sampling.condition import TextCondition
from hybridvision.diffusion.text.agreement import nearest_prompts
from hybridvision.diffusion.text.prompts import PromptSet, fmnist_prompts
from hybridvision.fileio import save_json


def swapped_prompts(denoiser: Denoiser, split: str) -> tuple[PromptSet, dict]:
    """The ``split`` prompts, each replaced by its nearest training prompt (same classes asked, same order), and a
    record of the swap."""
    train, asked = fmnist_prompts("train", train_names(denoiser)), fmnist_prompts(split)
    nearest = nearest_prompts(text_cache(denoiser.text), train, asked)  # (P,)
    classes = torch.tensor(train.labels)[nearest]  # (P,) the class each swapped-in prompt names
    right = classes == torch.tensor(asked.labels)
    swapped = tuple(train.prompts[int(j)] for j in nearest)
    record = {
        "nearest_agreement_pct": round(100.0 * float(right.float().mean()), 2),
        "swapped_for": dict(zip(asked.prompts, swapped)),
        "names_another_class": [p for p, ok in zip(asked.prompts, right.tolist()) if not ok],
    }
    return PromptSet(swapped, asked.labels), record


def nearest_condition(split: str, record: dict) -> ConditionFor:
    """``evaluate_run``'s conditioning: sample i of class k gets the training prompt nearest class k's ``split``
    prompt number i // classes, the prompt the usual evaluation would give it; the swap goes into ``record``."""

    def condition_for(denoiser: Denoiser) -> Callable[[list[int], Tensor], TextCondition]:
        swapped, mapping = swapped_prompts(denoiser, split)
        record.update(mapping)
        return prompt_condition(denoiser, swapped)

    return condition_for


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a text-to-image run folder")
    ap.add_argument("--scales", default="2", help="guidance scales, comma-separated")
    ap.add_argument("--n", type=int, default=200, help="samples per evaluation, balanced over classes")
    ap.add_argument("--prompts", default="held_out", help="the prompt split whose prompts are swapped")
    ap.add_argument("--out_dir", default="", help="where the JSON records go (default: the run folder)")
    ap.add_argument("--eval", default="", help="further `diffusion eval` flags, e.g. '--sample.steps 2'")
    args = ap.parse_args(argv)
    out_dir = Path(args.out_dir or args.run)
    for scale in args.scales.split(","):
        flags = ["--n", str(args.n), "--sample.cfg_scale", scale, "--prompts", args.prompts, "--grid_per_class", "0"]
        cfg = resolve(DiffusionEvalConfig, None, parse_overrides([*flags, *args.eval.split()]))
        sampler = f"{cfg.sample.sampler}{cfg.sample.steps}_cfg{cfg.sample.cfg_scale}"
        out = out_dir / f"eval_{sampler}_{args.prompts}_nearest_train_prompt_n{args.n}.json"
        cfg = replace(cfg, out=str(out))
        mapping: dict = {}
        result = evaluate_run(args.run, cfg, nearest_condition(args.prompts, mapping))
        result = {k: v for k, v in result.items() if k != "out"}
        save_json({**result, "condition": "nearest training prompt", **mapping}, out)
        agree = mapping["nearest_agreement_pct"]
        print(f"CFG {scale}: cond. acc. {result['cond_acc']:.1f}%, FID {result['fid']:.2f}, 1-NN agreement {agree}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
