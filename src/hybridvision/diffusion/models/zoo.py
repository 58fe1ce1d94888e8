"""Named denoisers: the paper's AsCAN UNets, small ones that train on 2 CPU cores, and the diffusers baseline.

Registered under the families "ascan_unet" and "diffusers_unet" when ``hybridvision.diffusion`` is imported (the
classification registry never sees them otherwise). Paper facts (AsCAN App. A.6-A.7): the class-conditional
model has widths 160/320/640, context width 768 and about 400M parameters; the text-to-image one 320/640/1280
with 5/10/20 heads of 64. Block counts per level are not in the prose (only drawn in Fig. 2b): ours are chosen
to land on the 400M and follow the paper's rules (C before T, more T at low resolution, SDXL-like depth).
See docs/models/ascan_unet.md for the table of params and MACs.
"""

from __future__ import annotations

from typing import Any

from ...registry import list_models, register
from .baseline import DiffusersUNet, DiffusersUNetConfig
from .unet import AsCANUNet, AsCANUNetConfig

# Levels of the paper-size models: 2 C at the top; C+T at the middle; 4 C then 10 T, and a 10-T middle, at 1/4.
PAPER_DOWN = ("CC", "CCTT", "CCCCTTTTTTTTTT")
PAPER_MID = "T" * 10

# (name, model class, config, description, test variant, card)
VARIANTS: list[tuple[str, type, Any, str, bool, dict[str, Any]]] = [
    (
        "ascan_unet_test",
        AsCANUNet,
        AsCANUNetConfig(
            in_chans=1, img_size=16, dims=(8, 16, 16), down=("C", "CT", "T"), mid="T", head_dim=8,
            num_classes=10, context_dim=16, class_tokens=2,
        ),
        "tiny AsCAN UNet for tests",
        True,
        {},
    ),
    (
        "ascan_unet_fmnist",
        AsCANUNet,
        AsCANUNetConfig(
            in_chans=1, img_size=32, dims=(16, 48, 96), down=("C", "CT", "TT"), mid="T", head_dim=24,
            num_classes=10, context_dim=96, class_tokens=4,
        ),
        "AsCAN UNet for 32x32 grey images on CPUs (Fashion-MNIST, pixel space)",
        False,
        {},
    ),
    (
        "ascan_unet_t2i_test",
        AsCANUNet,
        AsCANUNetConfig(
            in_chans=1, img_size=16, dims=(8, 16, 16), down=("C", "CT", "T"), mid="T", head_dim=8,
            num_classes=0, context_dim=16, context="text", pooled_text=True,
        ),
        "tiny text-conditioned AsCAN UNet for tests (16-wide encoder tokens)",
        True,
        {},
    ),
    (
        "ascan_unet_fmnist_t2i",
        AsCANUNet,
        AsCANUNetConfig(
            in_chans=1, img_size=32, dims=(16, 48, 96), down=("C", "CT", "TT"), mid="T", head_dim=24,
            num_classes=0, context_dim=384, context="text", pooled_text=True,
        ),
        "text-conditioned ascan_unet_fmnist: all-MiniLM-L6-v2 tokens (384) through a 2-block text adapter, and "
        "the pooled prompt added to the time embedding",
        False,
        {},
    ),
    (
        "ascan_unet_c2i",
        AsCANUNet,
        AsCANUNetConfig(
            in_chans=8, img_size=32, dims=(160, 320, 640), down=PAPER_DOWN, mid=PAPER_MID, head_dim=64,
            num_classes=1000, context_dim=768, class_tokens=1,
        ),
        "the paper's class-conditional ImageNet UNet (8-ch VAE latent of 256^2), our block counts",
        False,
        {"paper_params_m": 400},
    ),
    (
        "ascan_unet_t2i",
        AsCANUNet,
        AsCANUNetConfig(
            in_chans=4, img_size=32, dims=(320, 640, 1280), down=PAPER_DOWN, mid=PAPER_MID, head_dim=64,
            num_heads=(5, 10, 20), num_classes=0, context_dim=4096, class_tokens=1, context="text",
        ),
        "the paper's text-to-image UNet (SDXL latent of 256^2; Flan-T5-XXL tokens through a 2-block text adapter)",
        False,
        {},
    ),
    (
        "diffusers_unet_test",
        DiffusersUNet,
        DiffusersUNetConfig(in_chans=1, img_size=16, dims=(8, 16), norm_num_groups=4, attention_head_dim=8),
        "tiny diffusers UNet2DModel for tests",
        True,
        {},
    ),
    (
        "diffusers_unet_fmnist",
        DiffusersUNet,
        DiffusersUNetConfig(in_chans=1, img_size=32, dims=(24, 48, 72), attention_head_dim=24),
        "diffusers UNet2DModel with a class embedding: the baseline of ascan_unet_fmnist (its parameter count)",
        False,
        {},
    ),
]  # fmt: skip


def register_variants() -> list[str]:
    """Register every variant not registered yet (idempotent); returns the names added."""
    added = []
    for name, model_cls, config, description, test, card in VARIANTS:
        if name in list_models(name):
            continue
        family = "ascan_unet" if model_cls is AsCANUNet else "diffusers_unet"
        kind = {"family": family, "description": description, "card": card, "test": test, "task": "generation"}
        register(name, model_cls, config, **kind)
        added.append(name)
    return added
