"""Registry lookups and typed config handling, including the errors a typo produces."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

import hybridvision as hv
from hybridvision.config import ConfigError, from_dict, parse_overrides, replace, resolve, to_dict

ROOT = Path(__file__).resolve().parents[1]


def test_list_and_filter():
    names = hv.list_models()
    assert names == sorted(names) and "coatnet_0" in names
    assert hv.list_models("coatnet_?") == ["coatnet_0", "coatnet_1", "coatnet_2", "coatnet_3", "coatnet_4"]
    assert set(hv.list_models(family="coatnet")) <= set(names)


def test_unknown_model_suggests():
    with pytest.raises(KeyError, match="coatnet_0"):
        hv.create_model("coatnet0")


def test_unknown_override_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'head_dim'"):
        hv.create_model("coatnet_test", head_dims=16)


def test_overrides_are_typed_and_validated():
    cfg = hv.get_config("coatnet_test", layout="C-C-TT-CT", img_size="96")
    assert cfg.layout == ("C", "C", "TT", "CT") and cfg.img_size == 96
    model = hv.create_model("coatnet_test", layout=("C", "CC", "TCT", "TC"))  # T before C, mixed stages
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError, match="width 24 is not a multiple of head_dim 16"):
        hv.get_config("coatnet_test", layout=("C", "CT", "TT", "T"))
    with pytest.raises(ValueError, match="unknown block letter"):
        hv.get_config("coatnet_test", layout=("C", "C", "TX", "T"))
    with pytest.raises(ValueError, match="pool"):
        hv.get_config("coatnet_test", pool="avg3")
    with pytest.raises(ConfigError, match="expected int"):
        hv.get_config("coatnet_test", num_classes="ten")


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.9, 0.999)


@dataclass(frozen=True)
class Train:
    epochs: int = 1
    name: str = "x"
    amp: bool = False
    optim: Optim = field(default_factory=Optim)


def test_config_roundtrip_and_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 5\noptim:\n  lr: 0.1\n")
    cfg = resolve(Train, str(path), parse_overrides(["--optim.lr", "2e-3", "--amp", "--name=y"]))
    assert cfg == Train(epochs=5, name="y", amp=True, optim=Optim(lr=2e-3))
    assert from_dict(Train, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        replace(cfg, epoch=3)
    with pytest.raises(ConfigError, match="optim.lrr"):
        from_dict(Train, {"optim": {"lrr": 1}})


# ---- Task models: registered as data, listed without importing their task packages

TASK_CONFIGS = {
    "upernet": "SegModelConfig",
    "maskrcnn": "DetModelConfig",
    "ascan_unet": "AsCANUNetConfig",
    "diffusers_unet": "DiffusersUNetConfig",
}


def test_task_models_are_listed_like_backbones_without_importing_their_tasks():
    code = """
