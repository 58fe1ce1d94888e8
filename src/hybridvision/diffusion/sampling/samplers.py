"""Sampling: a diffusers scheduler loop as a pure function, with classifier-free guidance (CFG).

Guidance combines ``eps = eps_u + w * (eps_c - eps_u)`` from one batched forward of the conditional and the
unconditional (null-label) inputs. Scales are per *sampler step* (Heun's two evaluations of a step share one):

- "constant": ``w = cfg_scale`` on every step (the paper's plain CFG uses 1.78);
- "sampled": AsCAN's "sampled cfg" (App. A.7): no guidance before step ``ramp_start`` (1-based), then ``w``
  rising linearly from ``ramp[0]`` to ``ramp[1]`` at the last step; with 30 steps, steps 5..30 and 1.1 -> 3.6.
  The paper gives only the range; the linear ramp and 1-based sampler-step counting are our reading
  (research note generation.md §6);
- "none": the conditional prediction only.

A step with ``w`` None or exactly 1 runs the conditional pass alone (``w = 1`` is the conditional prediction).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...config import check, one_of
from .condition import Condition, as_condition
from .schedule import SAMPLERS, NoiseConfig, make_scheduler

CFG_MODES = ("none", "constant", "sampled")
FINITE = "must be finite and >= 0 (an infinite guidance scale saturates every pixel)"


@dataclass(frozen=True)
class SampleConfig:
    """How images are drawn: sampler, steps and guidance."""

    sampler: str = "heun"  # "ddpm", "ddim", "euler" or "heun" (the paper's); heun runs 2 evaluations per step
    steps: int = 30  # sampler steps (the paper: 30)
    cfg: str = "constant"  # guidance: "none", "constant" (cfg_scale) or "sampled" (AsCAN's rising ramp)
    cfg_scale: float = 1.78  # constant guidance scale (the paper's plain CFG)
    ramp: tuple[float, float] = (1.1, 3.6)  # sampled CFG: scale at its first and at the last step
    ramp_start: int = 5  # sampled CFG: first guided step, 1-based

    def __post_init__(self) -> None:
        one_of("sample.sampler", self.sampler, SAMPLERS)
        check(self.steps >= 1, f"sample.steps must be >= 1, got {self.steps}")
        one_of("sample.cfg", self.cfg, CFG_MODES)
        check(math.isfinite(self.cfg_scale) and self.cfg_scale >= 0, f"sample.cfg_scale {FINITE}, got {self.cfg_scale}")
        check(len(self.ramp) == 2, f"sample.ramp must be (first, last), got {self.ramp}")
        check(all(math.isfinite(w) and w >= 0 for w in self.ramp), f"sample.ramp's scales {FINITE}, got {self.ramp}")
        check(self.ramp_start >= 1, f"sample.ramp_start must be >= 1 (1-based step), got {self.ramp_start}")


def guidance_scales(cfg: SampleConfig) -> list[float | None]:
    """The guidance scale of each sampler step 1..steps (None: conditional pass only)."""
    n = cfg.steps
    if cfg.cfg == "none":
        return [None] * n
    if cfg.cfg == "constant":
        return [cfg.cfg_scale] * n
    lo, hi = cfg.ramp
    span = n - cfg.ramp_start
    return [
        None if k < cfg.ramp_start else (hi if span == 0 else lo + (hi - lo) * (k - cfg.ramp_start) / span)
        for k in range(1, n + 1)
    ]


def guided_eps(model: nn.Module, x: Tensor, t: Tensor, cond: Condition | Tensor, scale: float | None) -> Tensor:
    """Epsilon at ``x`` for ``cond`` (or class labels), guided by ``scale`` (one batched cond + uncond forward)."""
    cond = as_condition(model, cond)
    if scale is None or scale == 1.0:
        return model(x, t, **cond.inputs(guided=False), return_dict=False)[0]
    both = model(torch.cat([x, x]), t, **cond.inputs(guided=True), return_dict=False)[0]  # (2B, C, H, W)
    eps_c, eps_u = both.float().chunk(2)  # 2 x (B, C, H, W)
    return eps_u + scale * (eps_c - eps_u)


def initial_noise(indices: Sequence[int], shape: tuple[int, ...], seed: int) -> Tensor:
    """Unit Gaussian noise of the samples ``indices`` of a seeded stream: (len(indices), *shape).

    Each sample has its own generator, so sample i starts from the same noise in any batching and under any
    number of processes.
    """
    gens = (torch.Generator().manual_seed(seed * 1_000_003 + i) for i in indices)
    return torch.stack([torch.randn(shape, generator=g) for g in gens]) if len(indices) else torch.empty(0, *shape)


@torch.no_grad()
def sample(
    model: nn.Module,
    cond: Condition | Tensor,
    noise: Tensor,
    cfg: SampleConfig,
    noise_cfg: NoiseConfig,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Denoise unit Gaussian ``noise`` (B, C, H, W) into samples (about [-1, 1] in pixel space) for ``cond``.

    ``cond`` is a ``ClassCondition``, a ``TextCondition`` or class labels (B,). ``model`` follows the UNets' call
    (``model(x, t, class_labels=...)`` or ``encoder_hidden_states=``, ``model.null_class``) and is used as it
    is (put it in eval mode first). ``generator`` seeds the stochastic sampler (DDPM); the others are
    deterministic given ``noise``.
    """
    scheduler = make_scheduler(cfg.sampler, noise_cfg)
    scheduler.set_timesteps(cfg.steps, device=noise.device)
    cond = as_condition(model, cond).to(noise.device)
    return denoise(model, scheduler, cond, noise * scheduler.init_noise_sigma, guidance_scales(cfg), generator)


def denoise(
    model: nn.Module,
    scheduler: Any,
    cond: Condition,
    x: Tensor,
    scales: Sequence[float | None],
    generator: torch.Generator | list[torch.Generator] | None = None,
    on_step: Callable[[], object] | None = None,
) -> Tensor:
    """The scheduler loop: ``x`` (already scaled by ``init_noise_sigma``) denoised through ``scheduler``'s
    timesteps (set beforehand), guided by ``scales[k - 1]`` at sampler step k (Heun's correction pass belongs to
    the step it corrects). ``generator`` reaches schedulers that draw noise (DDPM); ``on_step()`` is called after
    every scheduler step (a progress bar). Any diffusers scheduler works: this is ``sample``'s loop and the
    ``AsCANPipeline``'s."""
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    k = 0
    for t in scheduler.timesteps:
        if getattr(scheduler, "state_in_first_order", True):  # Heun: its correction pass is the same step
            k += 1
        eps = guided_eps(model, scheduler.scale_model_input(x, t), t, cond, scales[min(k, len(scales)) - 1])
        x = scheduler.step(eps.to(x.dtype), t, x, **step_kwargs).prev_sample
        if on_step is not None:
            on_step()
    return x


def evaluations_per_sample(cfg: SampleConfig) -> int:
    """Denoiser evaluations per image (an unconditional pass counts as one more)."""
    per_step = [2 if cfg.sampler == "heun" and k < cfg.steps else 1 for k in range(1, cfg.steps + 1)]
    scales = guidance_scales(cfg)
    return sum(n * (1 if s is None or s == 1.0 else 2) for n, s in zip(per_step, scales))
