"""The training engine with a task of another shape (dense per-pixel regression, tests/toy_task.py): it learns,
reports the task's metric, resumes bit-exactly after SIGKILL, and two processes match one."""

from __future__ import annotations

import json

import pytest
import torch
from run_helpers import TOY_TASK, assert_same, kill_after_checkpoint, spawn, torchrun, weights
from toy_task import ToyConfig, ToyTask

from hybridvision.config import ConfigError
from hybridvision.engine import OptimConfig, run
from hybridvision.engine.logs import read_csv
from hybridvision.engine.rundir import RunDir
from hybridvision.engine.schedule import Schedule, lr_at


def toy_args(out, *extra: str) -> list[str]:
    return [
        *("--out_dir", str(out), "--threads", "1", "--log_every", "2", "--eval_every", "1", "--amp", "off"),
        *("--progress", "false", "--tensorboard", "false", "--optim.lr", "0.01", "--optim.warmup_epochs", "0.2"),
        *extra,
    ]


def toy_config(out, **overrides) -> ToyConfig:
    from hybridvision.config import parse_overrides, resolve

    flags = parse_overrides(toy_args(out))
    return resolve(ToyConfig, None, {**flags, **overrides})


def test_toy_task_learns_and_reports_its_metric(tmp_path):
    result = run(ToyTask(toy_config(tmp_path, run_name="learn", epochs=6)))
    evals = read_csv(result.run_dir / RunDir.EVAL_LOG)
    assert evals[-1]["psnr"] > evals[0]["psnr"] + 3, [r["psnr"] for r in evals]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["metric"] == "psnr" and summary["psnr"] == round(evals[-1]["psnr"], 4)
    assert "ema_psnr" in summary and summary["steps"] == 6 * 96 // 8
    described = {"toy": True, "width": 8, "task": "toytask"}  # the task's model_config + the task (its class name)
    assert json.loads((result.run_dir / "final" / "config.json").read_text()) == described
    assert json.loads((result.run_dir / "model.json").read_text()) == described
    assert result.run_dir.name == "learn" and (result.run_dir / "config.yaml").read_text().startswith("model:")


def test_toy_task_sigkill_then_resume_is_bit_exact(tmp_path):
    full = spawn(toy_args(tmp_path, "--run_name", "full"), TOY_TASK)
    killed_argv = toy_args(tmp_path, "--run_name", "killed", "--ckpt_every", "3")
    kill_after_checkpoint(spawn(killed_argv, TOY_TASK), tmp_path / "killed", step=6)
    assert spawn([*killed_argv, "--resume", "auto"], TOY_TASK).wait() == 0
    assert full.wait() == 0
    assert_same(weights(tmp_path / "full"), weights(tmp_path / "killed"))
    assert_same(
        weights(tmp_path / "full", "model_ema.safetensors"), weights(tmp_path / "killed", "model_ema.safetensors")
    )
    assert (tmp_path / "killed" / RunDir.EVAL_LOG).read_text() == (tmp_path / "full" / RunDir.EVAL_LOG).read_text()


def test_toy_task_two_processes_match_one(tmp_path):
    common = toy_args(tmp_path, "--epochs", "1", "--max_steps", "5", "--ema.decay", "0", "--channels_last", "false")
    torchrun([*common, "--run_name", "ddp"], TOY_TASK)
    single = run(ToyTask(toy_config(tmp_path, run_name="single", epochs=1, max_steps=5, **{"ema.decay": 0},
                                    channels_last=False, **{"optim.accum_steps": 2})))  # fmt: skip
    # Parameters only: BatchNorm statistics see half-batches on either side, in another grouping.
    params = [n for n, _ in ToyTask(toy_config(tmp_path)).build_model().named_parameters()]
    ddp, one = weights(tmp_path / "ddp"), weights(single.run_dir)
    assert_same({k: ddp[k] for k in params}, {k: one[k] for k in params}, atol=1e-6)
    assert [r["step"] for r in read_csv(tmp_path / "ddp" / RunDir.EVAL_LOG)] == [5]


