"""Text-to-image training through the engine: the loss falls, two stages at two resolutions, generate from prompts
(and refuse bad ones), evaluation on held-out prompts, latent space through a tiny VAE, the SDXL speed script.

Every text run uses the tiny T5 encoder of test_diffusion_text.py (randomly initialised, saved to disk).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import test_diffusion_train
import test_diffusion_unet
import torch
from test_diffusion_text import t5_dir  # noqa: F401  (the tiny T5 encoder fixture)
from test_diffusion_unet import tiny

from hybridvision.checkpoint import CheckpointError
from hybridvision.cli.main import main
from hybridvision.config import resolve

ROOT = Path(__file__).resolve().parents[1]
dm = test_diffusion_unet.dm  # the shared fixture: hybridvision.diffusion, registered for this module
# The class-conditional tests' data and classifier fixtures, run arguments and config parser.
data, classifier = test_diffusion_train.data, test_diffusion_train.classifier
args, config = test_diffusion_train.args, test_diffusion_train.config


def text_args(data: Path, out: Path, classifier: Path, encoder: Path, *extra: str) -> list[str]:
    text = ("--model", "ascan_unet_t2i_test", "--conditioning", "text", "--text.encoder", str(encoder))
    return args(data, out, classifier, "--judge_size", "16", *text, *extra)


def test_text_unet_learns_a_few_steps(dm, data, classifier, t5_dir, tmp_path):  # noqa: F811
    from hybridvision.engine import Runtime
    from hybridvision.engine.distributed import Dist

    task = dm.text_task.TextDiffusion(config(dm, *text_args(data, tmp_path, classifier, t5_dir, "--eval_samples", "0")))
    task.setup(Runtime(Dist(), lambda: torch.autocast("cpu", enabled=False)))
    assert (tmp_path / "text_cache").is_dir() and task.cache.misses == len(task.states)  # computed once, saved
    torch.manual_seed(0)
    model = task.build_model().train()
    assert model.config.context == "text" and model.config.context_dim == 16  # the encoder's width
    losses = test_diffusion_train.fit_one_batch(task, model)
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_prompt_augmentations_reach_the_training_inputs(dm, data, classifier, t5_dir, tmp_path):  # noqa: F811
    """text.noise and text.token_dropout change the tokens the denoiser trains on, never the null prompt's."""
    from hybridvision.engine import Runtime
    from hybridvision.engine.distributed import Dist

    def inputs(*extra: str) -> dict[str, torch.Tensor]:
        cfg = config(dm, *text_args(data, tmp_path, classifier, t5_dir, "--eval_samples", "0", *extra))
        task = dm.text_task.TextDiffusion(cfg)
        task.setup(Runtime(Dist(), lambda: torch.autocast("cpu", enabled=False)))
        labels, drop = torch.arange(64) % 10, torch.arange(64) % 8 == 0  # every eighth: the null prompt
        return task.train_inputs(labels, drop, torch.Generator().manual_seed(0)), drop

    (plain, drop), (augmented, _) = inputs(), inputs("--text.noise", "0.5", "--text.token_dropout", "0.5")
    kept, real = augmented["encoder_attention_mask"], plain["encoder_attention_mask"]
    assert (kept & ~real).sum() == 0 and (real & ~kept)[~drop].sum() > 0.3 * real[~drop, 1:].sum()
    assert torch.equal(kept[drop], real[drop])
    states = augmented["encoder_hidden_states"]
    assert not torch.equal(states[~drop], plain["encoder_hidden_states"][~drop])
    assert torch.equal(states[drop], plain["encoder_hidden_states"][drop])
    sentence, _ = inputs("--text.sentence_token", "1.0")  # every prompt as its sentence vector, the null as it was
    one = sentence["encoder_attention_mask"]
    assert (one[~drop].sum(1) == 1).all() and torch.equal(one[drop], real[drop][:, : one.shape[1]])


