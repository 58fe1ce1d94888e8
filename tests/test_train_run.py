"""Training runs end to end: SIGKILL + resume is bit-exact, broken checkpoints fall back, DDP agrees with one
process, multi-stage init, eval, plots and the demo. Tiny model, tiny synthetic data, 1 thread per process."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from run_helpers import assert_same, kill_after_checkpoint, spawn, torchrun, weights
from safetensors.torch import load_file
from synthetic_data import write_fmnist_like

import hybridvision as hv
from hybridvision.classify import TrainConfig, train
from hybridvision.cli.main import main
from hybridvision.config import parse_overrides, resolve
from hybridvision.engine.checkpoint import checkpoint_dirs, latest_good


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_fmnist_like(tmp_path_factory.mktemp("fmnist"), train=512, test=128)


def args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        *("--model", "coatnet_test", "--data.root", str(data), "--out_dir", str(out), "--threads", "1"),
        *("--batch_size", "16", "--epochs", "2", "--eval_batch_size", "128", "--log_every", "4"),
        *("--budget_minutes", "0", "--eval_every", "1", "--amp", "off"),
        *("--progress", "false", "--tensorboard", "false", "--aug.mixup_alpha", "0.8", "--aug.cutmix_alpha", "1.0"),
        *extra,
    ]


def in_process(data: Path, out: Path, *extra: str) -> TrainConfig:
    return resolve(TrainConfig, None, parse_overrides(args(data, out, *extra)))


def test_sigkill_then_resume_is_bit_exact(data, tmp_path):
    full = spawn(args(data, tmp_path, "--run_name", "full"))
    # The interrupted run: killed with SIGKILL once a checkpoint past step 8 exists, long before its 64 steps end.
    killed_argv = args(data, tmp_path, "--run_name", "killed", "--ckpt_every", "4")
    kill_after_checkpoint(spawn(killed_argv), tmp_path / "killed", step=8)
    assert not (tmp_path / "killed" / "final").exists()
    assert spawn([*killed_argv, "--resume", "auto"]).wait() == 0
    assert full.wait() == 0
    assert_same(weights(tmp_path / "full"), weights(tmp_path / "killed"))
    ema = "model_ema.safetensors"
    assert_same(weights(tmp_path / "full", ema), weights(tmp_path / "killed", ema))
    rows = (tmp_path / "killed" / "eval_log.csv").read_text().splitlines()
    assert rows == (tmp_path / "full" / "eval_log.csv").read_text().splitlines()


def test_truncated_checkpoint_falls_back(data, tmp_path, caplog):
    cfg = in_process(data, tmp_path, "--run_name", "r", "--epochs", "1", "--ckpt_every", "8", "--keep_ckpts", "3")
    run = train(cfg).run_dir
    reference = weights(run)
    newest, previous = checkpoint_dirs(run)[:2]
    path = newest / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a write cut short
    assert latest_good(run) == previous
    assert "unusable" in caplog.text and "truncated" in caplog.text
    # Resuming from the earlier checkpoint replays the lost steps and lands on the same weights.
    import shutil

    shutil.rmtree(run / "final")
    resumed = train(in_process(data, tmp_path, "--run_name", "r", "--epochs", "1", "--resume", "auto"))
    assert resumed.summary["steps"] == 32
    assert_same(reference, weights(run))


@pytest.mark.parametrize("launch", ["ddp", "fsdp"])
def test_two_processes_match_one_process(data, tmp_path, launch):
    # FSDP shards only contiguous weights: compare it with a one-process run of the same weight layout.
    layout = ("--channels_last", "false") if launch == "fsdp" else ()
    common = args(data, tmp_path, "--epochs", "1", "--max_steps", "6", "--ema.decay", "0", *layout)
    torchrun([*common, "--run_name", launch, "--distributed", launch])
    # One process with 2 micro-batches per step sees exactly the samples the two processes see.
    assert main(["train", *common, "--run_name", "single", "--optim.accum_steps", "2"]) == 0
    params = [n for n, _ in _model_like(tmp_path / "single").named_parameters()]
    single, w = weights(tmp_path / "single"), weights(tmp_path / launch)
    if launch == "ddp":
        assert_same({k: w[k] for k in params}, {k: single[k] for k in params}, atol=1e-6)
    else:  # FSDP reduces sharded gradients in another order; Adam magnifies rounding on near-zero gradients
        torch.manual_seed(0)
        init = hv.create_model("coatnet_test", in_chans=1, num_classes=10, img_size=32).state_dict()
        apart = sum(((w[k] - single[k]) ** 2).sum() for k in params).sqrt()
        travelled = sum(((single[k] - init[k]) ** 2).sum() for k in params).sqrt()
        assert apart < 0.01 * travelled, (float(apart), float(travelled))
    assert json.loads((tmp_path / launch / "summary.json").read_text())["steps"] == 6


def _model_like(run: Path) -> torch.nn.Module:
    from hybridvision.factory import load_model

    return load_model(run / "final")


def test_init_from_other_size_and_classes(data, tmp_path):
    first = train(in_process(data, tmp_path, "--run_name", "s1", "--max_steps", "4", "--epochs", "1")).run_dir
    folder = tmp_path / "folder"
    from synthetic_data import write_image_folder

    write_image_folder(folder, per_class=8, classes=3)
    second = in_process(
        data,
        tmp_path,
        *("--run_name", "s2", "--init_from", str(first), "--img_size", "64", "--max_steps", "2", "--epochs", "1"),
        *("--data.dataset", "folder", "--data.root", str(folder), "--data.train_split", "train"),
        *("--data.eval_split", "val", "--data.channels", "1", "--batch_size", "8", "--aug.mixup_alpha", "0"),
    )
    run = train(second).run_dir
    w1, w2 = weights(first), load_file(str(run / "checkpoints" / checkpoint_dirs(run)[-1].name / "model.safetensors"))
    assert w2["head.fc.weight"].shape == (3, w1["head.fc.weight"].shape[1])
    table = next(k for k in w1 if k.endswith("rel_pos.table"))
    assert w2[table].shape[-1] == 2 * w1[table].shape[-1] + 1  # the grid doubles: 2g - 1 -> 4g - 1
    stem = "stem.conv1.weight"
    assert not torch.equal(w2[stem], hv_fresh_stem(run))  # the stem came from stage 1, not a fresh init


def hv_fresh_stem(run: Path) -> torch.Tensor:
    torch.manual_seed(0)
    return hv.create_model("coatnet_test", in_chans=1, num_classes=3, img_size=64).state_dict()["stem.conv1.weight"]


def test_eval_plot_and_dry_run(data, tmp_path, capsys):
    run = train(in_process(data, tmp_path, "--run_name", "e", "--max_steps", "4", "--epochs", "1")).run_dir
    assert main(["eval", str(run), "--data.eval_subset", "64"]) == 0
    results = json.loads((run / "eval.json").read_text())["results"]
    assert set(results) == {"model", "ema"} and results["model"]["top1"] <= results["model"]["top5"]
    assert results["model"]["top1"] == pytest.approx(direct_top1(run, data, 64), abs=1e-6)
    assert main(["plot-run", str(run)]) == 0
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["train", "--dry-run", "--optim.lr", "3e-4", "--model_kwargs.dims", "8,16"]) == 0
    out = capsys.readouterr().out
    assert "model: ascan_nano" in out and "lr: 0.0003" in out and "dims: 8,16" in out
    assert main(["train", "--dry-run", "--data", "/data/fmnist", "--init-from", "runs/x", "--img-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "root: /data/fmnist" in out and "init_from: runs/x" in out and "img_size: 64" in out


def test_demo_quick_writes_report(data, tmp_path):
    argv = ["demo", "--quick", "--compare", "coatnet_test,not_a_model", *args(data, tmp_path, "--run_name", "d")]
    argv = [a if not a.startswith("--") or a in ("--quick", "--compare") else "--train." + a[2:] for a in argv]
    assert main(argv) == 0
    run = tmp_path / "d"
    report = (run / "report.md").read_text()
    assert "coatnet_test" in report and "not installed" in report and "Test top-1" in report
    for png in ("curves.png", "table.png"):
        assert (run / png).stat().st_size > 1000
    bench = json.loads((run / "bench.json").read_text())
    assert bench["rows"][0]["model"] == "coatnet_test" and bench["rows"][0]["bN_img_s"] > 0


def test_recipe_runner_writes_results(data, tmp_path, monkeypatch):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "run_recipe.py"
    spec = importlib.util.spec_from_file_location("run_recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recipe = tmp_path / "tiny_recipe.yaml"
    recipe.write_text("# A tiny recipe for the test.\nmodel: coatnet_test\nepochs: 1\nmax_steps: 4\n")
    monkeypatch.chdir(tmp_path)
    out = module.main(str(recipe), *args(data, tmp_path)[2:])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and "environment" in summary
    assert summary["target_note"] == "A tiny recipe for the test."
    for name in ("config.yaml", "curves.png", "train_log.csv", "eval_log.csv"):
        assert (out / name).is_file()


def test_divergence_is_a_clear_error(data, tmp_path, capsys):
    bad = ("--optim.lr", "1e8", "--optim.warmup_epochs", "0", "--optim.clip_grad", "0", "--log_every", "2")
    assert main(["train", *args(data, tmp_path, "--max_steps", "4", *bad)]) == 2
    assert "the loss became nan" in capsys.readouterr().err


def test_bf16_autocast_trains(data, tmp_path):
    from hybridvision.engine.session import resolve_amp

    assert (
        resolve_amp("off", torch.device("cpu")) is None and resolve_amp("bf16", torch.device("cpu")) is torch.bfloat16
    )
    run = train(in_process(data, tmp_path, "--run_name", "b", "--max_steps", "3", "--epochs", "1", "--amp", "bf16"))
    assert run.summary["steps"] == 3 and math.isfinite(run.summary["loss"])
    assert all(v.dtype == torch.float32 for v in weights(run.run_dir).values() if v.is_floating_point())


def direct_top1(run: Path, data: Path, n: int) -> float:
    """Top-1 (%) of a run's final raw weights on the first ``n`` evaluation images, counted here directly."""
    from hybridvision.classify.data import load_split

    cfg = resolve(TrainConfig, str(run / "config.yaml"))
    model = hv.load_model(run / "final", use_ema=False).eval()
    split = load_split(cfg.data, cfg.data.eval_split, cfg.img_size, n)
    mean = torch.tensor(cfg.data.mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.data.std).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = model((split.images.float() / 255 - mean) / std)
    return 100 * float((logits.argmax(1) == split.labels).double().mean())