import json, sys
import hybridvision as hv
rows = {n: [e.task, e.family, e.test, e.description, e.card] for n in hv.list_models() for e in [hv.get_entry(n)]}
tasks = ("hybridvision.seg", "hybridvision.det", "hybridvision.diffusion", "diffusers", "torchvision")
loaded = sorted(m for m in sys.modules if m.startswith(tasks))
hv.get_config("upernet_ascan_test")
hv.get_config("maskrcnn_ascan_test")
read = {"seg": "hybridvision.seg.model" in sys.modules, "det": "hybridvision.det.model" in sys.modules}
print(json.dumps({"rows": rows, "loaded": loaded, **read, "torchvision": "torchvision" in sys.modules}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    rows = out["rows"]
    backbones = sorted(n for n, row in rows.items() if row[0] == "classification")
    assert sorted(n for n, row in rows.items() if row[0] == "segmentation") == [f"upernet_{b}" for b in backbones]
    assert rows["upernet_ascan_t"] == ["segmentation", "upernet", False, "UperNet on ascan_t", {"backbone": "ascan_t"}]
    assert rows["upernet_coatnet_test"][2] is True  # a test backbone's segmentor is a test variant too
    assert sorted(n for n, row in rows.items() if row[0] == "detection") == [f"maskrcnn_{b}" for b in backbones]
    assert rows["maskrcnn_ascan_t"][:4] == ["detection", "maskrcnn", False, "Mask R-CNN on ascan_t"]
    generation = sorted(n for n, row in rows.items() if row[0] == "generation")
    assert len(generation) == 8 and rows["ascan_unet_c2i"][4] == {"paper_params_m": 400}
    assert out["loaded"] == [] and out["seg"] and out["det"]  # listing imported no task; reading a config its own
    assert not out["torchvision"]  # a detector's config is read without torchvision


TESTED_TASK_MODELS = [*hv.list_models(task="segmentation", test=True), *hv.list_models(task="detection", test=True)]


@pytest.mark.parametrize("name", TESTED_TASK_MODELS + hv.list_models(task="generation"))
def test_every_task_model_reads_its_table_into_its_config(name):
    entry = hv.get_entry(name)
    config = hv.get_config(name)
    assert type(config).__name__ == TASK_CONFIGS[entry.family] and config is not entry.settings
    assert entry.model_cls.__module__.startswith(("hybridvision.seg.", "hybridvision.det.", "hybridvision.diffusion."))
    assert hv.get_config(name, img_size=32).img_size == 32  # overrides apply as for backbones


def test_large_segmentors_keep_mmseg_sizes_and_take_their_crop():
    for name in hv.list_models(task="segmentation", test=False):
        cfg = hv.get_config(name)
        backbone = hv.get_entry(cfg.backbone)
        assert cfg.drop_path_rate == backbone.config.drop_path_rate
        assert (cfg.head.channels, cfg.num_classes) == ((64, 11) if name.endswith("_nano") else (512, 150)), name
    assert hv.get_config("upernet_ascan_t_window").img_size == 448  # 7x7 windows split 448, not 512


def test_detectors_take_the_papers_coco_settings_or_the_scenes():
    """ImageNet-size backbones: configs/det's COCO 1x detector; the nano backbones: the 64x64 scenes' one."""
    import yaml

    for name in hv.list_models(task="detection", test=False):
        cfg = hv.get_config(name)
        assert cfg.drop_path_rate == hv.get_entry(cfg.backbone).config.drop_path_rate
        nano = name.endswith("_nano")
        assert (cfg.in_chans, cfg.num_classes, cfg.detector.min_size) == ((1, 11, 64) if nano else (3, 81, 800)), name
    recipe = yaml.safe_load((ROOT / "configs" / "det" / "coco_maskrcnn_1x_ascan_t.yaml").read_text())
    registered = hv.get_config("maskrcnn_ascan_t")
    assert {k: getattr(registered.detector, k) for k in recipe["detector"]} == {
        k: tuple(v) if isinstance(v, list) else v for k, v in recipe["detector"].items()
    }
    assert (registered.img_size, list(registered.mean)) == (recipe["img_size"], recipe["data"]["mean"])


def test_a_task_model_without_its_config_type_is_refused(monkeypatch):
    from hybridvision import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(ValueError, match="give a config object, or a dict of settings together with its config_type"):
        hv.register("unet_x", "hybridvision.diffusion.models.unet:AsCANUNet", {"dims": (8,)}, family="x")


def test_a_backbone_registered_later_gets_its_segmentor(monkeypatch):
    from hybridvision import registry
    from hybridvision.models.coatnet import CoAtNet
    from hybridvision.models.zoo import register_detectors, register_segmentors

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    hv.register("coatnet_plugin", CoAtNet, hv.get_config("coatnet_test"), family="coatnet", test=True)
    assert register_segmentors() == ["upernet_coatnet_plugin"] and register_segmentors() == []
    assert hv.get_config("upernet_coatnet_plugin").head.channels == 16
    assert register_detectors() == ["maskrcnn_coatnet_plugin"] and register_detectors() == []


def test_models_command_lists_each_task(capsys):
    from hybridvision.cli.main import main

    assert main(["models", "--task", "generation", "--no-cost"]) == 0
    out = capsys.readouterr().out
    assert "8 models" in out and out.count("generation") == 8 and "ascan_unet_c2i" in out
    assert main(["models", "upernet_coatnet_test"]) == 0  # asked for by name: costed
    row = next(line for line in capsys.readouterr().out.splitlines() if "upernet_coatnet_test" in line)
    assert "segmentation" in row and "M" in row.split("│")[-4]  # its params column holds a count
    assert main(["models", "--no-cost"]) == 0 and "not costed" not in capsys.readouterr().out
    assert main(["models", "maskrcnn_*_test", "--task", "detection"]) == 0  # detectors: parameters, no MACs
    rows = [line.split("│") for line in capsys.readouterr().out.splitlines() if "maskrcnn_" in line]
    assert len(rows) == 3 and all(r[-4].strip().endswith("M") and r[-3].strip() == "-" for r in rows), rows
    assert main(["info", "maskrcnn_ascan_test"]) == 2
    assert "its MACs depend on the image and the proposals it keeps" in capsys.readouterr().err
    assert main(["models", "upernet_coatnet_*", "--family", "upernet"]) == 0


def test_the_full_listing_costs_backbones_and_names_the_task_models_it_leaves_out(capsys, monkeypatch):
    from hybridvision.cli import models as command
    from hybridvision.cli.main import main

    costed = []
    monkeypatch.setattr(command, "_cost_columns", lambda name: costed.append(name) or ["1M", "1G", "32"])
    assert main(["models"]) == 0
    tasks = [n for n in hv.list_models() if hv.get_entry(n).task != "classification"]
    assert costed == hv.list_models(task="classification") and tasks
    assert f"{len(tasks)} task models not costed" in capsys.readouterr().out


def test_bench_globs_pick_backbones_first():
    from hybridvision.bench.config import expand_models

    assert expand_models(("*",)) == hv.list_models(test=False, task="classification")
    assert expand_models(("ascan_*",)) == hv.list_models("ascan_*", test=False, task="classification")
    assert expand_models(("upernet_coatnet_?",)) == [f"upernet_coatnet_{i}" for i in range(5)]
    assert expand_models(("ascan_unet_*_test",)) == ["ascan_unet_t2i_test"]
