"""The AsCAN UNet and the diffusers baseline: shapes, zero init, conditioning, bad inputs, registry and costs.

Also home of the ``dm`` fixture the other diffusion tests use: ``hybridvision.diffusion`` is imported inside it,
never at collection, and ``sys.modules`` is put back afterwards: where an unusable CUDA torchvision is
installed, diffusers' guard hides it, which must not outlive these tests (timm's need it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from hybridvision import registry
from hybridvision.models.contract import InputError

_MISSING = object()


@pytest.fixture(scope="module")
def dm():
    """The diffusion package's modules.

    One torch thread meanwhile: these tiny models gain nothing from two, and lose up to 8x on a shared machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torchvision = sys.modules.get("torchvision", _MISSING)
    import hybridvision.diffusion as package
    from hybridvision.diffusion import carry_over as stages
    from hybridvision.diffusion import config, generate, grid, latent, pixels, report, task, text_task, training
    from hybridvision.diffusion.eval import fid, judge
    from hybridvision.diffusion.eval import score as evaluation
    from hybridvision.diffusion.models import unet
    from hybridvision.diffusion.sampling import condition, schedule
    from hybridvision.diffusion.sampling import samplers as sampling
    from hybridvision.diffusion.text import cache as text_cache
    from hybridvision.diffusion.text import encoders as text
    from hybridvision.diffusion.text import prompts

    yield SimpleNamespace(
        package=package, condition=condition, config=config, evaluation=evaluation, fid=fid, generate=generate,
        grid=grid, judge=judge, latent=latent, pixels=pixels, prompts=prompts, report=report, sampling=sampling,
        schedule=schedule, stages=stages, task=task, text=text, text_cache=text_cache, text_task=text_task,
        training=training, unet=unet,
    )  # fmt: skip
    torch.set_num_threads(threads)
    if torchvision is _MISSING and "torchvision" in sys.modules and sys.modules["torchvision"] is None:
        del sys.modules["torchvision"]


def tiny(dm, name: str = "ascan_unet_test", **overrides):
    from hybridvision.factory import create_model

    return create_model(name, **overrides).eval()


