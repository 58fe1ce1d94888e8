"""Schedules from one kwargs dict, training noise, guidance (constant and AsCAN's sampled CFG) and samplers."""

from __future__ import annotations

import pytest
import test_diffusion_unet
import torch
from test_diffusion_unet import perturb, tiny
from torch import nn

dm = test_diffusion_unet.dm  # the shared fixture: hybridvision.diffusion, registered for this module


class Counting(nn.Module):
    """A stand-in denoiser: a fixed function of (x, t, label), counting its batch-evaluations per label kind."""

    null_class = 10

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x, t, class_labels=None, return_dict=True):  # diffusers' call: (eps,) without return_dict
        self.calls.append(len(x))
        return (0.1 * x + 0.01 * class_labels.float()[:, None, None, None] + 1e-4 * float(t),)


def test_every_scheduler_shares_the_schedule(dm):
    noise = dm.schedule.NoiseConfig(beta_end=0.02)
    ref = dm.schedule.make_scheduler("ddpm", noise).alphas_cumprod
    for sampler in dm.schedule.SAMPLERS:
        s = dm.schedule.make_scheduler(sampler, noise)
        torch.testing.assert_close(s.alphas_cumprod, ref)  # Heun keeps our betas, not its 0.00085/0.012 defaults
        assert s.config.timestep_spacing == "trailing" and s.config.beta_end == 0.02
    with pytest.raises(ValueError, match="sampler must be one of ddpm, ddim, euler, heun"):
        dm.schedule.make_scheduler("dpm", noise)


def test_training_noise_is_ddpm_add_noise_with_offset(dm):
    cfg = dm.schedule.NoiseConfig(offset_noise=0.5)
    draw = dm.schedule.TrainingNoise(cfg)
    x0 = torch.rand(64, 1, 8, 8) * 2 - 1
    noisy, noise, t = draw(x0, torch.Generator().manual_seed(0))
    abar = draw.scheduler.alphas_cumprod[t][:, None, None, None]
    torch.testing.assert_close(noisy, abar.sqrt() * x0 + (1 - abar).sqrt() * noise)
    again = draw(x0, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(again, (noisy, noise, t)))
    # The offset is one constant per image and channel: it shows in the spread of the per-image means.
    assert noise.mean((1, 2, 3)).std() > 0.3
    plain = dm.schedule.TrainingNoise(dm.schedule.NoiseConfig())(x0, torch.Generator().manual_seed(0))[1]
    assert plain.mean((1, 2, 3)).std() < 0.3


def test_sampled_cfg_schedule_values(dm):
    SampleConfig, scales = dm.sampling.SampleConfig, dm.sampling.guidance_scales
    w = scales(SampleConfig(steps=30, cfg="sampled"))
    assert w[:4] == [None] * 4 and len(w) == 30
    torch.testing.assert_close(
        torch.tensor(w[4:], dtype=torch.float64), torch.linspace(1.1, 3.6, 26, dtype=torch.float64)
    )
    assert scales(SampleConfig(steps=3, cfg="constant", cfg_scale=2.5)) == [2.5] * 3
    assert scales(SampleConfig(steps=3, cfg="none")) == [None] * 3
    assert scales(SampleConfig(steps=5, cfg="sampled", ramp=(1.0, 2.0))) == [None] * 4 + [2.0]
    with pytest.raises(ValueError, match="sample.cfg must be one of none, constant, sampled"):
        SampleConfig(cfg="rising")


def test_cfg_scale_one_is_the_conditional_prediction_and_batches_cond_with_uncond(dm):
    model = tiny(dm)
    perturb(model)
    x, t, y = torch.randn(3, 1, 16, 16), torch.tensor(400), torch.tensor([1, 5, 9])
    cond = model(x, t, class_labels=y).sample
    assert torch.equal(dm.sampling.guided_eps(model, x, t, y, 1.0), cond)
    uncond = model(x, t, class_labels=torch.full_like(y, model.null_class)).sample
    guided = dm.sampling.guided_eps(model, x, t, y, 3.0)
    torch.testing.assert_close(guided, uncond + 3.0 * (cond - uncond), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cfg", ["none", "constant", "sampled"])
def test_heun_evaluation_count(dm, cfg):
    model = Counting()
    sc = dm.sampling.SampleConfig(sampler="heun", steps=30, cfg=cfg, cfg_scale=2.0)
    dm.sampling.sample(model, torch.tensor([1, 2]), torch.randn(2, 1, 4, 4), sc, dm.schedule.NoiseConfig())
    evals = sum(n // 2 for n in model.calls)  # per image
    assert evals == dm.sampling.evaluations_per_sample(sc)
    assert evals == {"none": 59, "constant": 118, "sampled": 110}[cfg]  # research note §6: 59 + 51 = 110


class Oracle(nn.Module):
    """The exact epsilon of data that is one constant image per class, c = label / 10 - 0.5."""

    null_class = 10

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod).double().sqrt()

    def forward(self, x, t, class_labels=None, return_dict=True):  # diffusers' call: (eps,) without return_dict
        lo = int(float(t))  # Euler and Heun ask at fractional timesteps: sigma is interpolated linearly in t
        hi = min(lo + 1, len(self.sigmas) - 1)
        sigma = torch.lerp(self.sigmas[lo], self.sigmas[hi], float(t) - lo)
        abar = 1 / (1 + sigma**2)
        c = (class_labels.double() / 10 - 0.5)[:, None, None, None]
        return (((x - abar.sqrt() * c) / (1 - abar).sqrt()).float(),)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "euler", "heun"])
def test_every_sampler_turns_the_oracle_into_the_data(dm, sampler):
    noise_cfg = dm.schedule.NoiseConfig(beta_end=0.02)
    oracle = Oracle(dm.schedule.make_scheduler("ddpm", noise_cfg).alphas_cumprod)
    labels = torch.tensor([0, 3, 9])
    sc = dm.sampling.SampleConfig(sampler=sampler, steps=10, cfg="none")
    out = dm.sampling.sample(oracle, labels, torch.randn(3, 1, 8, 8), sc, noise_cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, (labels / 10 - 0.5)[:, None, None, None].expand_as(out), atol=1e-4, rtol=0)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "euler", "heun"])
def test_samplers_are_deterministic_under_a_seed(dm, sampler):
    model = tiny(dm)
    perturb(model)
    sc = dm.sampling.SampleConfig(sampler=sampler, steps=3, cfg="constant", cfg_scale=2.0)
    noise_cfg = dm.schedule.NoiseConfig()
    y = torch.tensor([0, 3])

    def draw(seed: int) -> torch.Tensor:
        noise = dm.sampling.initial_noise([0, 1], (1, 16, 16), seed)
        return dm.sampling.sample(model, y, noise, sc, noise_cfg, generator=torch.Generator().manual_seed(seed))

    a = draw(0)
    assert torch.equal(a, draw(0)) and torch.isfinite(a).all()
    assert not torch.allclose(a, draw(1))


def test_initial_noise_does_not_depend_on_batching(dm):
    whole = dm.sampling.initial_noise(range(6), (1, 4, 4), seed=3)
    parts = torch.cat(
        [dm.sampling.initial_noise([0, 1, 2, 3], (1, 4, 4), 3), dm.sampling.initial_noise([4, 5], (1, 4, 4), 3)]
    )
    assert torch.equal(whole, parts)
    assert torch.equal(dm.sampling.initial_noise([4], (1, 4, 4), 3)[0], whole[4])
