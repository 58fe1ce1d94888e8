"""Segmentation training through the shared engine: every family's test variant learns; CLI train / eval / predict;
the committed recipes parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from synthetic_data import write_fmnist_like

import hybridvision as hv
from hybridvision.cli.main import main
from hybridvision.config import resolve
from hybridvision.engine.logs import read_csv
from hybridvision.engine.rundir import RunDir
from hybridvision.seg import SegTrainConfig, train

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "seg"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


def tiny_flags(root: Path, out: Path) -> dict[str, str]:
    """Scenes from a synthetic Fashion-MNIST, one 8-image batch per epoch, no random resize: a loss that can fall."""
    return {
        "out_dir": str(out), "run_name": "run", "budget_minutes": "0", "epochs": "12", "batch_size": "8",
        "eval_batch_size": "8", "eval_every": "12", "log_every": "1", "img_size": "32", "progress": "false",
        "tensorboard": "false", "threads": "1", "optim.schedule": "constant", "optim.warmup_steps": "1",
        "optim.lr": "1e-2", "ema.decay": "0.5",
        "head.channels": "16", "head.aux_channels": "8", "head.pool_scales": "1,2",
        "data.root": str(write_fmnist_like(root)), "data.train_subset": "8", "data.eval_subset": "8",
        "data.scenes.canvas": "48", "data.scenes.scale": "0.8,1.5", "data.scenes.threshold": "100",
        "data.scenes.holdout": "64",
        "aug.ratio": "1,1", "aug.hflip": "0", "aug.photometric": "false", "aug.cat_max_ratio": "1",
    }  # fmt: skip


@pytest.mark.parametrize("backbone", hv.list_models(test=True, task="classification"))
def test_every_family_trains_and_its_loss_falls(tmp_path, backbone):
    cfg = resolve(SegTrainConfig, None, {**tiny_flags(tmp_path / "data", tmp_path), "model": backbone})
    result = train(cfg)
    losses = [row["loss"] for row in read_csv(result.run_dir / RunDir.TRAIN_LOG)]
    assert len(losses) == 12 and max(losses[-3:]) < 0.8 * losses[0], losses
    s = result.summary
    assert s["metric"] == "miou" and "ema_miou" in s and s["segmentor"] == f"upernet_{backbone}"
    assert s["miou"] == pytest.approx(direct_miou(result.run_dir), abs=5e-5)  # the summary keeps 4 decimals
    assert result.run_dir.name == "run" and (result.run_dir / "final" / "model_ema.safetensors").is_file()


def test_cli_train_eval_predict(tmp_path, capsys):
    flags = tiny_flags(tmp_path / "data", tmp_path) | {"model": "ascan_test", "epochs": "2", "eval_every": "2"}
    assert main(["seg", "train", *(t for k, v in flags.items() for t in (f"--{k}", v))]) == 0
    run = tmp_path / "run"
    assert "mIoU" in capsys.readouterr().out
    assert main(["seg", "eval", str(run), "--weights", "ema", "--infer.flip", "true"]) == 0
    saved = json.loads((run / "seg_eval.json").read_text())
    assert saved["infer"]["flip"] is True and saved["environment"]["torch"]  # how and where the numbers were made
    report = saved["results"]["ema"]
    assert set(report["iou"]) == set(json.loads((run / "final" / "config.json").read_text())["classes"])
    assert "IoU per class" in capsys.readouterr().out
    assert main(["seg", "predict", "--scenes", "2", "--run", str(run), "--out", str(tmp_path / "scenes")]) == 0
    assert sorted(p.name for p in (tmp_path / "scenes").iterdir()) == ["scene_000.png", "scene_001.png"]
    from PIL import Image

    Image.new("L", (40, 56), 200).save(tmp_path / "photo.png")
    assert main(["seg", "predict", str(tmp_path / "photo.png"), "--run", str(run), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "photo_seg.png").is_file()  # 40x56 is not a multiple of 32: padded, then cut back


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["seg", "predict", "x.png"]) == 2
    assert "needs --run RUN" in capsys.readouterr().err
    assert main(["seg", "train", "--model", "ascan_tset", "--dry-run"]) == 2
    assert "ascan_test" in capsys.readouterr().err  # the closest names
    assert main(["seg", "train", "--head.feature_levels", "3,1", "--dry-run"]) == 2
    assert "must rise strictly" in capsys.readouterr().err


def test_defaults_are_the_fashion_mnist_recipe(capsys):
    assert main(["seg", "train", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "model: ascan_nano" in out and "dataset: fmnist_scenes" in out and "budget_minutes: 30.0" in out
    recipe = resolve(SegTrainConfig, str(CONFIG_DIR / "fmnist_scenes_ascan_nano_30min.yaml"))
    assert recipe == SegTrainConfig(), "the default config and the committed recipe drifted apart"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_committed_recipes_parse(path):
    cfg = resolve(SegTrainConfig, str(path))
    if cfg.data.dataset == "ade20k" and cfg.head.kind == "fpn":  # EfficientMod's Semantic FPN recipe
        assert (cfg.img_size, cfg.batch_size, cfg.max_steps, cfg.optim.warmup_steps) == (512, 32, 40000, 1000)
        assert (cfg.optim.lr, cfg.optim.warmup_lr, cfg.optim.weight_decay) == (2e-4, 2e-5, 1e-4)
        assert cfg.optim.schedule == "cosine" and cfg.optim.min_lr == pytest.approx(2e-4 * 1e-6)
        assert (cfg.head.neck_channels, cfg.head.fpn_channels, cfg.head.aux_channels) == (256, 128, 0)
    elif cfg.data.dataset == "ade20k":  # the AsCAN paper's UperNet recipe
        assert (cfg.img_size, cfg.batch_size, cfg.max_steps, cfg.optim.warmup_steps) == (512, 16, 160000, 1500)
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.schedule) == (1e-4, 0.01, "poly")
        assert cfg.head.feature_levels == (2, 3, 4) and cfg.aug.scale == (2048, 512)
    else:
        assert cfg.budget_minutes == 30 and cfg.model.endswith("_nano")
    assert not cfg.init_from or (CONFIG_DIR.parents[1] / cfg.init_from).exists(), "the recipe starts from a missing run"


def test_train_speed_profile_splits_a_step_by_operator_kind():
    import importlib.util

    import torch

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "seg_train_speed.py"
    spec = importlib.util.spec_from_file_location("seg_train_speed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.op_kind("aten::convolution_backward") == "convolution"
    assert bench.op_kind("aten::bmm").startswith("attention")
    assert bench.op_kind("aten::native_batch_norm") == "batch norm" and bench.op_kind("aten::frobnicate") == "other"
    conv, x = torch.nn.Conv2d(3, 8, 3), torch.randn(2, 3, 16, 16)

    def step() -> None:
        conv(x).relu().sum().backward()

    profile = bench.profile_step(step, 2)
    kinds = {row["kind"]: row["share"] for row in profile["by_kind"]}
    assert sum(kinds.values()) == pytest.approx(1.0, abs=0.01) and kinds["convolution"] > 0.2
    assert profile["ms_per_step"] > 0 and profile["top_ops"][0]["share"] >= profile["top_ops"][-1]["share"]


def direct_miou(run: Path) -> float:
    """mIoU (%) of a run's final raw weights on its evaluation scenes, counted here: one set of per-class
    intersections and unions over all scenes, classes neither labelled nor predicted left out."""
    from hybridvision.seg.data import load_split
    from hybridvision.seg.evaluate import saved_model, saved_train_config
    from hybridvision.seg.infer import predict

    cfg = saved_train_config(run)
    model, _ = saved_model(run, use_ema=False)
    split = load_split(cfg.data, train=False)
    images, masks, _, _ = next(split.batches([list(range(len(split)))]))
    mean = torch.tensor(cfg.data.mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.data.std).view(1, -1, 1, 1)
    with torch.no_grad():
        pred = predict(model.eval(), (images.float() / 255 - mean) / std, cfg.infer, len(split.classes), 0).argmax(1)
    keep = masks != 255
    ious = []
    for c in range(len(split.classes)):
        p, t = pred[keep] == c, masks[keep] == c
        union = int((p | t).sum())
        if union:
            ious.append(100 * int((p & t).sum()) / union)
    return sum(ious) / len(ious)
