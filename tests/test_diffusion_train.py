"""Diffusion training through the engine: the loss falls, runs evaluate and resume bit-exactly, generate, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_diffusion_unet
import torch
from run_helpers import assert_same, weights
from synthetic_data import write_fmnist_like
from test_diffusion_fid import save_classifier

from hybridvision.cli.main import main
from hybridvision.config import parse_overrides, resolve
from hybridvision.engine.logs import read_csv
from hybridvision.engine.rundir import RunDir

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "diffusion").glob("*.yaml"))

dm = test_diffusion_unet.dm  # the shared fixture: hybridvision.diffusion, registered for this module


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_fmnist_like(tmp_path_factory.mktemp("fmnist"), train=128, test=64)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    return save_classifier(tmp_path_factory.mktemp("clf") / "clf")


def fit_one_batch(task, model, steps: int = 25) -> list[float]:
    """AdamW on one fixed batch of 32 images (3 noise draws in turn): the losses, step by step."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = next(task.batches([list(range(32))]))
    losses = []
    for step in range(steps):
        loss = task.loss(model, batch, torch.Generator().manual_seed(step % 3))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def args(data: Path, out: Path, classifier: Path, *extra: str) -> list[str]:
    return [
        *("--model", "ascan_unet_test", "--img_size", "16", "--data.root", str(data), "--out_dir", str(out)),
        *("--batch_size", "16", "--epochs", "2", "--eval_batch_size", "20", "--log_every", "2", "--threads", "1"),
        *("--budget_minutes", "0", "--eval_every", "1", "--amp", "off", "--progress", "false"),
        *("--tensorboard", "false", "--classifier", str(classifier), "--eval_samples", "20", "--val_images", "32"),
        *("--sample.sampler", "ddim", "--sample.steps", "2", "--noise.offset_noise", "0.05", "--data.hflip", "0.5"),
        *extra,
    ]


def config(dm, *argv: str):
    return resolve(dm.config.DiffusionTrainConfig, None, parse_overrides(list(argv)))


def test_a_few_steps_lower_the_loss(dm, data, classifier, tmp_path):
    task = dm.task.ClassDiffusion(config(dm, *args(data, tmp_path, classifier, "--eval_samples", "0")))
    from hybridvision.engine import Runtime
    from hybridvision.engine.distributed import Dist

    task.setup(Runtime(Dist(), lambda: torch.autocast("cpu", enabled=False)))
    torch.manual_seed(0)
    model = task.build_model().train()
    losses = fit_one_batch(task, model)
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_run_evaluates_writes_grids_and_generates(dm, data, classifier, tmp_path, capsys):
    result = dm.training.train(config(dm, *args(data, tmp_path, classifier, "--run_name", "r")))
    s, run = result.summary, result.run_dir
    assert s["metric"] == "cond_acc" and s["fid"] > 0 and s["val_loss"] > 0
    last = read_csv(run / RunDir.EVAL_LOG)[-1]  # the summary reports the final evaluation: 20 samples, so k of 20 right
    assert s["ema_cond_acc"] == last["ema_cond_acc"] and s["cond_acc"] == last["cond_acc"]
    assert (s["ema_cond_acc"] * 20 / 100).is_integer() and (s["cond_acc"] * 20 / 100).is_integer()
    assert s["fid_dim"] == 64 and s["fid_samples"] == 20 and s["noise"]["offset_noise"] == 0.05
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "eval000_ema.png", "eval000_model.png", "eval001_ema.png", "eval001_model.png",
    ]  # fmt: skip
    saved = json.loads((run / "final" / "config.json").read_text())
    assert saved["model"] == "ascan_unet_test" and saved["overrides"] == {} and len(saved["classes"]) == 10
    # generate: by name and index, from the run and from its final/ folder, same seed same image.
    out = tmp_path / "g.png"
    common = ["--n", "2", "--steps", "2", "--sampler", "euler", "--cfg", "2.0", "--seed", "3", "--out", str(out)]
    assert main(["generate", str(run), "--class", "Bag", "--class", "0", *common]) == 0
    first = out.read_bytes()
    assert main(["generate", str(run / "final"), "--class", "bag", "--class", "t-shirt/top", *common]) == 0
    assert out.read_bytes() == first
    from PIL import Image

    side = (2 * (16 + 2) + 2) * 2  # 2x2 cells of 16 px with 2 px gaps, upscaled 2x
    assert Image.open(out).size == (side, side)
    assert main(["generate", str(run), "--class", "boot", *common]) == 2
    assert "unknown class 'boot'; this model knows 0=T-shirt/top" in capsys.readouterr().err
    assert main(["generate", str(run), "--class", "12", *common]) == 2
    # diffusion eval: a JSON record and a grid beside it.
    eval_argv = ["diffusion", "eval", str(run), "--n", "20", "--classifier", str(classifier), "--data.root", str(data)]
    eval_argv += ["--sample.steps", "2", "--sample.sampler", "ddim", "--grid_per_class", "1", "--threads", "1"]
    assert main(eval_argv) == 0
    record = json.loads((run / "eval_ddim2_constant_n20.json").read_text())
    assert record["n"] == 20 and "FID-FMNIST-clf(64), N=20" in record["fid_kind"]
    assert (run / "eval_ddim2_constant_n20.png").is_file()


def test_resume_is_bit_exact(dm, data, classifier, tmp_path):
    base = args(data, tmp_path, classifier, "--ckpt_every", "4", "--grid_every", "0")
    full = dm.training.train(config(dm, *base, "--run_name", "full")).run_dir
    cut = ["--run_name", "cut"]
    dm.training.train(config(dm, *base, *cut, "--max_steps", "5"))
    resumed = dm.training.train(config(dm, *base, *cut, "--resume", "auto", "--eval_samples", "10")).run_dir
    assert_same(weights(full), weights(resumed))
    assert_same(weights(full, "model_ema.safetensors"), weights(resumed, "model_ema.safetensors"))


def test_cli_dry_run_info_and_help(dm, data, classifier, tmp_path, capsys):
    assert main(["diffusion", "train", *args(data, tmp_path, classifier), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "model: ascan_unet_test" in out and "label_dropout: 0.1" in out
    assert main(["diffusion", "info", "ascan_unet_test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["family"] == "ascan_unet"
    with pytest.raises(SystemExit):
        main(["diffusion", "train", "--help"])
    assert "--sample.cfg (default: 'constant')" in capsys.readouterr().out
    assert main(["diffusion", "train", "--model", "ascan_unet_tset", "--dry-run"]) == 2
    assert "Did you mean 'ascan_unet_test'" in capsys.readouterr().err


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_recipes_parse(dm, path):
    cfg = resolve(dm.config.DiffusionTrainConfig, str(path))
    assert cfg.data.train_split == "train" and cfg.budget_minutes > 0
    assert cfg.budget_minutes == 60 or "60min" not in path.stem
