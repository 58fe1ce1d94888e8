"""BatchNorm folding (inference only): a BatchNorm next to a conv becomes part of the conv's weight and bias."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Per-channel (scale, shift) with ``bn(x) == x * scale + shift`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv equal to ``bn(conv(x))`` in eval mode."""
    scale, shift = bn_scale_shift(bn)
    fused = _clone_conv(conv, bias=True)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    fused.bias.copy_(bias * scale + shift)
    return fused


@torch.no_grad()
def fold_bn_before(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """A 1x1 conv equal to ``conv(bn(x))`` in eval mode (a 1x1 kernel sees no padding, so this is exact)."""
    if conv.kernel_size != (1, 1) or conv.groups != 1:
        raise ValueError("only a dense 1x1 conv can absorb a preceding BatchNorm exactly")
    scale, shift = bn_scale_shift(bn)
    fused = _clone_conv(conv, bias=True)
    w = conv.weight[:, :, 0, 0]  # (C_out, C_in)
    fused.weight.copy_((w * scale)[:, :, None, None])  # (C_out, C_in) -> (C_out, C_in, 1, 1)
    bias = conv.bias if conv.bias is not None else torch.zeros(w.shape[0], device=w.device, dtype=w.dtype)
    fused.bias.copy_(bias + w @ shift)
    return fused


def _clone_conv(conv: nn.Conv2d, bias: bool) -> nn.Conv2d:
    out = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=bias,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    return (
        out.to(memory_format=torch.channels_last)
        if conv.weight.is_contiguous(memory_format=torch.channels_last)
        else out
    )
