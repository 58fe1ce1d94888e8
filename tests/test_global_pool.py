"""``model.global_pool``: the pooling type string timm's MaxxVit holds, on every backbone family, in step with
``reset_classifier`` and read by timm's exporter."""

from __future__ import annotations

import pytest
import torch

import hybridvision as hv

BACKBONES = hv.list_models(task="classification")
FAMILIES = sorted({hv.get_entry(n).family for n in BACKBONES})
# one tiny variant per family (every family registers one: tests/test_models.py checks it)
ONE_PER_FAMILY = [hv.list_models(family=f, test=True, task="classification")[0] for f in FAMILIES]


def test_every_backbone_family_is_covered():
    assert {"ascan", "coatnet", "efficientmod"} <= set(FAMILIES)
    assert len(ONE_PER_FAMILY) == len(FAMILIES)


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_global_pool_follows_the_config_and_reset_classifier(name):
    model = hv.create_model(name).eval()
    assert model.global_pool == "avg" and isinstance(model.global_pool, str)
    assert hv.create_model(name, global_pool="avgmax").global_pool == "avgmax"
    h, w = model.config.img_hw
    x = torch.randn(2, model.config.in_chans, h, w)
    model.reset_classifier(0, "")
    assert model.global_pool == model.config.global_pool == ""
    assert model(x).dim() == 4  # no pooling: a map comes out, as the attribute says
    model.reset_classifier(5, "max")
    assert model.global_pool == "max" and model(x).shape == (2, 5)
    model.reset_classifier(3)  # no pool given: the pooling stays
    assert model.global_pool == "max"
    with pytest.raises(ValueError, match="global_pool must be one of"):
        model.reset_classifier(3, "mean")
    assert model.global_pool == "max"  # a refused reset changes nothing
    with pytest.raises(AttributeError):
        model.global_pool = "avg"  # read-only: reset_classifier is the one way to change it


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_pruning_the_head_drops_the_pool(name):
    model = hv.create_model(name)
    model.prune_intermediate_layers(2)
    assert model.global_pool == ""


def test_timm_reads_the_pool_of_our_models(timm):
    from timm.models._input import _get_global_pool

    model = hv.create_model("coatnet_test", global_pool="max")
    assert _get_global_pool(model) == "max"
    model.reset_classifier(0, "avg")
    assert _get_global_pool(model) == "avg"
