"""The optimisation recipe and its config: param groups, schedule, EMA, YAML recipes and overrides."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import hybridvision as hv
from hybridvision.classify.config import TrainConfig
from hybridvision.config import ConfigError, from_dict, parse_overrides, resolve, to_dict
from hybridvision.engine.config import EmaConfig, OptimConfig
from hybridvision.engine.ema import ModelEma
from hybridvision.engine.optim import build_optimizer, param_groups
from hybridvision.engine.schedule import Schedule, lr_at

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "train").glob("*.yaml"))


def test_defaults_are_the_fashion_mnist_ascan_nano_recipe():
    cfg = TrainConfig()
    assert cfg.model == "ascan_nano" and cfg.data.dataset == "fashion_mnist" and cfg.data.channels == 1
    assert "fashion-mnist" in cfg.data.root and cfg.img_size == 32
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg
    recipe = resolve(TrainConfig, str(CONFIGS[0].parent / "fmnist_ascan_nano_30min.yaml"))
    assert recipe == TrainConfig()  # the defaults are the 30-minute recipe, spelled out in its YAML


def test_overrides_and_typos():
    cfg = resolve(
        TrainConfig, None, parse_overrides(["--optim.lr", "1e-3", "--model_kwargs.dims", "8,16", "--amp=off"])
    )
    assert cfg.optim.lr == 1e-3 and cfg.model_kwargs == {"dims": "8,16"} and cfg.amp == "off"
    with pytest.raises(ConfigError, match="Did you mean 'lr'"):
        resolve(TrainConfig, None, {"optim.lrr": "1"})
    with pytest.raises(ValueError, match="amp must be"):
        resolve(TrainConfig, None, {"amp": "fp8"})
    with pytest.raises(ValueError, match="unknown aug.randaug_ops"):
        resolve(TrainConfig, None, {"aug.randaug_ops": "rotate,wobble"})
    with pytest.raises(ValueError, match="one value per channel"):
        resolve(TrainConfig, None, {"data.channels": "3"})


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_recipe_file_parses(path):
    cfg = resolve(TrainConfig, str(path))
    assert cfg.batch_size % cfg.optim.accum_steps == 0


def test_no_weight_decay_on_norms_biases_and_tables():
    model = hv.create_model("coatnet_test")
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = {names[id(p)] for p in no_decay["params"]}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert any(n.endswith("rel_pos.table") for n in skipped) and "stem.norm1.weight" in skipped
    assert all(n.endswith("weight") and model.get_parameter(n).ndim > 1 for n in decayed)
    assert len(skipped) + len(decayed) == len(list(model.parameters()))
    opt = build_optimizer(model, OptimConfig(impl="foreach"), torch.device("cpu"))
    assert opt.defaults["foreach"] and not opt.defaults["fused"]


def test_warmup_cosine_values():
    cfg = OptimConfig(lr=1.0, min_lr=0.01, warmup_lr=0.1, warmup_epochs=1)
    sched = Schedule(cfg, total_steps=100, steps_per_epoch=10)
    assert sched.lr(0) == pytest.approx(0.1) and sched.lr(5) == pytest.approx(0.55)
    assert sched.lr(10) == pytest.approx(1.0)
    assert sched.lr(55) == pytest.approx(0.01 + 0.99 * 0.5)  # half-way through the cosine
    assert sched.lr(100) == pytest.approx(0.01)
    budget = Schedule(cfg, total_steps=100, steps_per_epoch=10, budget_s=60)
    assert budget.lr(10, elapsed_s=60) == pytest.approx(0.01)  # the spent budget ends the cosine
    assert lr_at(0.5, 0.0, cfg) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_ema_update_math():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEma(model, EmaConfig(decay=0.9, warmup=False))
    before = ema.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(3.0)
    ema.update(model, step=0)
    torch.testing.assert_close(ema.module[0].weight, 0.9 * before + 0.1 * model[0].weight)
    assert torch.equal(ema.module[1].running_mean, model[1].running_mean)  # buffers are copied
    assert not any(p.requires_grad for p in ema.module.parameters())
    warm = ModelEma(model, EmaConfig(decay=0.999))
    assert warm.decay_at(0) == pytest.approx(0.1) and warm.decay_at(10**6) == pytest.approx(0.999)


def test_missing_data_is_a_one_line_error(tmp_path, capsys):
    from hybridvision.cli.main import main

    assert (
        main(["train", "--model", "coatnet_test", "--data.root", str(tmp_path / "none"), "--out_dir", str(tmp_path)])
        == 2
    )
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err and "--data.root" in err and "Traceback" not in err
    assert main(["train", "--optim.lr", "fast"]) == 2
    assert "expected float" in capsys.readouterr().err


def test_csv_log_drops_rows_after_the_resumed_step(tmp_path):
    from hybridvision.engine.logs import CsvLog, read_csv

    path = tmp_path / "log.csv"
    log = CsvLog(path)
    for step in (10, 20, 30):
        log.write({"step": step, "loss": 1.0 / step})
    path.write_text(path.read_text() + "4")  # the start of a row a killed run was writing
    resumed = CsvLog(path, resume_step=20)
    resumed.write({"step": 30, "loss": 0.5})
    assert [r["step"] for r in read_csv(path)] == [10, 20, 30] and read_csv(path)[-1]["loss"] == 0.5
