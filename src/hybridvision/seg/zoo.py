"""Named segmentation models: ``upernet_<backbone>`` for every registered backbone (import this module to add them).

They make segmentation models measurable and buildable by name like any other model::

    hybridvision bench upernet_ascan_t upernet_coatnet_0 upernet_efficientmod_s --import hybridvision.seg.zoo \
        --img-size 512
    hv.create_model("upernet_ascan_t", num_classes=150)      # after `import hybridvision.seg.zoo`

``hybridvision.seg`` itself does not import this module, so importing the task leaves the classification
registry (and the tests enumerating it) untouched. Head sizes: mmseg's UperNet (512 channels, auxiliary 256)
on ImageNet-size backbones at 512x512 with ADE20K's 150 classes; the small-data recipe's head on the ``*_nano``
backbones at 64x64 Fashion-MNIST scenes (``configs/seg/fmnist_scenes_*.yaml``); a tiny head on test variants.
"""

from __future__ import annotations

from ..registry import family, get_entry, list_models
from .model import HeadConfig, SegModel, SegModelConfig

FAMILY = "upernet"
PREFIX = "upernet_"

# The nano backbones' recipe (configs/seg/fmnist_scenes_*.yaml): 64x64 grey scenes, 11 classes, a 64-channel head.
SMALL_DATA = dict(in_chans=1, num_classes=11, img_size=64)
SMALL_HEAD = HeadConfig(channels=64, aux_channels=32)
SMALL_BACKBONES = ("ascan_nano", "coatnet_nano", "efficientmod_nano")
TEST_HEAD = HeadConfig(channels=16, pool_scales=(1, 2), aux_channels=8)

_variant = family(FAMILY, SegModel, task="segmentation")


def config_for(backbone: str) -> SegModelConfig:
    """The registered segmentation config of a backbone (its stochastic depth kept)."""
    entry = get_entry(backbone)
    dpr = entry.config.drop_path_rate
    if entry.test:
        return SegModelConfig(backbone=backbone, head=TEST_HEAD, drop_path_rate=dpr, **SMALL_DATA)
    if backbone in SMALL_BACKBONES:
        return SegModelConfig(backbone=backbone, head=SMALL_HEAD, drop_path_rate=dpr, **SMALL_DATA)
    return SegModelConfig(backbone=backbone, drop_path_rate=dpr)


def register_variants() -> list[str]:
    """Register ``upernet_<name>`` for every registered backbone not yet covered; returns the names added."""
    added = []
    for backbone in list_models(task="classification"):  # the backbones (not other task models)
        entry = get_entry(backbone)
        name = PREFIX + backbone
        if name in list_models(name):
            continue
        _variant(name, config_for(backbone), f"UperNet on {backbone}", test=entry.test, backbone=backbone)
        added.append(name)
    return added


register_variants()
