"""Noise schedules and samplers from diffusers, all built from ONE kwargs dict.

diffusers' ``X.from_config(other.config)`` silently swaps in X's own defaults for values left at the source's
defaults (Heun's betas become 0.00085/0.012, DDPM's "leading" spacing becomes Euler's "linspace": research note
generation.md §1.1), so every scheduler here gets the schedule explicitly from ``scheduler_kwargs``. Training
noises with DDPM's variance-preserving ``add_noise``; Euler and Heun divide their input by sqrt(sigma^2 + 1) in
``scale_model_input``, so one epsilon-model serves every sampler unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ...config import check, one_of
from .._diffusers import diffusers

SAMPLERS = ("ddpm", "ddim", "euler", "heun")
_CLASSES = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
}
# Sampler-specific settings; x0 is never clipped, so every sampler sees the same model output.
_EXTRA: dict[str, dict[str, Any]] = {
    "ddpm": {"clip_sample": False, "variance_type": "fixed_small"},
    "ddim": {"clip_sample": False, "set_alpha_to_one": True},  # the last step lands on the clean image
    "euler": {},
    "heun": {},
}


@dataclass(frozen=True)
class NoiseConfig:
    """The forward process: DDPM with epsilon-prediction (AsCAN §3.3)."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"  # betas = linspace(sqrt(start), sqrt(end)) ** 2, as SD/SDXL and AsCAN
    beta_start: float = 0.00085  # SD/SDXL's value; the paper does not state its own
    beta_end: float = 0.01  # AsCAN: 0.01 at 256^2, 0.02 at 512^2 and above
    timestep_spacing: str = "trailing"  # inference steps start at t = T-1 for every sampler
    offset_noise: float = 0.0  # std of a per-image, per-channel constant added to the noise (AsCAN: 0.05)

    def __post_init__(self) -> None:
        check(self.num_train_timesteps >= 2, f"noise.num_train_timesteps must be >= 2, got {self.num_train_timesteps}")
        one_of("noise.beta_schedule", self.beta_schedule, ("linear", "scaled_linear", "squaredcos_cap_v2"))
        check(0 < self.beta_start < self.beta_end < 1, "noise needs 0 < beta_start < beta_end < 1")
        one_of("noise.timestep_spacing", self.timestep_spacing, ("linspace", "leading", "trailing"))
        check(self.offset_noise >= 0, f"noise.offset_noise must be >= 0, got {self.offset_noise}")


def scheduler_kwargs(cfg: NoiseConfig) -> dict[str, Any]:
    """The one dict every scheduler is built from."""
    return dict(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        prediction_type="epsilon",
        timestep_spacing=cfg.timestep_spacing,
        steps_offset=0,
    )


def make_scheduler(sampler: str, cfg: NoiseConfig) -> Any:
    """A fresh diffusers scheduler ("ddpm", "ddim", "euler" or "heun") on the schedule of ``cfg``."""
    one_of("sampler", sampler, SAMPLERS)
    cls = getattr(diffusers(), _CLASSES[sampler])
    return cls(**scheduler_kwargs(cfg), **_EXTRA[sampler])


class TrainingNoise:
    """Draws (noisy sample, target noise, timestep) for a batch: uniform t, DDPM ``add_noise``, offset noise."""

    def __init__(self, cfg: NoiseConfig) -> None:
        self.cfg = cfg
        self.scheduler = make_scheduler("ddpm", cfg)

    def __call__(self, x0: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """Draws on the CPU generator ``gen`` (reproducible under any device and process count)."""
        B, C = x0.shape[:2]
        noise = torch.randn(x0.shape, generator=gen)
        if self.cfg.offset_noise:
            noise += self.cfg.offset_noise * torch.randn(B, C, 1, 1, generator=gen)  # (B, C, 1, 1): per image
        t = torch.randint(0, self.cfg.num_train_timesteps, (B,), generator=gen)
        noise, t = noise.to(x0.device, x0.dtype), t.to(x0.device)
        return self.scheduler.add_noise(x0, noise, t), noise, t
