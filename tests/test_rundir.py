"""A run folder has one owner (``engine.rundir``): no run is trained over, no name leaves --out_dir, every run
records its model before its first step, and a run stopped by SIGTERM after its first checkpoint is evaluated,
predicted from or sampled from in a fresh interpreter that never imports the training code of its task."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import test_diffusion_text_train
import test_diffusion_train
import test_diffusion_unet
import test_seg_train
import yaml
from run_helpers import HYBRIDVISION_TRAIN, spawn
from synthetic_data import write_fmnist_like, write_image_folder
from test_diffusion_text import t5_dir  # noqa: F401  (the tiny T5 encoder fixture)
from test_engine import toy_config
from toy_task import ToyTask

from hybridvision.cli.main import main
from hybridvision.config import ConfigError
from hybridvision.engine import run
from hybridvision.engine.checkpoint import checkpoint_dirs
from hybridvision.engine.rundir import RunDir

dm = test_diffusion_unet.dm  # the shared fixture: hybridvision.diffusion, registered for this module
data, classifier = test_diffusion_train.data, test_diffusion_train.classifier  # diffusion's data and judge

# Training code: none of it may be imported to read a run (the engine's loop and the tasks' training modules).
TRAINING = (
    *("hybridvision.engine.session", "hybridvision.engine.loop", "hybridvision.engine.optim"),
    *("hybridvision.engine.ema", "hybridvision.engine.schedule", "hybridvision.engine.task"),
    *("hybridvision.classify.task", "hybridvision.classify.augment", "hybridvision.classify.randaugment"),
    *("hybridvision.seg.task", "hybridvision.seg.augment", "hybridvision.seg.geometry"),
    *("hybridvision.diffusion.task", "hybridvision.diffusion.text_task", "hybridvision.diffusion.training"),
    *("hybridvision.diffusion.carry_over", "hybridvision.det.task"),
)
# A fresh interpreter: run each command, then report the exit codes and the training modules it imported.
READER = """
import json, sys
from hybridvision.cli.main import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "training": sorted(set(json.loads(sys.argv[2])) & set(sys.modules))}))
"""
# Long runs that evaluate only at their end: SIGTERM stops them after their first checkpoint.
UNTIL_STOPPED = ("--epochs", "1000", "--eval_every", "1000", "--ckpt_every", "1", "--budget_minutes", "0")


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def stop_after_first_checkpoint(argv: list[str], entry: tuple[str, ...], folder: Path) -> Path:
    """Start a training process, SIGTERM it once its first checkpoint exists; it checkpoints again and exits 143."""
    proc = spawn(argv, entry, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not checkpoint_dirs(folder) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert RunDir(folder).model_file.is_file() and not RunDir(folder).final.exists()
    return folder


def read_in_fresh_interpreter(*commands: list[str]) -> None:
    """Each ``hybridvision`` command succeeds in one new interpreter that imports no training module."""
    proc = spawn([json.dumps(commands), json.dumps(TRAINING)], ("-c", READER), stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report == {"codes": [0] * len(commands), "training": []}, report


def one_line_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()  # what earlier commands wrote
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ---- The folder's rules, on the engine's toy task


def test_a_finished_run_is_never_trained_over(tmp_path):
    folder = run(ToyTask(toy_config(tmp_path, run_name="r", epochs=1))).run_dir
    before = checksums(folder)
    with pytest.raises(FileExistsError, match=r"already holds a finished run; nothing was written\. Choose another"):
        run(ToyTask(toy_config(tmp_path, run_name="r", epochs=1, seed=1)))
    assert checksums(folder) == before


def test_an_unfinished_run_needs_resume_and_a_folder_without_a_step_is_reused(tmp_path, caplog):
    folder = run(ToyTask(toy_config(tmp_path, run_name="r", epochs=2))).run_dir
    shutil.rmtree(folder / "final")
    (folder / "summary.json").unlink()  # as if killed after its last checkpoint
    before = checksums(folder)
    with pytest.raises(FileExistsError, match=f"already holds an unfinished run.*--resume {folder}"):
        run(ToyTask(toy_config(tmp_path, run_name="r", epochs=2)))
    assert checksums(folder) == before
    assert run(ToyTask(toy_config(tmp_path, run_name="r", epochs=2, resume="auto"))).summary["steps"] == 24
    # A run that stopped before its first step left its config and description: the folder is reused, saying so.
    fresh = RunDir(tmp_path / "new")
    fresh.write_config(toy_config(tmp_path, run_name="new"))
    fresh.write_model({"toy": True})
    with caplog.at_level(logging.WARNING):
        assert run(ToyTask(toy_config(tmp_path, run_name="new", epochs=1))).summary["steps"] == 12
    assert "never completed a training step; starting it again" in caplog.text
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a run")
    with pytest.raises(FileExistsError, match="already holds files that are not a run"):
        run(ToyTask(toy_config(tmp_path, run_name="mine", epochs=1)))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "not a run"


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/tmp/hv-abs-run"])
def test_a_run_name_never_leaves_out_dir(tmp_path, name):
    with pytest.raises(ConfigError, match="would put the run outside --out_dir"):
        run(ToyTask(toy_config(tmp_path / "runs", run_name=name, epochs=1)))
    assert not (tmp_path / "x").exists() and not Path("/tmp/hv-abs-run").exists()
    assert RunDir.named(tmp_path, "a/b").path == tmp_path / "a" / "b"  # a folder inside out_dir is fine


# ---- The same rules through `hybridvision train`: one line each


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory) -> Path:
    return write_fmnist_like(tmp_path_factory.mktemp("fmnist"), train=256, test=64)


def train_argv(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        *("--model", "coatnet_test", "--data.root", str(root), "--out_dir", str(out), "--threads", "1"),
        *("--batch_size", "16", "--epochs", "1", "--max_steps", "2", "--eval_batch_size", "64", "--amp", "off"),
        *("--budget_minutes", "0", "--progress", "false", "--tensorboard", "false", "--data.eval_subset", "32"),
        *extra,
    ]


def test_cli_refuses_a_used_run_name_and_an_escaping_one(fmnist, tmp_path, capsys):
    assert main(["train", *train_argv(fmnist, tmp_path, "--run_name", "r")]) == 0
    before = checksums(tmp_path / "r")
    err = one_line_error(capsys, ["train", *train_argv(fmnist, tmp_path, "--run_name", "r", "--optim.lr", "1e-4")])
    assert f"{tmp_path / 'r'} already holds a finished run" in err
    assert checksums(tmp_path / "r") == before
    err = one_line_error(capsys, ["train", *train_argv(fmnist, tmp_path / "runs", "--run_name", "../../x")])
    assert "--run_name '../../x' would put the run outside --out_dir" in err
    assert not (tmp_path.parent / "x").exists()


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path, capsys):
    """The data's classes changed under a run: its checkpoints are of another model, and --resume says so."""
    root = write_image_folder(tmp_path / "img", per_class=4, classes=3)
    extra = ("--data.dataset", "folder", "--data.channels", "3", "--data.train_split", "train", "--batch_size", "4")
    extra += ("--data.eval_split", "val", "--data.mean", "0.5,0.5,0.5", "--data.std", "0.5,0.5,0.5")
    argv = train_argv(root, tmp_path, *extra, "--run_name", "r", "--data.eval_subset", "0", "--max_steps", "6")
    assert main(["train", *argv, "--max_steps", "1"]) == 0  # stopped early: resumable
    write_image_folder(tmp_path / "more", per_class=4, classes=4)
    for split in ("train", "val"):
        shutil.copytree(tmp_path / "more" / split / "class_3", root / split / "class_3")
    before = checksums(tmp_path / "r")
    err = one_line_error(capsys, ["train", *argv, "--resume", "auto"])
    assert (
        "holds another model than this config builds" in err and "classes: ['class_0', 'class_1', 'class_2'] ->" in err
    )
    assert checksums(tmp_path / "r") == before


