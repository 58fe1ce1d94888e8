"""The model AsCAN's text-to-image UNet claims to beat: SDXL base's UNet, as diffusers builds it from its config.

``SDXL_UNET`` is Stability's ``configs/inference/sd_xl_base.yaml`` (network_config) through diffusers' own
converter (``create_unet_diffusers_config_from_ldm``), which equals the published ``unet/config.json``; built
with random weights (no download) it has 2,567,463,684 parameters (research note generation.md §3). Its
``attention_head_dim`` is really the number of heads (diffusers issue #2011): 5/10/20 heads of 64, the same heads
as AsCAN's T2I UNet. A forward needs SDXL's extra conditioning, ``added_cond_kwargs`` = pooled text (1280) and
the six size/crop ``time_ids``; ``sdxl_inputs`` makes them with the token context.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._diffusers import diffusers

SDXL_UNET: dict[str, Any] = dict(
    sample_size=128,  # the latent of 1024^2
    in_channels=4,
    out_channels=4,
    block_out_channels=(320, 640, 1280),
    layers_per_block=2,
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),  # heads (diffusers' naming trap), head dim 64
    cross_attention_dim=2048,  # CLIP-L 768 + OpenCLIP-bigG 1280 tokens
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    use_linear_projection=True,
    norm_num_groups=32,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,  # pooled bigG 1280 + 6 time_ids x 256
)

# A few-thousand-parameter stand-in with the same structure, for tests of the code that times SDXL.
SDXL_TINY: dict[str, Any] = SDXL_UNET | dict(
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    transformer_layers_per_block=(1, 1, 1),
    attention_head_dim=(1, 2, 2),
    cross_attention_dim=32,
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=16 + 6 * 8,
)


def sdxl_unet(config: dict[str, Any] | None = None) -> nn.Module:
    """``UNet2DConditionModel`` of ``config`` (default: SDXL base's), randomly initialised, in eval mode."""
    return diffusers().UNet2DConditionModel(**(config or SDXL_UNET)).eval()


def sdxl_inputs(unet: nn.Module, batch: int, latent: int, tokens: int, **to: Any) -> dict[str, Any]:
    """Random inputs of one SDXL denoiser step: latents, timestep, ``tokens`` context tokens, added conditioning."""
    c = unet.config
    pooled = c.projection_class_embeddings_input_dim - 6 * c.addition_time_embed_dim
    added = {"text_embeds": torch.randn(batch, pooled, **to), "time_ids": torch.randn(batch, 6, **to)}
    return dict(
        sample=torch.randn(batch, c.in_channels, latent, latent, **to),
        timestep=torch.tensor(500, device=to.get("device")),
        encoder_hidden_states=torch.randn(batch, tokens, c.cross_attention_dim, **to),
        added_cond_kwargs=added,
        return_dict=False,
    )
