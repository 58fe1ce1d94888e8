"""The AsCAN UNet as a diffusers model and ``AsCANPipeline``: parity with the plain module, diffusers' save/load,
gradient checkpointing, dtype moves, the pipeline against our samplers, and a saved pipeline in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import test_diffusion_unet
import torch
import unet_reference
from test_diffusion_text import save_tiny_text_model
from test_diffusion_unet import perturb, tiny

from hybridvision.cli.main import main
from hybridvision.config import to_dict

dm = test_diffusion_unet.dm  # the shared fixture: hybridvision.diffusion, registered for this module


def run_python(code: str, **env: str) -> str:
    """``code`` in a fresh interpreter (this one's sys.path); its stdout."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **env}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# ---- The UNet as a diffusers model


def test_import_hybridvision_stays_free_of_diffusers():
    code = """
import json, sys
import hybridvision as hv
seen = {"hybridvision": "diffusers" in sys.modules}
import hybridvision.models
seen["hybridvision.models"] = "diffusers" in sys.modules
hv.get_config("ascan_unet_test"), hv.list_models(task="generation")
seen["a denoiser's config"] = "diffusers" in sys.modules
print(json.dumps(seen))
"""
    seen = json.loads(run_python(code).strip().splitlines()[-1])
    assert seen == {"hybridvision": False, "hybridvision.models": False, "a denoiser's config": False}


def test_unet_gives_exactly_the_plain_modules_outputs_on_the_same_weights(dm):
    from safetensors import safe_open

    cases, names = unet_reference.outputs()
    with safe_open(str(unet_reference.REFERENCE), framework="pt") as f:
        assert f.metadata() == names  # the same weight names and shapes: saved runs load as they did
        for case, out in cases.items():
            assert torch.equal(out, f.get_tensor(case)), case


def test_unet_is_a_diffusers_model_that_saves_and_loads_in_diffusers_format(dm, tmp_path):
    diffusers = dm.latent.diffusers()
    for name in ("ascan_unet_test", "ascan_unet_t2i_test"):
        model = tiny(dm, name, dims=(8, 16, 24))
        perturb(model)
        assert isinstance(model, diffusers.ModelMixin) and isinstance(model.config, dm.unet.AsCANUNetConfig)
        model.save_pretrained(tmp_path / name)
        files = sorted(p.name for p in (tmp_path / name).iterdir())
        assert files == ["config.json", "diffusion_pytorch_model.safetensors"]
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["_class_name"] == "AsCANUNet" and saved["dims"] == [8, 16, 24]
        assert {k: v for k, v in saved.items() if not k.startswith("_")} == to_dict(model.config)
        loaded = dm.package.AsCANUNet.from_pretrained(tmp_path / name).eval()
        assert loaded.config == model.config and (loaded.config.in_channels, loaded.config.sample_size) == (1, (16, 16))
        x = torch.randn(2, 1, 16, 16)
        torch.testing.assert_close(loaded(x, 3).sample, model(x, 3).sample, rtol=0, atol=0)
        rebuilt = dm.package.AsCANUNet.from_config(model._internal_dict)  # diffusers' from_config of its config
        assert rebuilt.config == model.config
    adapter = model.text_adapter  # a diffusers model of its own
    adapter.save_pretrained(tmp_path / "adapter")
    again = type(adapter).from_pretrained(tmp_path / "adapter")
    tokens = torch.randn(2, 3, 16)
    torch.testing.assert_close(again(tokens), adapter(tokens), rtol=0, atol=0)


def test_forward_returns_diffusers_output_and_refuses_unknown_classes(dm):
    model = tiny(dm)
    x = torch.randn(2, 1, 16, 16)
    out = model(x, 10, class_labels=torch.tensor([1, 2]))
    assert type(out).__name__ == "UNet2DOutput" and out.sample.shape == x.shape
    (alone,) = model(x, 10, class_labels=torch.tensor([1, 2]), return_dict=False)
    assert torch.equal(alone, out.sample)
    for bad in (-1, 11):
        with pytest.raises(dm.unet.InputError, match=f"class label {bad} is out of range.*0..9, and 10 is the null"):
            model(x[:1], 10, class_labels=torch.tensor([bad]))


def test_dtype_moves_like_a_diffusers_model(dm):
    model = tiny(dm, "ascan_unet_t2i_test")
    perturb(model)
    x, states = torch.randn(2, 1, 16, 16), torch.randn(2, 3, 16)
    ref = model(x, 40, encoder_hidden_states=states).sample
    model.to(torch.float64)
    assert model.dtype == torch.float64 and model.device.type == "cpu"
    out = model(x.double(), 40, encoder_hidden_states=states).sample  # float32 tokens meet float64 weights
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), ref, rtol=1e-4, atol=1e-5)


