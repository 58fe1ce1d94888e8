"""Named task models: UperNet and Mask R-CNN on every backbone (``upernet_<backbone>``, ``maskrcnn_<backbone>``)
and the diffusion denoisers.

Their tables are data, like the families' own: each name gets its class's import path and its config's fields
as plain values, so ``list_models``, ``hybridvision models`` and ``create_model`` see them as soon as
``hybridvision`` is imported, while the segmentation and diffusion packages are imported only when one of
these models is built or its config read.

Segmentation heads: mmseg's UperNet (512 channels, auxiliary 256) on ImageNet-size backbones at 512x512 with
ADE20K's 150 classes; the small-data recipe's head on the ``*_nano`` backbones at 64x64 Fashion-MNIST scenes
(``configs/seg/fmnist_scenes_*.yaml``); a tiny head on test variants.

Detectors: torchvision's Mask R-CNN with the paper's COCO 1x settings (``configs/det``: RGB, 80 classes, images
resized to 800x1333, FPN 256, anchors 32-512, 2000/1000 proposals, 512 sampled RoIs) on ImageNet-size backbones;
the 64x64 grey scenes' detector (10 classes, anchors 8-128) on the ``*_nano`` backbones; a tiny one on test
variants.

Denoisers (AsCAN App. A.6-A.7): the class-conditional model has widths 160/320/640, context width 768 and about
400M parameters; the text-to-image one 320/640/1280 with 5/10/20 heads of 64. Block counts per level are not in
the prose (only drawn in Fig. 2b): ours are chosen to land on the 400M and follow the paper's rules (C before T,
more T at low resolution, SDXL-like depth). ``docs/models/ascan_unet.md`` has the table of params and MACs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..registry import family, get_entry, list_models
from .contract import IMAGENET_MEAN, IMAGENET_STD

# ---- Segmentation: upernet_<backbone>

SEGMENTOR = "hybridvision.seg.model:SegModel"
SEGMENTOR_CONFIG = "hybridvision.seg.model:SegModelConfig"
SEG_PREFIX = "upernet_"

# The nano backbones' recipe (configs/seg/fmnist_scenes_*.yaml): 64x64 grey scenes, 11 classes, a 64-channel head.
SMALL_DATA: dict[str, Any] = dict(in_chans=1, num_classes=11, img_size=64)
SMALL_HEAD: dict[str, Any] = dict(channels=64, aux_channels=32)
SMALL_BACKBONES = ("ascan_nano", "coatnet_nano", "efficientmod_nano")
TEST_HEAD: dict[str, Any] = dict(channels=16, pool_scales=(1, 2), aux_channels=8)
# Crops other than mmseg's 512 where a backbone cannot take 512: 7x7 windows split multiples of 224 only.
SEG_IMG_SIZE = {"ascan_t_window": 448, "ascan_t_grid": 448}

_segmentor = family("upernet", SEGMENTOR, task="segmentation", config_type=SEGMENTOR_CONFIG)


def segmentor_settings(backbone: str) -> dict[str, Any]:
    """The registered segmentation config of a backbone, as data (the backbone's stochastic depth kept)."""
    entry = get_entry(backbone)
    settings: dict[str, Any] = dict(backbone=backbone, drop_path_rate=entry.config.drop_path_rate)
    if entry.test:
        return settings | SMALL_DATA | dict(head=TEST_HEAD)
    if backbone in SMALL_BACKBONES:
        return settings | SMALL_DATA | dict(head=SMALL_HEAD)
    return settings | ({"img_size": SEG_IMG_SIZE[backbone]} if backbone in SEG_IMG_SIZE else {})


def register_segmentors() -> list[str]:
    """Register ``upernet_<name>`` for every registered backbone not yet covered; returns the names added.

    Run once on import for the built-in backbones; a plug-in that registers a backbone later calls it again.
    """
    return _on_every_backbone(SEG_PREFIX, _segmentor, segmentor_settings, "UperNet")


def _on_every_backbone(
    prefix: str, registrar: Callable[..., None], settings: Callable[[str], dict[str, Any]], head: str
) -> list[str]:
    """Register ``<prefix><backbone>`` (``head`` on it) for every backbone that has none yet; the names added."""
    added = []
    for backbone in list_models(task="classification"):  # the backbones (not other task models)
        name = prefix + backbone
        if name in list_models(name):
            continue
        test = get_entry(backbone).test
        registrar(name, settings(backbone), f"{head} on {backbone}", test=test, backbone=backbone)
        added.append(name)
    return added


register_segmentors()

# ---- Detection: maskrcnn_<backbone>

DETECTOR = "hybridvision.det.model:DetModel"
DETECTOR_CONFIG = "hybridvision.det.model:DetModelConfig"
DET_PREFIX = "maskrcnn_"

# The paper's COCO Mask R-CNN 1x (configs/det/coco_maskrcnn_1x_*.yaml): RGB, 80 classes + background.
COCO_DETECTOR: dict[str, Any] = dict(
    in_chans=3,
    num_classes=81,
    img_size=800,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    detector=dict(
        fpn_channels=256,
        anchor_sizes=(32, 64, 128, 256, 512),
        min_size=800,
        max_size=1333,
        rpn_top_n=(2000, 1000),
        box_samples=512,
        box_head_dim=1024,
        mask_head_dim=256,
    ),
)
# The scenes' detector is DetModelConfig's default (64x64 grey, 10 classes + background, anchors 8-128).
TEST_DETECTOR: dict[str, Any] = dict(detector=dict(fpn_channels=16, rpn_top_n=(50, 20), box_samples=16, detections=20))

_detector = family("maskrcnn", DETECTOR, task="detection", config_type=DETECTOR_CONFIG)


def detector_settings(backbone: str) -> dict[str, Any]:
    """The registered detection config of a backbone, as data (the backbone's stochastic depth kept)."""
    entry = get_entry(backbone)
    settings: dict[str, Any] = dict(backbone=backbone, drop_path_rate=entry.config.drop_path_rate)
    if entry.test:
        return settings | TEST_DETECTOR
    return settings if backbone in SMALL_BACKBONES else settings | COCO_DETECTOR


def register_detectors() -> list[str]:
    """Register ``maskrcnn_<name>`` for every registered backbone not yet covered; returns the names added (a
    plug-in that registers a backbone later calls it again)."""
    return _on_every_backbone(DET_PREFIX, _detector, detector_settings, "Mask R-CNN")


register_detectors()

# ---- Diffusion: the denoisers

_ascan_unet = family(
    "ascan_unet",
    "hybridvision.diffusion.models.unet:AsCANUNet",
    task="generation",
    config_type="hybridvision.diffusion.models.unet_config:AsCANUNetConfig",
)
_diffusers_unet = family(
    "diffusers_unet",
    "hybridvision.diffusion.models.baseline:DiffusersUNet",
    task="generation",
    config_type="hybridvision.diffusion.models.baseline:DiffusersUNetConfig",
)

# Levels of the paper-size models: 2 C at the top; C+T at the middle; 4 C then 10 T, and a 10-T middle, at 1/4.
PAPER_DOWN = ("CC", "CCTT", "CCCCTTTTTTTTTT")
PAPER_MID = "T" * 10
# The 32x32 grey models that train on 2 CPU cores (Fashion-MNIST, pixel space).
FMNIST_UNET: dict[str, Any] = dict(
    in_chans=1, img_size=32, dims=(16, 48, 96), down=("C", "CT", "TT"), mid="T", head_dim=24
)
TEST_UNET: dict[str, Any] = dict(
    in_chans=1, img_size=16, dims=(8, 16, 16), down=("C", "CT", "T"), mid="T", head_dim=8, context_dim=16
)


_ascan_unet("ascan_unet_test", TEST_UNET | dict(num_classes=10, class_tokens=2), "tiny AsCAN UNet for tests", test=True)
_ascan_unet(
    "ascan_unet_fmnist",
    FMNIST_UNET | dict(num_classes=10, context_dim=96, class_tokens=4),
    "AsCAN UNet for 32x32 grey images on CPUs (Fashion-MNIST, pixel space)",
)
_ascan_unet(
    "ascan_unet_t2i_test",
    TEST_UNET | dict(num_classes=0, context="text", pooled_text=True),
    "tiny text-conditioned AsCAN UNet for tests (16-wide encoder tokens)",
    test=True,
)
_ascan_unet(
    "ascan_unet_fmnist_t2i",
    FMNIST_UNET | dict(num_classes=0, context_dim=384, context="text", pooled_text=True),
    "text-conditioned ascan_unet_fmnist: all-MiniLM-L6-v2 tokens (384) through a 2-block text adapter, and "
    "the pooled prompt added to the time embedding",
)
PAPER_UNET: dict[str, Any] = dict(img_size=32, down=PAPER_DOWN, mid=PAPER_MID, head_dim=64, class_tokens=1)
_ascan_unet(
    "ascan_unet_c2i",
    PAPER_UNET | dict(in_chans=8, dims=(160, 320, 640), num_classes=1000, context_dim=768),
    "the paper's class-conditional ImageNet UNet (8-ch VAE latent of 256^2), our block counts",
    paper_params_m=400,
)
_ascan_unet(
    "ascan_unet_t2i",
    PAPER_UNET
    | dict(in_chans=4, dims=(320, 640, 1280), num_heads=(5, 10, 20), num_classes=0, context_dim=4096, context="text"),
    "the paper's text-to-image UNet (SDXL latent of 256^2; Flan-T5-XXL tokens through a 2-block text adapter)",
)
_diffusers_unet(
    "diffusers_unet_test",
    dict(in_chans=1, img_size=16, dims=(8, 16), norm_num_groups=4, attention_head_dim=8),
    "tiny diffusers UNet2DModel for tests",
    test=True,
)
_diffusers_unet(
    "diffusers_unet_fmnist",
    dict(in_chans=1, img_size=32, dims=(24, 48, 72), attention_head_dim=24),
    "diffusers UNet2DModel with a class embedding: the baseline of ascan_unet_fmnist (its parameter count)",
)
