"""The baseline denoiser: diffusers' ``UNet2DModel`` with a class embedding, behind the AsCAN UNet's interface.

Same call as ``AsCANUNet`` (``model(sample, timestep, class_labels=...).sample``, no labels = the null label), so
one training task, sampler and evaluation serve both, and params/MACs are counted the same way. The label
embedding is diffusers' ``num_class_embeds`` table (one extra row: the null label), added to the time embedding.
The default widths are research note generation.md §2.2's (2.79M params); the registered `diffusers_unet_fmnist` is
matched to `ascan_unet_fmnist`'s parameter count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...config import check
from ...models.contract import InputError
from .._diffusers import diffusers, diffusers_module
from .unet_config import DenoiserConfig, check_size


@dataclass(frozen=True)
class DiffusersUNetConfig(DenoiserConfig):
    """A ``UNet2DModel``: one width (``dims``) and one attention flag per level, highest resolution first."""

    in_chans: int = 1
    dims: tuple[int, ...] = (32, 64, 128)  # block_out_channels
    num_classes: int = 10
    attn: tuple[bool, ...] = ()  # self-attention per level; () = all but the first
    layers_per_block: int = 1
    norm_num_groups: int = 8
    attention_head_dim: int = 32  # UNet2DModel: the head *width* (heads = channels // this)

    def __post_init__(self) -> None:
        check(
            not self.attn or len(self.attn) == len(self.dims),
            f"attn needs one flag per level ({len(self.dims)}), got {self.attn}",
        )

    def unet_kwargs(self) -> dict[str, Any]:
        attn = self.attn or tuple(i > 0 for i in range(len(self.dims)))
        down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn)
        up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
        return dict(
            sample_size=self.img_hw,
            in_channels=self.in_chans,
            out_channels=self.in_chans,
            block_out_channels=self.dims,
            layers_per_block=self.layers_per_block,
            down_block_types=down,
            up_block_types=up,
            norm_num_groups=self.norm_num_groups,
            attention_head_dim=self.attention_head_dim,
            num_class_embeds=self.num_classes + 1,
        )


class DiffusersUNet(nn.Module):
    """``diffusers.UNet2DModel`` called like ``AsCANUNet``."""

    def __init__(self, config: DiffusersUNetConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = diffusers().UNet2DModel(**config.unet_kwargs())

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | float | None = None,
        encoder_hidden_states: Tensor | None = None,
        class_labels: Tensor | None = None,
        return_dict: bool = True,
        *,
        encoder_attention_mask: Tensor | None = None,
    ) -> Any:
        """Predicted noise (``UNet2DOutput``, or ``(sample,)`` with ``return_dict=False``); ``timestep`` None means
        t = 0 (cost counting), ``class_labels`` None the null label."""
        if encoder_hidden_states is not None or encoder_attention_mask is not None:
            raise InputError("the UNet2DModel baseline is class-conditional: pass class_labels, not a context")
        check_size(sample, self.config.stride)
        B = sample.shape[0]
        t = torch.as_tensor(0 if timestep is None else timestep, device=sample.device)
        labels = torch.full((B,), self.null_class, device=sample.device) if class_labels is None else class_labels
        out = self.unet(sample, t, class_labels=labels.to(sample.device), return_dict=False)[0]
        return diffusers_module("models.unets.unet_2d").UNet2DOutput(sample=out) if return_dict else (out,)
