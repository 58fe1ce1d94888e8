"""No silent wrong result, no lost work, no traceback for a user's mistake: each case a user or a fault produced."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import torch
from run_helpers import assert_same, spawn, weights
from synthetic_data import write_fmnist_like, write_image_folder

from hybridvision.checkpoint import CheckpointError
from hybridvision.classify import TrainConfig, train
from hybridvision.classify.config import DataConfig
from hybridvision.classify.data import load_split
from hybridvision.cli.main import main
from hybridvision.config import ConfigError, parse_overrides, resolve
from hybridvision.data import DataError
from hybridvision.engine.checkpoint import checkpoint_dirs
from hybridvision.engine.logs import read_csv
from hybridvision.engine.rundir import RunDir


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_fmnist_like(tmp_path_factory.mktemp("fmnist"), train=256, test=64)


def argv(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        *("--model", "coatnet_test", "--data.root", str(data), "--out_dir", str(out), "--threads", "1"),
        *("--batch_size", "16", "--epochs", "2", "--eval_batch_size", "64", "--log_every", "4"),
        *("--budget_minutes", "0", "--eval_every", "1", "--amp", "off", "--progress", "false"),
        *("--tensorboard", "false"),
        *extra,
    ]


def config(data: Path, out: Path, *extra: str) -> TrainConfig:
    return resolve(TrainConfig, None, parse_overrides(argv(data, out, *extra)))


# ---- Wrong results and lost work


def folder_data(root: Path) -> Path:
    write_image_folder(root, per_class=4, classes=3)
    return root


def test_validation_folder_is_indexed_like_the_training_folder(tmp_path):
    root = folder_data(tmp_path / "img")
    shutil.rmtree(root / "val" / "class_0")  # a validation split without the first class
    cfg = DataConfig(dataset="folder", root=str(root), channels=3)
    train_split = load_split(cfg, "train", 16)
    val = load_split(cfg, "val", 16, classes=train_split.classes)
    labels = torch.cat([b[1] for b in val.batches([list(range(len(val)))])])
    assert sorted(set(labels.tolist())) == [1, 2] and val.num_classes == 3  # class_1 is still class 1
    (root / "val" / "class_9").mkdir()
    with pytest.raises(DataError, match=r"class folder\(s\) \['class_9'\] that the training split does not have"):
        load_split(cfg, "val", 16, classes=train_split.classes)


def test_run_saves_its_class_list_and_refuses_an_unknown_validation_class(tmp_path):
    root = folder_data(tmp_path / "img")
    extra = ("--data.dataset", "folder", "--data.channels", "3", "--data.train_split", "train", "--max_steps", "1")
    extra += ("--data.eval_split", "val", "--data.mean", "0.5,0.5,0.5", "--data.std", "0.5,0.5,0.5")
    extra += ("--batch_size", "4", "--ema.decay", "0")
    run = train(config(root, tmp_path / "runs", *extra, "--run_name", "ok")).run_dir
    classes = ["class_0", "class_1", "class_2"]
    assert json.loads((run / "final" / "config.json").read_text())["classes"] == classes
    assert json.loads((run / "summary.json").read_text())["classes"] == classes
    (root / "val" / "extra").mkdir()
    with pytest.raises(DataError, match="'extra'"):
        train(config(root, tmp_path / "runs", *extra, "--run_name", "bad"))
    assert not (tmp_path / "runs" / "bad" / RunDir.TRAIN_LOG).exists()  # failed before any training


def test_each_checkpoint_step_is_written_once_and_after_its_evaluation(data, tmp_path, monkeypatch):
    from hybridvision.engine import checkpoint as ckpt

    written: list[tuple[str, list[int]]] = []
    original = ckpt._write_state

    def write(tmp: Path, ts) -> None:
        logged = [int(float(r["step"])) for r in read_csv(tmp_path / "once" / RunDir.EVAL_LOG)]
        written.append((tmp.name, logged))
        original(tmp, ts)

    monkeypatch.setattr(ckpt, "_write_state", write)
    # 256 images / 16 = 16 steps an epoch: a checkpoint every 8 steps falls on each epoch's end
    train(config(data, tmp_path, "--run_name", "once", "--ckpt_every", "8", "--keep_ckpts", "1"))
    assert [name for name, _ in written] == [f".tmp-step_{s:08d}" for s in (8, 16, 24, 32)]
    # an epoch's checkpoint comes after its evaluation row: a kill between them redoes both, losing neither
    assert [logged for _, logged in written] == [[], [16], [16], [16, 32]]
    assert [d.name for d in checkpoint_dirs(tmp_path / "once")] == ["step_00000032"]


def test_resume_auto_names_unusable_checkpoints_instead_of_restarting(data, tmp_path):
    run = train(config(data, tmp_path, "--run_name", "r", "--epochs", "1", "--keep_ckpts", "1")).run_dir
    (only,) = checkpoint_dirs(run)
    path = only / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"none is usable \(step_00000016: model.safetensors has 100 bytes"):
        train(config(data, tmp_path, "--run_name", "r", "--epochs", "1", "--resume", "auto"))


def wait_for_row(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (path.is_file() and len(path.read_text().splitlines()) > 1):
        time.sleep(0.01)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_in_the_first_epoch_checkpoints_and_resumes_exactly(data, tmp_path, sig, code):
    small = ("--batch_size", "4")  # 64 steps an epoch
    full = spawn(argv(data, tmp_path, "--run_name", "full", *small))
    stopped_argv = argv(data, tmp_path, "--run_name", "stopped", *small)
    proc = spawn(stopped_argv, stderr=subprocess.PIPE, text=True)
    wait_for_row(tmp_path / "stopped" / RunDir.TRAIN_LOG)  # the first log row: step 4 of 64 in epoch 1
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and f"--resume {tmp_path / 'stopped'}" in err
    (ckpt,) = checkpoint_dirs(tmp_path / "stopped")
    assert 4 <= int(ckpt.name[5:]) < 64  # mid-first-epoch
    assert spawn([*stopped_argv, "--resume", "auto"]).wait() == 0
    assert full.wait() == 0
    assert_same(weights(tmp_path / "full"), weights(tmp_path / "stopped"))
    assert (tmp_path / "stopped" / RunDir.EVAL_LOG).read_text() == (tmp_path / "full" / RunDir.EVAL_LOG).read_text()


def test_kill_while_writing_final_and_resuming_a_finished_run(data, tmp_path):
    run = train(config(data, tmp_path, "--run_name", "f")).run_dir
    evals = (run / RunDir.EVAL_LOG).read_text()
    summary = (run / "summary.json").read_text()
    # A finished run resumed: nothing is trained, evaluated, logged or rewritten.
    again = train(config(data, tmp_path, "--run_name", "f", "--resume", "auto"))
    assert (run / "summary.json").read_text() == summary and again.summary == json.loads(summary)
    # Killed while writing final/: a half-written hidden copy, no summary yet.
    (run / "summary.json").unlink()
    shutil.rmtree(run / "final")
    (run / ".tmp-final").mkdir()
    (run / ".tmp-final" / "model.safetensors").write_bytes(b"half")
    resumed = train(config(data, tmp_path, "--run_name", "f", "--resume", "auto"))
    assert (run / RunDir.EVAL_LOG).read_text() == evals  # no duplicated row
    assert not (run / ".tmp-final").exists() and (run / "final" / "model.safetensors").stat().st_size > 1000
    assert resumed.summary["top1"] == json.loads(summary)["top1"]
    checkpointed = json.loads((checkpoint_dirs(run)[0] / "state.json").read_text())["wall_s"]
    assert resumed.summary["wall_s"] > checkpointed > 0  # the earlier process's time is kept


def test_saved_files_follow_the_umask(data, tmp_path):
    import hybridvision as hv

    old = os.umask(0o022)
    try:
        run = train(config(data, tmp_path, "--run_name", "m", "--max_steps", "2", "--epochs", "1")).run_dir
        saved = hv.save_pretrained(hv.create_model("coatnet_test"), tmp_path / "pretrained")
    finally:
        os.umask(old)
    files = [*run.rglob("*.safetensors"), *run.rglob("*.json"), run / "config.yaml", *saved.iterdir()]
    modes = {str(f.relative_to(tmp_path)): stat.S_IMODE(f.stat().st_mode) for f in files}
    assert set(modes.values()) == {0o644}, modes


# ---- Clear errors instead of tracebacks


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--data.train_subset", "-5"), "data.train_subset must be >= 0"),
        (("--log_every", "0"), "log_every must be >= 1"),
        (("--eval_every", "0"), "eval_every must be >= 1"),
        (("--ckpt_every", "-1"), "ckpt_every must be >= 0"),
        (("--ema.every", "0"), "ema.every must be >= 1"),
        (("--ema.decay", "1.5"), r"ema.decay must be in \[0, 1\)"),
        (("--batch_size", "0"), "batch_size must be >= 1"),
        (("--eval_batch_size", "0"), "eval_batch_size must be >= 1"),
        (("--aug.hflip", "2"), r"aug.hflip must be in \[0, 1\]"),
        (("--aug.erase_prob", "-0.1"), r"aug.erase_prob must be in \[0, 1\]"),
        (("--aug.label_smoothing", "1"), r"aug.label_smoothing must be in \[0, 1\)"),
        (("--threads", "-2"), "threads must be >= 0"),
        (("--device", "gpu"), "device must be auto, cpu, cuda or cuda:N"),
        (("--data.channels", "0"), "data.channels must be >= 1"),
        (("--optim.lr", "0"), "optim.lr must be > 0"),
        (("--optim.schedule", "linear"), "optim.schedule must be one of cosine, poly, constant, step"),
    ],
)
def test_bad_numbers_fail_when_the_config_is_built(flags, message, capsys):
    assert main(["train", *flags, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_model_typo_in_a_dry_run_is_an_error_with_the_suggestion(capsys):
    assert main(["train", "--model", "ascan_nan", "--dry-run"]) == 2
    assert "unknown model 'ascan_nan'. Did you mean 'ascan_nano'" in capsys.readouterr().err


def test_eval_weights_choice_is_checked(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--weights", "foo"]) == 2
    assert "weights must be one of model, ema, both, got 'foo'" in capsys.readouterr().err


def test_resume_with_other_settings_names_the_keys(data, tmp_path):
    train(config(data, tmp_path, "--run_name", "s", "--max_steps", "2", "--epochs", "1"))
    changed = ("--batch_size", "32", "--data.train_subset", "128", "--model", "ascan_test")
    with pytest.raises(ConfigError) as err:
        train(config(data, tmp_path, "--run_name", "s", "--epochs", "1", "--resume", "auto", *changed))
    text = str(err.value)
    for key in ("batch_size: 16 -> 32", "data.train_subset: 0 -> 128", "model: 'coatnet_test' -> 'ascan_test'"):
        assert key in text
    # what a resume may change (how it runs, how long, how often it logs) is accepted
    ok = ("--max_steps", "4", "--threads", "1", "--log_every", "2")
    assert (
        train(config(data, tmp_path, "--run_name", "s", "--epochs", "1", "--resume", "auto", *ok)).summary["steps"] == 4
    )


def test_os_errors_are_one_line(data, tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert main(["train", *argv(data, not_a_dir, "--max_steps", "1")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Not a directory" in err and "Traceback" not in err


def test_bench_output_that_cannot_be_written_fails_before_measuring(tmp_path, capsys, monkeypatch):
    def measured(*args, **kwargs):
        raise AssertionError("the benchmark ran although its result could not be written")

    monkeypatch.setattr("hybridvision.cli.bench.run_bench", measured)
    assert main(["bench", "coatnet_test", "--quick", "--csv", str(tmp_path)]) == 2
    assert f"--csv {tmp_path} is a directory" in capsys.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["bench", "coatnet_test", "--quick", "--json", str(blocked / "r.json")]) == 2
    assert "cannot be created" in capsys.readouterr().err


def test_unreadable_files_and_bombs_are_skipped_and_counted_once(tmp_path, monkeypatch):
    from PIL import Image

    root = folder_data(tmp_path / "img")
    for i in range(4):  # every image of class_0 is unreadable: whole micro-batches of nothing
        (root / "train" / "class_0" / f"img_{i}{'.png' if i % 2 else '.jpg'}").write_bytes(b"junk")
    (root / "val" / "class_1" / "img_0.jpg").write_bytes(b"junk")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # the 20x24 images are now decompression bombs ...
    Image.new("L", (10, 10)).save(root / "train" / "class_2" / "small.png")  # ... except this one
    extra = ("--data.dataset", "folder", "--data.channels", "1", "--data.eval_split", "val", "--batch_size", "2")
    extra += ("--epochs", "2", "--aug.mixup_alpha", "0", "--ema.decay", "0", "--data.workers", "0")
    with pytest.warns(UserWarning):
        result = train(config(root, tmp_path / "runs", *extra, "--run_name", "u"))
    # 12 training files + 12 evaluation files, of which one (small.png) is readable: each counted once
    assert result.summary["skipped_images"] == 12 + 12
    assert result.summary["steps"] == 2 * (13 // 2)


def test_random_bytes_are_not_a_checkpoint_and_a_corrupt_only_checkpoint_is_named(data, tmp_path, capsys):
    import hybridvision as hv

    junk = tmp_path / "weights.pth"
    junk.write_bytes(os.urandom(512))
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint, or a corrupt or truncated one"):
        hv.create_model("coatnet_test", pretrained=junk)
    run = train(config(data, tmp_path, "--run_name", "c", "--max_steps", "2", "--epochs", "1", "--keep_ckpts", "1"))
    shutil.rmtree(run.run_dir / "final")
    (only,) = checkpoint_dirs(run.run_dir)
    (only / "model.safetensors").write_bytes(b"x" * 10)
    assert main(["eval", str(run.run_dir)]) == 2
    err = capsys.readouterr().err
    assert "checkpoints are unusable" in err and "step_00000002: model.safetensors has 10 bytes" in err