# ---- Reading a stopped run without the training code, task by task


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def classification_run(fmnist, runs) -> Path:
    argv = train_argv(fmnist, runs, "--run_name", "classify", "--max_steps", "0", *UNTIL_STOPPED)
    return stop_after_first_checkpoint(argv, HYBRIDVISION_TRAIN, runs / "classify")


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory, runs) -> Path:
    flags = test_seg_train.tiny_flags(tmp_path_factory.mktemp("scenes"), runs)
    flags |= {"model": "ascan_test", "run_name": "segment", "epochs": "1000", "eval_every": "1000", "ckpt_every": "1"}
    argv = [t for k, v in flags.items() for t in (f"--{k}", v)]
    return stop_after_first_checkpoint(argv, ("-m", "hybridvision", "seg", "train"), runs / "segment")


@pytest.fixture(scope="module")
def diffusion_run(dm, data, classifier, runs) -> Path:
    argv = test_diffusion_train.args(data, runs, classifier, "--run_name", "denoise", "--eval_samples", "0")
    return stop_after_first_checkpoint(
        [*argv, *UNTIL_STOPPED], ("-m", "hybridvision", "diffusion", "train"), runs / "denoise"
    )


@pytest.fixture(scope="module")
def text_diffusion_run(dm, data, classifier, t5_dir, runs) -> Path:  # noqa: F811
    argv = test_diffusion_text_train.text_args(
        data, runs, classifier, t5_dir, "--run_name", "t2i", "--eval_samples", "0"
    )
    return stop_after_first_checkpoint(
        [*argv, *UNTIL_STOPPED], ("-m", "hybridvision", "diffusion", "train"), runs / "t2i"
    )


