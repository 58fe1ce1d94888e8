"""Registry lookups and typed config handling, including the errors a typo produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

import hybridvision as hv
from hybridvision.config import ConfigError, from_dict, parse_overrides, replace, resolve, to_dict


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