def test_two_stages_then_generate_from_prompts_and_evaluate(dm, data, classifier, t5_dir, tmp_path, capsys):  # noqa: F811
    base = text_args(data, tmp_path, classifier, t5_dir)
    first = dm.training.train(config(dm, *base, "--run_name", "s1"))
    assert first.summary["prompts"]["train"] == 33 * 7  # names x templates and first.summary["metric"] == "cond_acc"
    stage2 = ("--img_size", "32", "--data.upsample", "2", "--init_from", str(first.run_dir), "--epochs", "1")
    stage2 += ("--text.train_names", "many")  # more training names from stage 2 on: the held-out set stays
    second = dm.training.train(config(dm, *base, *stage2, "--run_name", "s2"))
    assert second.summary["prompts"]["train"] == (33 + 49) * 7 and second.summary["prompts"]["held_out"] == 60
    carried = second.summary["init_from"]
    assert carried["carried"] > 0 and carried["fresh"] == [] and carried["dropped"] == []  # everything fits at 32
    run = second.run_dir
    saved = json.loads((run / "final" / "config.json").read_text())
    assert saved["text"]["encoder"] == str(t5_dir) and saved["overrides"]["img_size"] == 32
    assert saved["text"]["train_names"] == "many"  # what `diffusion eval --prompts train` evaluates
    # generate: --prompt and --prompts-file give the same grid; labelled rows, 32 px samples.
    out, listing = tmp_path / "g.png", tmp_path / "prompts.txt"
    common = ["--n", "2", "--steps", "2", "--sampler", "euler", "--cfg", "2.0", "--out", str(out)]
    assert main(["generate", str(run), "--prompt", "a photo of a bag", "--prompt", "a pair of jeans", *common]) == 0
    grid = out.read_bytes()
    listing.write_text("a photo of a bag\n\na pair of jeans\n")
    assert main(["generate", str(run / "final"), "--prompts-file", str(listing), *common]) == 0
    assert out.read_bytes() == grid
    from PIL import Image

    width, height = Image.open(out).size
    assert height == (2 * (32 + 2) + 2) * 2 and width > height  # two rows of two, a label margin on the left
    # Bad prompts and wrong kinds of request fail with the fix, exit code 2.
    listing.write_bytes(b"\x00\x01binary")
    for bad, message in [
        (["--prompt", ""], "prompt 1 is empty"),
        (["--prompt", " \t "], "only whitespace"),
        (["--prompt", "a \x1b[31mbag"], "control character"),
        (["--prompts-file", str(listing)], "not a text file"),
        (["--class", "bag"], "text-conditioned: ask for prompts"),
        (["--class", "bag", "--prompt", "a bag"], "not both"),
    ]:
        assert main(["generate", str(run), *bad, *common]) == 2, bad
        assert message in capsys.readouterr().err
    assert main(["generate", str(run), "--prompt", "", "--allow-empty", *common]) == 0  # unconditional
    # Evaluation on the held-out prompts, a labelled grid beside the record; curves of both stages.
    eval_argv = ["diffusion", "eval", str(run), "--n", "20", "--classifier", str(classifier), "--data.root", str(data)]
    eval_argv += ["--sample.steps", "2", "--sample.sampler", "ddim", "--grid_per_class", "1", "--judge_size", "16"]
    assert main(eval_argv) == 0
    record = json.loads((run / "eval_ddim2_constant_n20.json").read_text())
    assert record["n"] == 20 and record["config"]["prompts"] == "held_out"
    per_class = record["cond_acc_per_class"]  # 2 samples per class: each class scores 0, 50 or 100
    assert len(per_class) == 10 and set(per_class.values()) <= {0.0, 50.0, 100.0}
    assert sum(per_class.values()) / 10 == pytest.approx(record["cond_acc"])
    agreement = record["encoder_agreement"]  # the tiny T5's own reading of the held-out prompts
    assert 0 <= agreement["pct"] <= 100 and len(agreement["per_class"]) == 10
    assert len(agreement["placed_elsewhere"]) == round(60 * (1 - agreement["pct"] / 100))
    assert dm.report.plot_stages([first.run_dir, run], tmp_path / "curves.png").is_file()
    assert main([*eval_argv, "--text_form", "sentence", "--grid_per_class", "0"]) == 0  # prompts as one token
    record = json.loads((run / "eval_ddim2_constant_n20_sentence.json").read_text())
    assert record["config"]["text_form"] == "sentence" and record["n"] == 20
    # The nearest-training-prompt measurement: held-out prompts swapped for training prompts, same protocol.
    spec = importlib.util.spec_from_file_location("t2i_nearest_prompt", ROOT / "benchmarks" / "t2i_nearest_prompt.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    flags = f"--classifier {classifier} --data.root {data} --sample.steps 2 --sample.sampler ddim --judge_size 16"
    assert script.main([str(run), "--n", "20", "--out_dir", str(tmp_path), "--eval", flags]) == 0
    swapped = json.loads((tmp_path / "eval_ddim2_cfg2.0_held_out_nearest_train_prompt_n20.json").read_text())
    trained = set(dm.prompts.fmnist_prompts("train", "many").prompts)
    assert len(swapped["swapped_for"]) == 60 and set(swapped["swapped_for"].values()) <= trained
    wrong = len(swapped["names_another_class"])
    assert swapped["nearest_agreement_pct"] == pytest.approx(100 * (60 - wrong) / 60, abs=0.01)
    assert swapped["n"] == 20 and swapped["condition"] == "nearest training prompt" and 0 <= swapped["cond_acc"] <= 100


def test_carry_over_names_what_does_not_fit(dm, tmp_path):
    from hybridvision.factory import save_pretrained

    save_pretrained(tiny(dm), tmp_path / "class")
    text = tiny(dm, "ascan_unet_t2i_test")
    report = dm.stages.carry_over(text, tmp_path / "class")
    assert report["dropped"] == ["class_embed"] and any(m.startswith("text_adapter.") for m in report["fresh"])
    wide = tiny(dm, "ascan_unet_test", dims=(8, 16, 24))
    report = dm.stages.carry_over(wide, tmp_path / "class")
    assert "down.2.blocks.0.attn.qkv" in report["dropped"] and report["carried"] > 0
    from hybridvision.fileio import save_tensors

    save_tensors({"unrelated.weight": torch.zeros(3)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="nothing in .* fits ascan_unet_test"):
        dm.stages.carry_over(tiny(dm), tmp_path / "other.safetensors")


def test_generate_refuses_prompts_for_a_class_model(dm):
    model = tiny(dm)
    denoiser = dm.generate.Denoiser(model, dm.schedule.NoiseConfig(), ["a", "b"], (1, 16, 16))
    with pytest.raises(dm.prompts.PromptError, match="class-conditioned: ask for classes"):
        dm.generate.generate_prompts(denoiser, ["a bag"], 1, dm.sampling.SampleConfig(steps=1))


def save_tiny_vae(dm, folder: Path) -> Path:
    """A randomly initialised 1-channel AutoencoderKL with 2x downsampling to 4 latent channels."""
    vae = dm.latent.diffusers().AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )  # fmt: skip
    vae.save_pretrained(folder)
    return folder


def test_latent_space_end_to_end(dm, data, classifier, tmp_path):
    vae_dir = save_tiny_vae(dm, tmp_path / "vae")
    result = dm.training.train(
        config(dm, *args(data, tmp_path, classifier, "--img_size", "32", "--latent.vae", str(vae_dir)))
    )
    caches = list((tmp_path / "latent_cache").glob("latents_vae-*.safetensors"))
    assert len(caches) == 2  # the training and the validation images, encoded once
    saved = json.loads((result.run_dir / "final" / "config.json").read_text())
    assert saved["overrides"]["in_chans"] == 4 and "img_size" not in saved["overrides"]  # 4 x 16 x 16: the variant's 16
    assert saved["latent"]["factor"] == 2 and result.summary["cond_acc"] >= 0
    out = tmp_path / "latent.png"
    assert main(["generate", str(result.run_dir), "--class", "bag", "--n", "1", "--steps", "2", "--out", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size == ((32 + 4) * 2,) * 2  # decoded to 32 px pixels (one cell, 2 px gaps, 2x)


def test_speed_script_against_sdxl_runs_tiny(dm, tmp_path):
    spec = importlib.util.spec_from_file_location("t2i_vs_sdxl", ROOT / "benchmarks" / "t2i_vs_sdxl.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "speed.json"
    argv = ["--tiny", "--latents", "8,16", "--tokens", "5", "--warmup", "0", "--iters", "2", "--min-s", "0"]
    assert script.main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["latent"] for r in result["rows"]] == ["8x8", "16x16"] and result["rows"][0]["tokens"] == 5
    assert all(r["latency_ratio_ascan_to_sdxl"] > 0 for r in result["rows"]) and result["param_ratio_ascan_to_sdxl"] > 0
    assert result["environment"]["torch"] and result["dtype"] == "fp32"


def test_sdxl_config_builds_the_published_size(dm):
    from hybridvision.diffusion.models.sdxl import sdxl_unet
    from hybridvision.macs import count_params

    with torch.device("meta"):
        unet = sdxl_unet()
    assert count_params(unet) == 2_567_463_684  # generation.md §3


def test_t2i_recipes(dm):
    folder = ROOT / "configs" / "diffusion"
    one = resolve(dm.config.DiffusionTrainConfig, str(folder / "fmnist_t2i_stage1_32.yaml"))
    two = resolve(dm.config.DiffusionTrainConfig, str(folder / "fmnist_t2i_stage2_64.yaml"))
    assert one.conditioning == two.conditioning == "text" and (one.img_size, two.img_size) == (32, 64)
    assert one.budget_minutes + two.budget_minutes <= 90 and two.data.upsample == 2
    assert two.init_from.endswith("fmnist_t2i_stage1_32") and one.text.eval_prompts == "held_out"