def sampling(out: Path) -> list[str]:
    """`hybridvision generate` flags: one quick sample per row, written to ``out``."""
    return ["--n", "1", "--steps", "2", "--sampler", "euler", "--out", str(out)]


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory, runs) -> Path:
    """Mask R-CNN on a test backbone over the tiny COCO folder of tests/test_det.py (three images)."""
    if not all(importlib.util.find_spec(m) for m in ("torchvision", "pycocotools")):
        pytest.skip("the det extra (torchvision, pycocotools) is not installed")
    from test_det import make_coco

    root = make_coco(tmp_path_factory.mktemp("coco"))
    argv = [
        *("--model", "ascan_test", "--data.dataset", "coco", "--data.root", str(root), "--data.channels", "3"),
        *("--data.mean", "0.5,0.5,0.5", "--data.std", "0.25,0.25,0.25", "--batch_size", "2", "--amp", "off"),
        *("--detector.fpn_channels", "16", "--detector.rpn_top_n", "50,20", "--detector.box_samples", "16"),
        *("--out_dir", str(runs), "--run_name", "detect", "--progress", "false", "--tensorboard", "false"),
        *("--threads", "1", *UNTIL_STOPPED),
    ]
    return stop_after_first_checkpoint(argv, ("-m", "hybridvision", "det", "train"), runs / "detect")


def test_classification_evaluates_a_stopped_run_without_training_code(classification_run):
    info = json.loads(RunDir(classification_run).model_file.read_text())
    assert info["task"] == "classification" and info["model"] == "coatnet_test" and info["in_chans"] == 1
    assert len(info["classes"]) == 10
    read_in_fresh_interpreter(["eval", str(classification_run), "--data.eval_subset", "32"])
    assert json.loads((classification_run / "eval.json").read_text())["results"]["model"]["top1"] >= 0


def test_segmentation_evaluates_and_predicts_a_stopped_run_without_training_code(segmentation_run, tmp_path):
    info = json.loads(RunDir(segmentation_run).model_file.read_text())
    assert info["task"] == "segmentation" and info["model"] == "upernet_ascan_test" and len(info["classes"]) == 11
    out = tmp_path / "overlays"
    read_in_fresh_interpreter(
        ["seg", "eval", str(segmentation_run)],
        ["seg", "predict", "--scenes", "1", "--run", str(segmentation_run), "--out", str(out)],
    )
    assert [p.name for p in out.iterdir()] == ["scene_000.png"]