@pytest.mark.parametrize("schedule", ["cosine", "poly", "constant"])
def test_schedules_warm_up_then_decay(schedule):
    cfg = OptimConfig(lr=1.0, min_lr=0.1, warmup_lr=0.0, warmup_steps=10, schedule=schedule, poly_power=0.9)
    sched = Schedule(cfg, total_steps=100, steps_per_epoch=50)
    assert sched.warmup == pytest.approx(0.1) and sched.lr(5) == pytest.approx(0.5)
    assert sched.lr(10) == pytest.approx(1.0)
    end = {"cosine": 0.1, "poly": 0.1, "constant": 1.0}[schedule]
    assert sched.lr(100) == pytest.approx(end)
    mid = lr_at(0.55, 0.1, cfg)
    assert mid == pytest.approx({"cosine": 0.55, "poly": 0.1 + 0.9 * 0.5**0.9, "constant": 1.0}[schedule])


def test_step_schedule_is_mmdets_1x():
    """Warm-up, then lr x 0.1 at epochs 8 and 11 of 12 (10 steps an epoch), as mmdet's step policy."""
    cfg = OptimConfig(lr=2e-4, warmup_lr=2e-7, warmup_steps=5, schedule="step", step_epochs=(8, 11))
    sched = Schedule(cfg, total_steps=120, steps_per_epoch=10)
    assert sched.lr(0) == pytest.approx(2e-7) and sched.lr(5) == pytest.approx(2e-4)
    assert [sched.lr(s) for s in (79, 80, 109, 110, 119)] == pytest.approx([2e-4, 2e-5, 2e-5, 2e-6, 2e-6])
    from hybridvision.engine.config import check_optim

    with pytest.raises(ConfigError, match="step_epochs must rise"):
        check_optim(OptimConfig(schedule="step", step_epochs=(11, 8)))


def test_a_task_without_its_methods_says_which(tmp_path):
    from hybridvision.engine import Task

    class Half(Task):
        def build_model(self):
            return torch.nn.Identity()

    with pytest.raises(TypeError, match="batches.*evaluate.*loss.*train_size"):
        Half(toy_config(tmp_path))


def test_the_contributing_example_task_runs(tmp_path, monkeypatch):
    """The 30-line task in CONTRIBUTING.md is real: it trains through the engine and reports its metric."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text()
    code = text.split("## A task of the training engine", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace(
        "DenoiseConfig(epochs=3,", "DenoiseConfig(epochs=2, threads=1, progress=False, tensorboard=False,"
    )
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "CONTRIBUTING.md", "exec"), scope)
    summary = scope["result"].summary
    assert summary["metric"] == "mse" and summary["mse"] > 0 and summary["steps"] == 2 * (512 // 128)
    assert (tmp_path / "runs" / "000-tiny_denoiser" / "final" / "config.json").is_file()


def test_lr_mult_scales_the_named_parameters_lr(tmp_path):
    frozen = run(ToyTask(toy_config(tmp_path, run_name="frozen", epochs=1, **{"optim.lr_mult": {"conv1": 0.0}})))
    still = {"conv1": 0.0, "norm": 0.0, "conv2": 0.0}
    untrained = run(ToyTask(toy_config(tmp_path, run_name="still", epochs=1, **{"optim.lr_mult": still})))
    a, b = weights(frozen.run_dir), weights(untrained.run_dir)
    assert_same({k: a[k] for k in ("conv1.weight", "conv1.bias")}, {k: b[k] for k in ("conv1.weight", "conv1.bias")})
    assert not torch.equal(a["conv2.weight"], b["conv2.weight"])  # trained at the full lr
    assert all(r["lr"] > 0 for r in read_csv(frozen.run_dir / RunDir.TRAIN_LOG))  # the log keeps the schedule's lr


def test_lr_mult_names_a_typo_and_rejects_negative_multipliers(tmp_path):
    from hybridvision.engine.optim import param_groups

    with pytest.raises(ValueError, match=r"\['bakbone'\] match no parameter name; names start with"):
        param_groups(ToyTask(toy_config(tmp_path)).build_model(), 0.01, {"bakbone": 0.1})
    with pytest.raises(ValueError, match="multipliers >= 0"):
        OptimConfig(lr_mult={"backbone": -1.0})
    groups = param_groups(ToyTask(toy_config(tmp_path)).build_model(), 0.01, {"conv": 0.5, "conv2": 0.25})
    scales = {(g["lr_scale"], g["weight_decay"]): len(g["params"]) for g in groups}
    assert scales == {(0.5, 0.01): 1, (0.5, 0.0): 1, (0.25, 0.01): 1, (0.25, 0.0): 1, (1.0, 0.01): 0, (1.0, 0.0): 2}
