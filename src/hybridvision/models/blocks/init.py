"""Weight initialisation shared by the hybrid families (timm's 'vit_eff' scheme for CoAtNet/MaxViT).

Convolution blocks: EfficientNet fan-out normal. Attention blocks: Xavier-uniform, zero biases except the MLP
(N(0, 1e-6)). Position tables keep their own trunc-normal(0.02). Norms start at identity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from torch import nn


def init_conv_fan_out(module: nn.Module) -> None:
    """EfficientNet-style init for every conv and linear layer inside ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / m.out_features))
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def init_transformer(module: nn.Module) -> None:
    """ViT-style init for every conv and linear layer inside ``module``."""
    for name, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                if "mlp" in name:
                    nn.init.normal_(m.bias, std=1e-6)
                else:
                    nn.init.zeros_(m.bias)


def init_hybrid(stem: nn.Module, stages: Iterable[nn.Module], attention_blocks: tuple[type, ...]) -> None:
    """timm's 'vit_eff' scheme for a conv-attention trunk: fan-out normal for the stem and every conv block,
    Xavier for every block of an ``attention_blocks`` type (each stage holds its blocks in ``.blocks``)."""
    init_conv_fan_out(stem)
    for stage in stages:
        for block in stage.blocks:
            (init_transformer if isinstance(block, attention_blocks) else init_conv_fan_out)(block)