def test_detection_evaluates_and_predicts_a_stopped_run_without_training_code(detection_run, tmp_path):
    info = json.loads(RunDir(detection_run).model_file.read_text())
    assert info["task"] == "detection" and info["model"] == "maskrcnn_ascan_test" and info["in_chans"] == 3
    assert info["classes"] == ["background", "three", "seven"] and info["category_ids"] == [3, 7]
    model = info["overrides"]  # all inference needs: backbone, sizes, anchors, normalisation
    assert model["backbone"] == "ascan_test" and model["detector"]["fpn_channels"] == 16 and model["mean"] == [0.5] * 3
    out, image = tmp_path / "overlays", Path(RunDir(detection_run).config_dict()["data"]["root"], "val2017", "rgb.png")
    read_in_fresh_interpreter(
        ["det", "eval", str(detection_run), "--batch_size", "2"],
        ["det", "predict", str(image), "--run", str(detection_run), "--out", str(out)],
    )
    scores = json.loads((detection_run / "det_eval_val2017.json").read_text())["results"]["model"]
    assert 0 <= scores["box"]["ap"] <= 100 and set(scores["mask"]["per_class"]) == {"three", "seven"}
    assert [p.name for p in out.iterdir()] == ["rgb_det.png"]


def test_class_diffusion_evaluates_and_generates_from_a_stopped_run_without_training_code(
    diffusion_run, data, classifier, tmp_path
):
    info = json.loads(RunDir(diffusion_run).model_file.read_text())
    assert info["task"] == "diffusion" and info["in_chans"] == 1 and info["noise"]["beta_end"] == 0.02
    read_in_fresh_interpreter(diffusion_eval(diffusion_run, data, classifier, tmp_path / "eval.json"))
    assert json.loads((tmp_path / "eval.json").read_text())["n"] == 20
    read_in_fresh_interpreter(["generate", str(diffusion_run), *sampling(tmp_path / "g.png")])
    assert (tmp_path / "g.png").is_file()


def diffusion_eval(run: Path, data: Path, classifier: Path, out: Path) -> list[str]:
    """A quick `hybridvision diffusion eval` of ``run``: 20 samples in 2 DDIM steps, no grid, the JSON at ``out``."""
    evaluate = ["diffusion", "eval", str(run), "--n", "20", "--classifier", str(classifier)]
    evaluate += ["--data.root", str(data), "--sample.steps", "2", "--sample.sampler", "ddim", "--grid_per_class", "0"]
    return [*evaluate, "--batch_size", "20", "--threads", "1", "--out", str(out)]


def test_text_diffusion_samples_a_stopped_run_without_training_code(text_diffusion_run, t5_dir, tmp_path):  # noqa: F811
    text = json.loads(RunDir(text_diffusion_run).model_file.read_text())["text"]
    assert text["encoder"] == str(t5_dir) and text["dim"] == 16  # the encoder and its width, for inference
    out = tmp_path / "g.png"
    read_in_fresh_interpreter(["generate", str(text_diffusion_run), "--prompt", "a photo of a bag", *sampling(out)])
    assert out.is_file()


# ---- A run of another task, and runs from before model.json


def test_a_run_of_another_task_is_named_as_such(classification_run, segmentation_run, diffusion_run, tmp_path, capsys):
    seg, cls, gen = str(segmentation_run), str(classification_run), str(diffusion_run)
    for argv, message in [
        (["seg", "eval", gen], f"{gen} is a diffusion run, not a segmentation run"),
        (
            ["seg", "predict", "--scenes", "1", "--run", cls, "--out", str(tmp_path)],
            f"{cls} is a classification run, not a segmentation run",
        ),
        (["eval", seg], f"{seg} is a segmentation run, not a classification run"),
        (["generate", seg, "--out", str(tmp_path / "g.png")], f"{seg} is a segmentation run, not a diffusion run"),
        (["diffusion", "eval", cls], f"{cls} is a classification run, not a diffusion run"),
    ]:
        assert one_line_error(capsys, argv) == f"error: {message}\n", argv
    assert not (tmp_path / "g.png").exists()