def test_gradient_checkpointing_recomputes_every_block_with_the_same_gradients(dm):
    model = tiny(dm, "ascan_unet_t2i_test").train()
    perturb(model)
    x, states = torch.randn(2, 1, 16, 16), torch.randn(2, 3, 16)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(x, 30, encoder_hidden_states=states, encoder_attention_mask=mask).sample.square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    calls = []

    def counting(block, *inputs):
        calls.append(type(block).__name__)
        return torch.utils.checkpoint.checkpoint(block.__call__, *inputs, use_reentrant=False)

    model.enable_gradient_checkpointing(gradient_checkpointing_func=counting)
    assert model.is_gradient_checkpointing
    recomputed = grads()
    blocks = sum(len(stage.blocks) for stage in (*model.down, model.mid, *model.up))
    assert len(calls) == blocks and {"FusedMBConv", "ParallelTransformerBlock"} <= set(calls)
    assert recomputed.keys() == plain.keys()
    for name, grad in plain.items():
        torch.testing.assert_close(recomputed[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    model.disable_gradient_checkpointing()
    calls.clear()
    grads()
    assert not calls


# ---- AsCANPipeline against our samplers


def class_pipeline(dm, sampler: str = "heun"):
    unet = tiny(dm)
    perturb(unet)
    scheduler = dm.schedule.make_scheduler(sampler, dm.schedule.NoiseConfig())
    names = {i: f"class{i}" for i in range(10)}
    pipe = dm.package.AsCANPipeline(unet=unet, scheduler=scheduler, id2label=names)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("sampler", ["heun", "ddpm"])
def test_class_pipeline_is_our_sampler(dm, sampler):
    pipe = class_pipeline(dm, sampler)
    cfg = dm.sampling.SampleConfig(sampler=sampler, steps=5, cfg="sampled", ramp_start=2)
    noise = dm.sampling.initial_noise([0, 1, 2], (1, 16, 16), seed=3)
    labels = torch.tensor([2, 7, 7])
    ref = dm.sampling.sample(
        pipe.unet, labels, noise, cfg, dm.schedule.NoiseConfig(), generator=torch.Generator().manual_seed(9)
    )
    scales = dm.sampling.guidance_scales(cfg)
    out = pipe(
        class_labels=["Class2", 7, "7"], num_inference_steps=5, guidance_scale=scales,
        generator=torch.Generator().manual_seed(9), latents=noise, output_type="latent",
    )  # fmt: skip
    assert torch.equal(out.images, ref)


def test_pipeline_outputs_generators_and_images_per_label(dm):
    pipe = class_pipeline(dm)
    gens = [torch.Generator().manual_seed(5 * 1_000_003 + i) for i in range(4)]  # hybridvision generate --seed 5
    pt = pipe(class_labels=[1, 3], num_images_per_prompt=2, num_inference_steps=2, generator=gens, output_type="pt")
    noise = dm.sampling.initial_noise(range(4), (1, 16, 16), seed=5)
    again = pipe(class_labels=[1, 1, 3, 3], num_inference_steps=2, latents=noise, output_type="pt").images
    assert pt.images.shape == (4, 1, 16, 16) and torch.equal(pt.images, again)
    assert 0 <= pt.images.min() and pt.images.max() <= 1
    arrays = pipe(class_labels=1, num_inference_steps=2, latents=noise[:1], output_type="np").images
    assert arrays.shape == (1, 16, 16, 1) and np.allclose(arrays[0, ..., 0], pt.images[0, 0].numpy(), atol=1e-6)
    (images,) = pipe(class_labels=1, num_inference_steps=2, latents=noise[:1], return_dict=False)
    assert images[0].mode == "L" and images[0].size == (16, 16)
    assert np.array_equal(np.asarray(images[0]), (arrays[0, ..., 0] * 255).round().astype(np.uint8))


def test_pipeline_refuses_bad_requests_in_one_line(dm):
    pipe = class_pipeline(dm)
    bad = [
        (dict(class_labels=10), "class 10 is out of range: this model knows classes 0..9"),
        (dict(class_labels="boot"), "unknown class 'boot'; this model knows 0=class0"),
        (dict(prompt="a bag"), "class-conditioned: pass class_labels="),
        (dict(), "pass one of class_labels"),
        (dict(class_labels=1, output_type="jpg"), "output_type must be one of"),
        (dict(class_labels=1, guidance_scale=[1.5, 2.0]), "2 per-step scales for 3 inference steps"),
        (dict(class_labels=1, latents=torch.zeros(2, 1, 16, 16)), r"latents must be \(1, 1, 16, 16\)"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            pipe(num_inference_steps=3, **kwargs)


def text_pipeline(dm, folder: Path):
    tf = dm.text.transformers()
    unet = tiny(dm, "ascan_unet_t2i_test")
    perturb(unet)
    encoder = tf.AutoModelForTextEncoding.from_pretrained(str(folder)).eval()
    tokenizer = tf.AutoTokenizer.from_pretrained(str(folder))
    scheduler = dm.schedule.make_scheduler("heun", dm.schedule.NoiseConfig())
    pipe = dm.package.AsCANPipeline(unet=unet, scheduler=scheduler, text_encoder=encoder, tokenizer=tokenizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("form", ["tokens", "sentence"])
def test_text_pipeline_encodes_prompts_as_the_text_task_does(dm, tmp_path, form):
    folder = save_tiny_text_model(dm, tmp_path / "t5")
    pipe = text_pipeline(dm, folder)
    pipe.register_to_config(text_form=form)
    prompts = ["a photo of a bag", "a pair of jeans"]
    states, mask = dm.text_cache.EmbeddingCache(str(folder), tmp_path / "cache").lookup([*prompts, ""])
    states, mask = dm.condition.in_form(states, mask, form)
    cond = dm.condition.TextCondition(states[:-1], mask[:-1], states[-1:], mask[-1:])
    noise = dm.sampling.initial_noise([0, 1], (1, 16, 16), seed=0)
    ref = dm.sampling.sample(pipe.unet, cond, noise, dm.sampling.SampleConfig(steps=3), dm.schedule.NoiseConfig())
    out = pipe(prompt=prompts, num_inference_steps=3, latents=noise, output_type="latent").images
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    embeds = pipe(
        prompt_embeds=states[:-1], prompt_attention_mask=mask[:-1], negative_prompt_embeds=states[-1:],
        negative_prompt_attention_mask=mask[-1:], num_inference_steps=3, latents=noise, output_type="latent",
    ).images  # fmt: skip
    assert torch.equal(embeds, ref)
    with pytest.raises(ValueError, match="text-conditioned: pass prompt="):
        pipe(class_labels=1)


def test_minilm_pipeline_encoding_is_the_embedding_cache(dm, tmp_path):
    try:
        encoder = dm.text.load_encoder("minilm")
    except ImportError as e:
        pytest.skip(str(e))
    unet = tiny(dm, "ascan_unet_t2i_test", context_dim=384)
    scheduler = dm.schedule.make_scheduler("heun", dm.schedule.NoiseConfig())
    pipe = dm.package.AsCANPipeline(
        unet=unet, scheduler=scheduler, text_encoder=encoder.model, tokenizer=encoder.tokenizer,
        text_max_length=encoder.max_length,
    )  # fmt: skip
    prompts = ["a photo of a sneaker", "a bag"]
    states, mask = pipe.encode_prompt(prompts)
    cached, cached_mask = dm.text_cache.EmbeddingCache("minilm", tmp_path).lookup([*prompts, ""])
    assert torch.equal(mask, cached_mask) and states.shape == (3, mask.shape[1], 384)
    torch.testing.assert_close(states, cached, rtol=1e-4, atol=1e-5)


# ---- A saved pipeline, in a fresh process, against `hybridvision generate`


def save_run_folder(dm, folder: Path, name: str, **info) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A saved ``final/``-style folder of ``name``: raw and (different) EMA weights, and the model description."""
    from hybridvision.factory import model_config_dict, save_pretrained

    model, ema = tiny(dm, name), tiny(dm, name)
    perturb(model)
    perturb(ema)
    save_pretrained(model, folder, ema=ema)
    description = model_config_dict(model) | {"task": "diffusion", "noise": to_dict(dm.schedule.NoiseConfig())}
    (folder / "config.json").write_text(json.dumps(description | info))
    return model, ema


LOAD_BOTH_WAYS = """
import json, sys, numpy as np, torch
from hybridvision.diffusion import AsCANPipeline
from diffusers import DiffusionPipeline, EulerDiscreteScheduler
folder, kwargs = sys.argv[1], json.loads(sys.argv[2])
seed, n = kwargs.pop("seed"), kwargs.pop("n")
out = {}
for how, pipe in (("ascan", AsCANPipeline.from_pretrained(folder)),
                  ("diffusers", DiffusionPipeline.from_pretrained(folder, trust_remote_code=True))):
    pipe.set_progress_bar_config(disable=True)
    gens = [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in range(n)]
    images = pipe(**kwargs, num_inference_steps=3, generator=gens, output_type="np").images
    out[how] = [type(pipe).__name__, type(pipe.scheduler).__name__, (images * 255).round().astype(int).tolist()]
pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
gens = [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in range(n)]
images = pipe(**kwargs, num_inference_steps=3, generator=gens, output_type="np").images
out["euler"] = [type(pipe).__name__, type(pipe.scheduler).__name__, (images * 255).round().astype(int).tolist()]
print(json.dumps(out))
"""


def load_both_ways(folder: Path, tmp_path: Path, **kwargs) -> dict:
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "HF_MODULES_CACHE": str(tmp_path / "hf_modules"),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", LOAD_BOTH_WAYS, str(folder), json.dumps(kwargs)],
        capture_output=True, text=True, env=environ, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {how: (name, scheduler, np.array(images)) for how, (name, scheduler, images) in out.items()}


def test_saved_class_pipeline_loads_both_ways_and_reproduces_generate(dm, tmp_path):
    classes = [f"kind{i}" for i in range(10)]
    _, ema = save_run_folder(dm, tmp_path / "final", "ascan_unet_test", classes=classes)
    pipe_dir = tmp_path / "pipe"
    assert main(["generate", str(tmp_path / "final"), "--save-pipeline", str(pipe_dir), "--sampler", "heun"]) == 0
    index = json.loads((pipe_dir / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline", "AsCANPipeline"] and index["unet"][1] == "AsCANUNet"
    assert index["id2label"]["3"] == "kind3" and index["scheduler"] == ["diffusers", "HeunDiscreteScheduler"]
    saved = dm.package.AsCANUNet.from_pretrained(pipe_dir / "unet")
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), ema.state_dict().values()))  # EMA

    out = load_both_ways(pipe_dir, tmp_path, class_labels=["kind3", "kind3", 5], seed=4, n=3)
    denoiser = dm.generate.load_denoiser(tmp_path / "final")
    for sampler, how in (("heun", "ascan"), ("heun", "diffusers"), ("euler", "euler")):
        cfg = dm.sampling.SampleConfig(sampler=sampler, steps=3)
        expected = dm.generate.generate(denoiser, [3, 3, 5], 1, cfg, seed=4).numpy()  # hybridvision generate's
        name, scheduler, images = out[how]
        assert name == "AsCANPipeline" and scheduler == f"{sampler.capitalize()}DiscreteScheduler"
        assert np.abs(images.transpose(0, 3, 1, 2) - expected).max() <= 1, how  # within 1/255
        noise = dm.sampling.initial_noise(range(3), (1, 16, 16), seed=4)  # and the sampler itself, before pipelines
        before = dm.pixels.to_uint8(dm.sampling.sample(ema.eval(), torch.tensor([3, 3, 5]), noise, cfg, denoiser.noise))
        assert np.abs(images.transpose(0, 3, 1, 2) - before.numpy()).max() <= 1, how


def test_saved_text_pipeline_loads_both_ways_and_reproduces_generate(dm, tmp_path):
    encoder = save_tiny_text_model(dm, tmp_path / "t5")
    text = {"encoder": str(encoder), "cache_dir": str(tmp_path / "cache"), "max_length": 0}
    save_run_folder(dm, tmp_path / "final", "ascan_unet_t2i_test", text=text)
    pipe_dir = dm.generate.save_pipeline(tmp_path / "final", tmp_path / "pipe")
    index = json.loads((pipe_dir / "model_index.json").read_text())
    assert index["text_encoder"] == ["transformers", "T5EncoderModel"] and index["tokenizer"][0] == "transformers"

    prompts = ["a photo of a bag", "a pair of jeans"]
    out = load_both_ways(pipe_dir, tmp_path, prompt=prompts, seed=2, n=2)
    denoiser = dm.generate.load_denoiser(tmp_path / "final")
    expected = dm.generate.generate_prompts(denoiser, prompts, 1, dm.sampling.SampleConfig(steps=3), seed=2).numpy()
    for how in ("ascan", "diffusers"):
        assert np.abs(out[how][2].transpose(0, 3, 1, 2) - expected).max() <= 1, how


def test_save_pipeline_refuses_a_file_as_its_folder(dm, tmp_path):
    save_run_folder(dm, tmp_path / "final", "ascan_unet_test")
    (tmp_path / "taken").write_text("")
    assert main(["generate", str(tmp_path / "final"), "--save-pipeline", str(tmp_path / "taken")]) == 2
