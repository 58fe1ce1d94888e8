"""``hybridvision diffusion eval RUN``: conditional accuracy and FID of a trained run, a grid, and a JSON record.

A run trained on captioned images is scored by FID on its held-out captions, and by conditional accuracy only where
those images come with classes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import to_dict
from ..data.captions import CaptionedImages
from ..engine.distributed import Dist, pick_device
from ..env import environment
from ..fileio import save_json
from .config import DiffusionEvalConfig
from .eval.captions import caption_condition, check_judge, held_out_captions, run_caption_data
from .eval.judge import ClassifierProbe, load_classifier
from .eval.score import Reference, real_reference, reference_for, score_samples
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
    ``condition_for(denoiser)`` gives another conditioning (a measurement that feeds the prompts differently). A
    run trained on captions is conditioned on held-out captions instead (``cfg.data`` when it names captioned
    data, else the run's own held-out data) and scored by FID against their images, the conditional accuracy only
    where those images have classes."""
    run = Path(run)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    denoiser = load_denoiser(run, use_ema=cfg.weights == "ema", device=str(device))
    probe = load_classifier(cfg.classifier, cfg.judge_size).to(device)
    size = denoiser.shape[-1] * int(denoiser.latent.get("factor", 1))  # of the pixels
    caption_data = run_caption_data(run, cfg.data) if denoiser.is_text else None
    if caption_data is not None:  # a caption run: its held-out captions and images
        held = held_out_captions(caption_data, size, cfg.n)
        check_judge(
            probe, cfg.classifier, caption_data.channels, len(denoiser.classes) if held.labels is not None else 0
        )
        return _evaluate_captions(run, cfg, denoiser, probe, held)
    reference = reference_for(probe, cfg.classifier, cfg.fid_stats, cfg.data, size, cfg.batch_size)
    condition = None
    if denoiser.is_text:  # the held-out prompts by default
        condition = condition_for(denoiser) if condition_for else prompt_condition(denoiser, cfg.prompts, cfg.text_form)
    result = _score(run, cfg, denoiser, probe, reference, condition, len(denoiser.classes))
    if denoiser.is_text:  # the encoder's own ceiling on these prompts (diffusion/agreement.py)
        cache = text_cache(denoiser.text)
        trained = fmnist_prompts("train", train_names(denoiser))
        result["encoder_agreement"] = encoder_agreement(cache, trained, fmnist_prompts(cfg.prompts))
    if cfg.grid_per_class:
        result["grid"] = str(_grid(denoiser, cfg, Path(result["out"]).with_suffix(".png")))
    return _save(result)


def _evaluate_captions(
    run: Path, cfg: DiffusionEvalConfig, denoiser: Denoiser, probe: ClassifierProbe, held: CaptionedImages
) -> dict[str, Any]:
    """A caption run: samples on the held-out captions in turn, FID against their images; the conditional
    accuracy only when those images have classes."""
    if cfg.fid_stats:
        reference = reference_for(probe, cfg.classifier, cfg.fid_stats, cfg.data, held.images.shape[-1], cfg.batch_size)
    else:
        reference = real_reference(probe, held.images, held.labels, cfg.batch_size, held.source)
    labels = held.labels[torch.arange(cfg.n) % len(held)] if held.labels is not None else None
    condition = caption_condition(denoiser, held.captions, cfg.text_form)
    result = _score(
        run, cfg, denoiser, probe, reference, condition, len(denoiser.classes) if labels is not None else 0, labels
    )
    if cfg.grid_per_class:  # one row per caption: the first ten
        out = Path(result["out"]).with_suffix(".png")
        result["grid"] = str(_grid(denoiser, cfg, out, list(held.captions[:10])))
    return _save(result)


def _score(
    run: Path, cfg: DiffusionEvalConfig, denoiser: Denoiser, probe: ClassifierProbe, reference: Reference,
    condition: Callable[[list[int], Tensor], TextCondition] | None, num_classes: int, labels: Tensor | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Sample and judge; the record (conditional accuracy only with ``num_classes``), not yet written."""
    device = next(denoiser.model.parameters()).device
    t0 = time.perf_counter()
    scores = score_samples(
        denoiser.model, probe, reference, n=cfg.n, num_classes=num_classes, shape=denoiser.shape,
        cfg=cfg.sample, noise=denoiser.noise, seed=cfg.seed, batch_size=cfg.batch_size, dist=Dist(device=device),
        autocast=contextlib.nullcontext, condition=condition, decode=denoiser.decode if denoiser.vae else None,
        labels=labels,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    out = Path(cfg.out) if cfg.out else default_out(run, cfg, denoiser.is_text)
    accuracy = {
        "cond_acc": round(scores.cond_acc, 2),
        "cond_acc_per_class": dict(zip(denoiser.classes, scores.per_class)),
    }
    result = {
        "run": str(run),
        "weights": cfg.weights,
        **(accuracy if num_classes else {}),
        "fid": round(scores.fid, 3),
        "fid_kind": f"FID-FMNIST-clf({scores.dim}), N={scores.n}, reference {reference.split} (n={reference.stats.n})",
        "classifier": cfg.classifier,
        **({"classifier_real_top1": round(reference.top1, 2)} if num_classes else {}),
        "n": cfg.n,
        "evals_per_sample": evaluations_per_sample(cfg.sample),
        "sampling_s": round(seconds, 1),
        "samples_per_s": round(cfg.n / max(seconds, 1e-9), 2),
        "config": to_dict(cfg),
        "environment": environment(str(device)),
        "out": str(out),
    }
    return result


def _save(result: dict[str, Any]) -> dict[str, Any]:
    """Write the record to its ``out`` (which the file itself does not repeat); the record."""
    save_json({k: v for k, v in result.items() if k != "out"}, result["out"])
    return result


def _grid(denoiser: Denoiser, cfg: DiffusionEvalConfig, out: Path, prompts: list[str] | None = None) -> Path:
    """One row per class: its samples (a text model: of its first ``cfg.prompts`` prompt, written beside the row);
    or one row per prompt of ``prompts``."""
    n, kw = cfg.grid_per_class, dict(seed=cfg.seed, batch_size=cfg.batch_size)
    if not denoiser.is_text:
        images = generate(denoiser, list(range(len(denoiser.classes))), n, cfg.sample, **kw)
        return save_grid(make_grid(images, nrow=n), out)
    if prompts is None:
        prompt_set = fmnist_prompts(cfg.prompts, train_names(denoiser))
        prompts = [prompt_set.prompts[int(i)] for i in prompt_set.offsets()]
    images = generate_prompts(denoiser, prompts, n, cfg.sample, form=cfg.text_form, **kw)
    return save_grid(make_grid(images, nrow=n), out, row_labels=prompts)
