"""``hybridvision generate``: sample a grid of images from a trained run (or its saved final weights).

A run directory (final weights, else the newest good checkpoint) is read through its ``model.json``, a saved
``final/`` folder through its ``config.json``: both record the model, its overrides, the class names, the noise
schedule the weights were trained with and, when they apply, the text encoder and the VAE. A class model samples
classes (``generate``); a text model samples prompts (``generate_prompts``): they are encoded by the run's frozen
encoder (through its embedding cache), and the empty prompt "" is the null of guidance. Sampling runs through the
run's ``AsCANPipeline`` (``pipeline_of``), the one diffusers users load from a saved folder (``save_pipeline``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checkpoint import CheckpointError
from ..config import from_dict
from ..engine.distributed import pick_device
from ..engine.rundir import open_model
from .config import TASK
from .grid import make_grid, save_grid
from .latent import Vae, decode_latents
from .old_runs import describe_old_run
from .pipeline import AsCANPipeline
from .pipeline import class_index as pipeline_class_index
from .pixels import unit_to_uint8
from .sampling.condition import TextCondition, in_form
from .sampling.samplers import SampleConfig, guidance_scales, initial_noise
from .sampling.schedule import NoiseConfig, make_scheduler
from .text.cache import EmbeddingCache
from .text.encoders import load_encoder
from .text.prompts import PromptError, PromptSet, fmnist_prompts


@dataclass
class Denoiser:
    """A trained denoiser with what sampling needs to know about it."""

    model: nn.Module
    noise: NoiseConfig
    classes: list[str]
    shape: tuple[int, int, int]  # (C, H, W) of its samples (a VAE's latents in latent space)
    text: dict[str, Any] = field(default_factory=dict)  # encoder, max_length, cache_dir, train_names (text models)
    latent: dict[str, Any] = field(default_factory=dict)  # vae, channels (latent models)
    vae: Vae | None = None

    @property
    def is_text(self) -> bool:
        return bool(self.text)

    def decode(self, x: Tensor) -> Tensor:
        """Samples -> [-1, 1] pixels."""
        return x if self.vae is None else decode_latents(self.vae, x, int(self.latent.get("channels", 0)))


def load_denoiser(path: str | Path, *, use_ema: bool = True, device: str = "cpu") -> Denoiser:
    """The model of a training run (final weights, else the newest good checkpoint) or of a saved ``final/``
    folder, in eval mode on ``device``; what sampling needs comes from its description (``model.json``; an
    unfinished run from before it: rebuilt from its config and weights, ``old_runs``)."""
    saved = open_model(path, task=TASK, legacy=describe_old_run)
    info = saved.info
    if "noise" not in info:
        raise CheckpointError(f"{path}: its model description has no noise schedule: is it a diffusion model?")
    device = pick_device(device)
    model = saved.load(use_ema=use_ema).to(device).eval()
    c, (h, w) = model.config.in_chans, model.config.img_hw
    classes = list(info.get("classes", [])) or [str(i) for i in range(model.null_class)]
    latent, text = info.get("latent", {}), info.get("text", {})
    vae = Vae(latent["vae"], device) if latent else None
    return Denoiser(model, from_dict(NoiseConfig, info["noise"]), classes, (c, h, w), text, latent, vae)


def train_names(denoiser: Denoiser) -> str:
    """The training names a text model was trained with ("few" for runs made before the choice existed)."""
    return denoiser.text.get("train_names", "few")


def text_cache(text: dict[str, Any]) -> EmbeddingCache:
    return EmbeddingCache(text["encoder"], text["cache_dir"], max_length=int(text.get("max_length", 0)))


def class_index(name: str | int, classes: list[str]) -> int:
    """A class given by index or name (case-insensitive); an unknown one raises naming the valid ones."""
    return pipeline_class_index(name, len(classes), classes)


# ---- Sampling, through the pipeline


def pipeline_of(denoiser: Denoiser, sampler: str = "heun", *, text_encoder: bool = True) -> AsCANPipeline:
    """The denoiser as an ``AsCANPipeline``: its UNet, ``sampler`` on the schedule it was trained with, its class
    names, VAE and (``text_encoder``) text encoder and tokenizer, loaded from their local folders."""
    text = denoiser.text
    encoder = load_encoder(text["encoder"], int(text.get("max_length", 0))) if text and text_encoder else None
    return AsCANPipeline(
        unet=denoiser.model,
        scheduler=make_scheduler(sampler, denoiser.noise),
        text_encoder=encoder.model if encoder else None,
        tokenizer=encoder.tokenizer if encoder else None,
        vae=denoiser.vae.model if denoiser.vae else None,
        id2label=None if text else dict(enumerate(denoiser.classes)),
        image_channels=int(denoiser.latent.get("channels", 0)),
        text_max_length=encoder.max_length if encoder else int(text.get("max_length", 0)),
        text_form=text.get("form", "tokens"),
    )


def load_pipeline(
    path: str | Path, *, sampler: str = "heun", use_ema: bool = True, device: str = "cpu"
) -> AsCANPipeline:
    """A run (or its saved ``final/`` folder) as an ``AsCANPipeline`` on ``device``, EMA weights by default."""
    return pipeline_of(load_denoiser(path, use_ema=use_ema, device=device), sampler)


def save_pipeline(path: str | Path, folder: str | Path, *, sampler: str = "heun", use_ema: bool = True) -> Path:
    """Write a run's model as a diffusers pipeline folder, which ``AsCANPipeline.from_pretrained(folder)`` and
    ``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` load; the folder is returned."""
    load_pipeline(path, sampler=sampler, use_ema=use_ema).save_pretrained(folder)
    return Path(folder)


@torch.no_grad()
def _sample_all(
    denoiser: Denoiser, inputs: Callable[[list[int]], dict[str, Any]], total: int, cfg: SampleConfig, *, seed: int,
    batch_size: int,
) -> Tensor:  # fmt: skip
    """``total`` samples as uint8 pixels through the pipeline; ``inputs(indices)`` conditions each batch (the
    pipeline's keywords). Sample i starts from the noise ``initial_noise`` draws for it, in any batching."""
    pipe = pipeline_of(denoiser, cfg.sampler, text_encoder=False)  # prompts come as embeddings, from the cache
    pipe.set_progress_bar_config(disable=True)
    scales = guidance_scales(cfg)
    out = []
    for start in range(0, total, batch_size):
        idx = list(range(start, min(start + batch_size, total)))
        noise = initial_noise(idx, denoiser.shape, seed)
        gen = torch.Generator().manual_seed(seed * 7919 + start)  # a stochastic sampler's noise (DDPM)
        images = pipe(
            **inputs(idx), num_inference_steps=cfg.steps, guidance_scale=scales, generator=gen, latents=noise,
            output_type="pt",
        ).images  # fmt: skip
        out.append(unit_to_uint8(images).cpu())
    return torch.cat(out)


def generate(
    denoiser: Denoiser, classes: list[int], n: int, cfg: SampleConfig, *, seed: int = 0, batch_size: int = 64
) -> Tensor:
    """``n`` samples of each class in ``classes`` as uint8 (len(classes) * n, C, H, W), class after class."""
    if denoiser.is_text:
        raise ValueError("this model is text-conditioned: ask for prompts (--prompt TEXT), not classes")
    labels = torch.tensor(classes).repeat_interleave(n)
    return _sample_all(
        denoiser, lambda idx: {"class_labels": labels[idx]}, len(labels), cfg, seed=seed, batch_size=batch_size
    )


def generate_prompts(
    denoiser: Denoiser, prompts: list[str], n: int, cfg: SampleConfig, *, seed: int = 0, batch_size: int = 64,
    form: str = "",
) -> Tensor:  # fmt: skip
    """``n`` samples of each (cleaned) prompt as uint8 (len(prompts) * n, C, H, W), prompt after prompt; prompts
    given in ``form`` ("tokens" or "sentence"; "" = the run's)."""
    if not denoiser.is_text:
        raise PromptError("this model is class-conditioned: ask for classes (--class NAME), not prompts")
    states, mask = prompt_tokens(denoiser, prompts, form)  # the last row: the null prompt
    rows = torch.arange(len(prompts)).repeat_interleave(n)

    def inputs(idx: list[int]) -> dict[str, Tensor]:
        return {
            "prompt_embeds": states[rows[idx]],
            "prompt_attention_mask": mask[rows[idx]],
            "negative_prompt_embeds": states[-1:],
            "negative_prompt_attention_mask": mask[-1:],
        }

    return _sample_all(denoiser, inputs, len(rows), cfg, seed=seed, batch_size=batch_size)


def generate_grid(
    run: str | Path,
    classes: list[str | int] | None,
    n: int,
    cfg: SampleConfig,
    out: str | Path,
    *,
    prompts: list[str] | None = None,
    seed: int = 0,
    use_ema: bool = True,
    device: str = "cpu",
) -> Path:
    """Write a PNG grid of ``n`` samples per class or prompt (one row each; a single one: a near-square grid)."""
    denoiser = load_denoiser(run, use_ema=use_ema, device=device)
    if prompts is not None:
        images, rows = generate_prompts(denoiser, prompts, n, cfg, seed=seed), prompts
    else:
        wanted = [class_index(c, denoiser.classes) for c in classes] if classes else None
        if wanted is None and denoiser.is_text:
            raise PromptError("this model is text-conditioned: pass --prompt TEXT or --prompts-file FILE")
        wanted = wanted if wanted is not None else list(range(len(denoiser.classes)))
        images, rows = generate(denoiser, wanted, n, cfg, seed=seed), [denoiser.classes[k] for k in wanted]
    several = len(rows) > 1
    grid = make_grid(images, nrow=n if several else 0)
    return save_grid(grid, out, row_labels=rows if several and prompts is not None else None)


def prompt_tokens(denoiser: Denoiser, prompts: list[str], form: str = "") -> tuple[Tensor, Tensor]:
    """The prompts' tokens and masks, then the null prompt's (the last row), in ``form`` ("tokens" or "sentence";
    "" = the form the run was evaluated in): (P + 1, L, D), (P + 1, L)."""
    states, mask = text_cache(denoiser.text).lookup([*prompts, ""])
    return in_form(states, mask, form or denoiser.text.get("form", "tokens"))


def prompt_condition(
    denoiser: Denoiser, prompts: str | PromptSet, form: str = ""
) -> Callable[[list[int], Tensor], TextCondition]:
    """Evaluation conditioning of a text model: sample i of class k gets class k's prompt number i // classes of
    ``prompts`` (a split of ``PROMPT_SPLITS``, "train" being the run's own training names; or a ``PromptSet``), as
    the training task's evaluations do, in ``form`` ("" = the run's)."""
    if isinstance(prompts, str):
        prompts = fmnist_prompts(prompts, train_names(denoiser))
    states, mask = prompt_tokens(denoiser, prompts.prompts, form)

    def condition(idx: list[int], labels: Tensor) -> TextCondition:
        rows = prompts.cycle(labels, idx)
        return TextCondition(states[rows], mask[rows], states[-1:], mask[-1:])

    return condition
