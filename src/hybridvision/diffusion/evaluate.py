"""``hybridvision diffusion eval RUN``: conditional accuracy and FID of a trained run, a grid, and a JSON record."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import to_dict
from ..engine.distributed import Dist, pick_device
from ..env import environment
from ..fileio import save_json
from .config import DiffusionEvalConfig
from .eval.judge import load_classifier
from .eval.score import reference_for, score_samples
from .generate import Denoiser, generate, generate_prompts, load_denoiser, prompt_condition, text_cache, train_names
from .grid import make_grid, save_grid
from .sampling.condition import TextCondition
from .sampling.samplers import evaluations_per_sample
from .text.agreement import encoder_agreement
from .text.prompts import fmnist_prompts


def default_out(run: Path, cfg: DiffusionEvalConfig, text: bool = False) -> Path:
    """RUN/eval_<sampler><steps>_<cfg>_n<N>[_<form>].json; a text run's prompt set other than the held-out one is
    named too (``_validation``), so evaluations on different sets do not overwrite each other."""
    form = f"_{cfg.text_form}" if cfg.text_form else ""
    prompts = f"_{cfg.prompts}" if text and cfg.prompts != "held_out" else ""
    return run / f"eval_{cfg.sample.sampler}{cfg.sample.steps}_{cfg.sample.cfg}{prompts}_n{cfg.n}{form}.json"


ConditionFor = Callable[[Denoiser], Callable[[list[int], Tensor], TextCondition]]


def evaluate_run(
    run: str | Path, cfg: DiffusionEvalConfig, condition_for: ConditionFor | None = None
) -> dict[str, Any]:
    """Sample ``cfg.n`` class-balanced images from ``run`` and judge them; writes the JSON and the grid.

    A text run is conditioned on ``cfg.prompts`` as the training task's evaluations are, unless
    ``condition_for(denoiser)`` gives another conditioning (a measurement that feeds the prompts differently)."""
    run = Path(run)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    denoiser = load_denoiser(run, use_ema=cfg.weights == "ema", device=str(device))
    probe = load_classifier(cfg.classifier, cfg.judge_size).to(device)
    size = denoiser.shape[-1] * int(denoiser.latent.get("factor", 1))  # of the pixels
    reference = reference_for(probe, cfg.classifier, cfg.fid_stats, cfg.data, size, cfg.batch_size)
    condition = None
    if denoiser.is_text:  # the held-out prompts by default
        condition = condition_for(denoiser) if condition_for else prompt_condition(denoiser, cfg.prompts, cfg.text_form)
    t0 = time.perf_counter()
    scores = score_samples(
        denoiser.model, probe, reference, n=cfg.n, num_classes=len(denoiser.classes), shape=denoiser.shape,
        cfg=cfg.sample, noise=denoiser.noise, seed=cfg.seed, batch_size=cfg.batch_size, dist=Dist(device=device),
        autocast=contextlib.nullcontext, condition=condition, decode=denoiser.decode if denoiser.vae else None,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    out = Path(cfg.out) if cfg.out else default_out(run, cfg, denoiser.is_text)
    result = {
        "run": str(run),
        "weights": cfg.weights,
        "cond_acc": round(scores.cond_acc, 2),
        "cond_acc_per_class": dict(zip(denoiser.classes, scores.per_class)),
        "fid": round(scores.fid, 3),
        "fid_kind": f"FID-FMNIST-clf({scores.dim}), N={scores.n}, reference {reference.split} (n={reference.stats.n})",
        "classifier": cfg.classifier,
        "classifier_real_top1": round(reference.top1, 2),
        "n": cfg.n,
        "evals_per_sample": evaluations_per_sample(cfg.sample),
        "sampling_s": round(seconds, 1),
        "samples_per_s": round(cfg.n / max(seconds, 1e-9), 2),
        "config": to_dict(cfg),
        "environment": environment(str(device)),
    }
    if denoiser.is_text:  # the encoder's own ceiling on these prompts (diffusion/agreement.py)
        cache = text_cache(denoiser.text)
        trained = fmnist_prompts("train", train_names(denoiser))
        result["encoder_agreement"] = encoder_agreement(cache, trained, fmnist_prompts(cfg.prompts))
    if cfg.grid_per_class:
        result["grid"] = str(_grid(denoiser, cfg, out.with_suffix(".png")))
    save_json(result, out)
    result["out"] = str(out)
    return result


def _grid(denoiser: Denoiser, cfg: DiffusionEvalConfig, out: Path) -> Path:
    """One row per class: its samples (a text model: of its first ``cfg.prompts`` prompt, written beside the row)."""
    n, kw = cfg.grid_per_class, dict(seed=cfg.seed, batch_size=cfg.batch_size)
    if not denoiser.is_text:
        images = generate(denoiser, list(range(len(denoiser.classes))), n, cfg.sample, **kw)
        return save_grid(make_grid(images, nrow=n), out)
    prompt_set = fmnist_prompts(cfg.prompts, train_names(denoiser))
    prompts = [prompt_set.prompts[int(i)] for i in prompt_set.offsets()]
    images = generate_prompts(denoiser, prompts, n, cfg.sample, form=cfg.text_form, **kw)
    return save_grid(make_grid(images, nrow=n), out, row_labels=prompts)