def perturb(model: torch.nn.Module) -> None:
    """Give every parameter a random value (zero-initialised layers included)."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)


@pytest.mark.parametrize("name", ["ascan_unet_test", "diffusers_unet_test"])
@pytest.mark.parametrize("hw", [(16, 16), (24, 24), (32, 16)])
def test_output_shape_at_several_sizes(dm, name, hw):
    model = tiny(dm, name)
    perturb(model)
    x = torch.randn(2, 1, *hw)
    y = model(x, torch.tensor([10, 900]), class_labels=torch.tensor([3, 10])).sample
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert model(x, 500.5).sample.shape == x.shape  # float timesteps (Euler, Heun) and the null label


def test_zero_initialised_output_and_residual_branches(dm):
    model = tiny(dm)
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([1, 400, 999])
    assert torch.equal(model(x, t, class_labels=torch.tensor([0, 5, 9])).sample, torch.zeros_like(x))
    # Every block starts as its shortcut: the residual branches end in zeros.
    for stage in (*model.down, model.mid, *model.up):
        for block in stage.blocks:
            last = [block.attn.proj, block.cross_attn.proj, block.mlp.fc2] if hasattr(block, "attn") else []
            last = last or [block.conv_project.norm]
            assert all(not layer.weight.any() and not layer.bias.any() for layer in last)


def test_return_dict_and_timestep_forms(dm):
    model = tiny(dm)
    perturb(model)
    x, y = torch.randn(2, 1, 16, 16), torch.tensor([1, 2])
    ref = model(x, torch.tensor([7, 7]), class_labels=y).sample
    torch.testing.assert_close(model(x, 7, class_labels=y).sample, ref)
    torch.testing.assert_close(model(x, torch.tensor(7.0), class_labels=y, return_dict=True).sample, ref)
    assert not torch.allclose(model(x, 8, class_labels=y).sample, ref)


def test_class_labels_become_context_tokens_and_none_is_the_null_label(dm):
    model = tiny(dm)
    perturb(model)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([100, 100])
    null = torch.full((2,), model.null_class)
    torch.testing.assert_close(model(x, t).sample, model(x, t, class_labels=null).sample)
    ctx = model.class_context(torch.tensor([4, 4]))
    assert ctx.shape == (2, model.config.class_tokens, model.config.context_dim)
    torch.testing.assert_close(
        model(x, t, encoder_hidden_states=ctx).sample, model(x, t, class_labels=torch.tensor([4, 4])).sample
    )
    assert not torch.allclose(
        model(x, t, class_labels=torch.tensor([4, 4])).sample, model(x, t, class_labels=null).sample
    )


def test_context_mask_hides_padding(dm):
    model = tiny(dm)
    perturb(model)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([50, 50])
    ctx = torch.randn(2, 3, model.config.context_dim)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    out = model(x, t, encoder_hidden_states=ctx, encoder_attention_mask=mask).sample
    changed = ctx.clone()
    changed[mask == 0] = 50.0
    torch.testing.assert_close(model(x, t, encoder_hidden_states=changed, encoder_attention_mask=mask).sample, out)


def test_bad_inputs_raise_clear_errors(dm):
    model = tiny(dm)
    with pytest.raises(InputError, match=r"18x16 is not a multiple of 4.*height 16 or 20"):
        model(torch.randn(1, 1, 18, 16), 1)
    with pytest.raises(InputError, match=r"expected a \(B, 1, H, W\) sample"):
        model(torch.randn(1, 3, 16, 16), 1)
    with pytest.raises(InputError, match=r"class label 11 is out of range.*0\.\.9, and 10 is the null"):
        model(torch.randn(1, 1, 16, 16), 1, class_labels=torch.tensor([11]))
    with pytest.raises(InputError, match="not both"):
        model(torch.randn(1, 1, 16, 16), 1, encoder_hidden_states=torch.randn(1, 2, 16), class_labels=torch.tensor([1]))
    with pytest.raises(InputError, match=r"encoder_hidden_states must be \(B=1, L, 16\)"):
        model(torch.randn(1, 1, 16, 16), 1, encoder_hidden_states=torch.randn(1, 2, 8))
    with pytest.raises(InputError, match="multiple of 2"):
        tiny(dm, "diffusers_unet_test")(torch.randn(1, 1, 15, 16), 1)
    with pytest.raises(ValueError, match="one layout string per level"):
        dm.unet.AsCANUNetConfig(dims=(8, 16), down=("C",))
    with pytest.raises(ValueError, match="unknown block letter"):
        dm.unet.AsCANUNetConfig(dims=(8,), down=("CX",))


def test_backward_reaches_every_parameter(dm):
    model = tiny(dm).train()
    perturb(model)
    model(
        torch.randn(2, 1, 16, 16), torch.tensor([3, 30]), class_labels=torch.tensor([1, 10])
    ).sample.square().mean().backward()
    # The class table gets gradients only in the rows used; every other parameter gets one.
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


def test_registered_sizes_and_costs(dm):
    from hybridvision.macs import count_params, model_cost

    assert registry.list_models(family="ascan_unet", test=True) == ["ascan_unet_t2i_test", "ascan_unet_test"]
    assert {"ascan_unet_c2i", "ascan_unet_t2i", "ascan_unet_fmnist"} <= set(registry.list_models("ascan_unet_*"))
    cost = model_cost("ascan_unet_test")
    assert cost.input_shape == (1, 1, 16, 16) and cost.macs > 0
    with torch.device("meta"):
        c2i = tiny(dm, "ascan_unet_c2i")
    paper = registry.get_entry("ascan_unet_c2i").card["paper_params_m"]
    assert abs(count_params(c2i) / 1e6 - paper) / paper < 0.02  # "about 400M" (App. A.7)
    assert [c2i.config.heads(i) for i in range(3)] == [2, 5, 10]
    assert registry.get_config("ascan_unet_t2i").num_heads == (5, 10, 20)


def test_plain_import_lists_the_denoisers_without_importing_diffusion():
    code = (
        "import hybridvision as hv, sys; print(len(hv.list_models('*unet*', task='generation')), "
        "hv.get_entry('ascan_unet_c2i').card, any(m.startswith(('hybridvision.diffusion', 'diffusers')) "
        "for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().split(maxsplit=1) == ["8", "{'paper_params_m': 400} False"]


def test_diffusers_import_hides_a_broken_torchvision(tmp_path):
    """A torchvision that raises on import (as the CUDA wheel does next to a CPU torch) is hidden from diffusers.

    Only a child interpreter tries the import, once: the stub records the process that imported it.
    """
    stub, pids = tmp_path / "torchvision", tmp_path / "pids"
    stub.mkdir()
    (stub / "__init__.py").write_text(
        f"import os\nwith open({str(pids)!r}, 'a') as f:\n    f.write(f'{{os.getpid()}}\\n')\n"
        'raise RuntimeError("operator torchvision::nms does not exist")\n'
    )
    code = (
        "import os, sys; from hybridvision.diffusion._diffusers import diffusers, transformers; d = diffusers(); "
        "transformers(); print(d.UNet2DModel.__name__, sys.modules['torchvision'], os.getpid())"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    name, module, pid = out.split()
    assert (name, module) == ("UNet2DModel", "None")
    probes = pids.read_text().split()
    assert len(probes) == 1 and probes[0] != pid  # one probe, in another process


def test_a_hung_torchvision_probe_counts_as_broken_with_its_reason(monkeypatch):
    import subprocess

    from hybridvision.diffusion import _diffusers

    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout", 0))

    monkeypatch.setattr(_diffusers.subprocess, "run", hang)
    error = _diffusers.torchvision_import_error.__wrapped__()  # past the per-process cache
    assert "did not finish within 300 s" in error