def test_a_detection_run_and_another_task_s_are_told_apart(detection_run, segmentation_run, tmp_path, capsys):
    from PIL import Image

    det, seg, image = str(detection_run), str(segmentation_run), tmp_path / "photo.png"
    Image.new("RGB", (32, 32)).save(image)
    for argv, message in [
        (["det", "eval", seg], f"{seg} is a segmentation run, not a detection run"),
        (["det", "predict", str(image), "--run", seg], f"{seg} is a segmentation run, not a detection run"),
        (["seg", "eval", det], f"{det} is a detection run, not a segmentation run"),
    ]:
        assert one_line_error(capsys, argv) == f"error: {message}\n", argv


def old_copy(folder: Path, dest: Path) -> Path:
    """A copy of an unfinished run as older versions left it: no model.json."""
    shutil.copytree(folder, dest)
    (dest / RunDir.MODEL).unlink()
    return dest


def test_runs_from_before_model_json_still_load(classification_run, segmentation_run, tmp_path):
    assert main(["eval", str(old_copy(classification_run, tmp_path / "cls")), "--data.eval_subset", "32"]) == 0
    assert main(["seg", "eval", str(old_copy(segmentation_run, tmp_path / "seg"))]) == 0  # from config.yaml


def test_diffusion_runs_from_before_model_json_are_rebuilt_from_config_and_weight_shapes(
    diffusion_run, text_diffusion_run, data, classifier, tmp_path, capsys
):
    from hybridvision.diffusion.old_runs import describe_old_run

    gen, t2i = old_copy(diffusion_run, tmp_path / "gen"), old_copy(text_diffusion_run, tmp_path / "t2i")
    for old, new in ((gen, diffusion_run), (t2i, text_diffusion_run)):  # the description the run wrote, exactly
        rebuilt = json.loads(json.dumps(describe_old_run(RunDir(old))))
        assert rebuilt == json.loads(RunDir(new).model_file.read_text()), old
    read_in_fresh_interpreter(
        ["generate", str(gen), *sampling(tmp_path / "g.png")],
        ["generate", str(t2i), "--prompt", "a photo of a bag", *sampling(tmp_path / "t.png")],
        diffusion_eval(gen, data, classifier, tmp_path / "eval.json"),
    )
    assert (tmp_path / "g.png").is_file() and (tmp_path / "t.png").is_file()
    assert json.loads((tmp_path / "eval.json").read_text())["n"] == 20
    # A latent run's pixel channels are in neither its config nor its weights: it is resumed once.
    config = RunDir(gen).config_dict()
    (gen / RunDir.CONFIG).write_text(yaml.safe_dump(config | {"latent": {**config["latent"], "vae": "/no/vae"}}))
    err = one_line_error(capsys, ["generate", str(gen), "--out", str(tmp_path / "l.png")])
    assert "no model.json and no final weights" in err and f"--resume {gen}" in err


def test_a_finished_run_from_before_model_json_loads_and_is_told_by_its_weights_description(fmnist, tmp_path, capsys):
    assert main(["train", *train_argv(fmnist, tmp_path, "--run_name", "old")]) == 0
    folder = RunDir(tmp_path / "old")
    folder.model_file.unlink()
    info = json.loads((folder.final / "config.json").read_text())
    del info["task"], info["in_chans"]  # final/config.json as older versions wrote it
    (folder.final / "config.json").write_text(json.dumps(info))
    assert main(["eval", str(folder), "--data.eval_subset", "32"]) == 0
    assert one_line_error(capsys, ["seg", "eval", str(folder)]) == (
        f"error: {folder} is a classification run, not a segmentation run\n"
    )
