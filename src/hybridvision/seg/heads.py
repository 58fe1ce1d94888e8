"""The decode heads, as mmsegmentation builds them, without mmcv: UperNet, Semantic FPN, the auxiliary FCN head.

UperNet (Xiao et al., ECCV 2018): pyramid pooling (PSPNet) on the deepest map, lateral 1x1 convs and a top-down
FPN over the others, every level's 3x3 output upsampled to the finest one and fused by one 3x3 conv; then dropout
and a 1x1 classifier. mmseg's ``UPerHead``/``FCNHead`` layer for layer (ConvModule = conv (no bias) -> BN -> ReLU),
written from its config (``configs/_base_/models/upernet_swin.py``, ``../research/peers.md``).

Semantic FPN (Kirillov et al., "Panoptic Feature Pyramid Networks", CVPR 2019), the head EfficientMod reports on
ADE20K: an FPN neck (lateral 1x1 convs, top-down nearest-neighbour sums, a 3x3 conv per level; convs with bias,
no norm: mmdet/mmseg's ``FPN``) and the semantic branch (mmseg's ``FPNHead``): each level goes through
(3x3 conv-BN-ReLU, 2x bilinear upsample) stages until it reaches the finest level's scale (the finest takes one
conv), the maps are summed, then dropout and a 1x1 classifier. The paper normalises with GroupNorm; mmseg's
config (``configs/_base_/models/fpn_r50.py``), which EfficientMod trains with, uses BatchNorm, and so do we.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.blocks import ConvNormAct, init_conv_fan_out


def conv_module(in_dim: int, out_dim: int, kernel_size: int) -> ConvNormAct:
    """mmcv's ConvModule as mmseg's heads use it: conv (no bias) -> BatchNorm -> ReLU, fan-out init."""
    module = ConvNormAct(in_dim, out_dim, kernel_size, act=nn.ReLU)
    init_conv_fan_out(module)  # mmcv: kaiming normal, fan_out, relu gain
    return module


def resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize of a map to ``size`` (align_corners=False, as mmseg's heads)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)  # (B, C, h, w) -> (B, C, H, W)


class SegClassifier(nn.Module):
    """Dropout2d then a 1x1 conv to the class scores (mmseg's ``cls_seg``, N(0, 0.01) init)."""

    def __init__(self, in_dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv = nn.Conv2d(in_dim, num_classes, 1)
        nn.init.normal_(self.conv.weight, 0.0, 0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.drop(x))


class PyramidPooling(nn.Module):
    """PSPNet's pooling module: the map average-pooled to s x s for each scale, 1x1 conv-BN-ReLU, upsampled back."""

    def __init__(self, in_dim: int, channels: int, scales: Sequence[int]) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.convs = nn.ModuleList(conv_module(in_dim, channels, 1) for _ in self.scales)

    def forward(self, x: Tensor) -> list[Tensor]:
        if self.training and x.shape[0] == 1 and 1 in self.scales:
            raise ValueError(
                "UperNet's pyramid pooling normalises a 1x1 map with BatchNorm, which needs 2 or more images per "
                "process and micro-batch in training: raise the batch size, or call model.eval() for inference"
            )
        size = x.shape[-2:]
        pooled = (F.adaptive_avg_pool2d(x, s) for s in self.scales)  # (B, C, H, W) -> (B, C, s, s)
        return [resize(conv(p), size) for conv, p in zip(self.convs, pooled)]  # each (B, channels, H, W)


class UperNetHead(nn.Module):
    """UperNet: PPM on the deepest map, FPN over all of them, fused at the finest level, classified there.

    Args:
        in_dims: channels of the input maps, finest first (the backbone's selected feature levels).
        channels: width of every internal map (mmseg: 512).
        num_classes: output classes.
        pool_scales: PPM output sizes (mmseg: 1, 2, 3, 6).
        dropout: Dropout2d before the classifier (mmseg: 0.1).
    """

    def __init__(
        self, in_dims: Sequence[int], channels: int, num_classes: int, pool_scales: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        deepest = in_dims[-1]
        self.ppm = PyramidPooling(deepest, channels, pool_scales)
        self.ppm_out = conv_module(deepest + len(pool_scales) * channels, channels, 3)  # mmseg's "bottleneck"
        self.laterals = nn.ModuleList(conv_module(d, channels, 1) for d in in_dims[:-1])
        self.fpn_convs = nn.ModuleList(conv_module(channels, channels, 3) for _ in in_dims[:-1])
        self.fuse = conv_module(len(in_dims) * channels, channels, 3)  # mmseg's "fpn_bottleneck"
        self.classifier = SegClassifier(channels, num_classes, dropout)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Maps finest first -> class scores at the finest map's size (B, num_classes, h0, w0)."""
        top = feats[-1]
        top = self.ppm_out(torch.cat([top, *self.ppm(top)], dim=1))  # (B, C + n * ch, h, w) -> (B, ch, h, w)
        laterals = [conv(f) for conv, f in zip(self.laterals, feats)] + [top]
        for i in range(len(laterals) - 1, 0, -1):  # top-down: every level adds the coarser one, upsampled
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[-2:])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)] + [laterals[-1]]
        size = outs[0].shape[-2:]
        fused = torch.cat([resize(o, size) for o in outs], dim=1)  # levels x (B, ch, h0, w0) -> (B, n * ch, h0, w0)
        return self.classifier(self.fuse(fused))


class InputRefine(nn.Module):
    """A full-resolution refinement: the upsampled class scores and the image, two 3x3 conv-BN-ReLU, a residual 1x1.

    UperNet classifies at its finest map (stride 4 at best) and its edges are bilinear guesses between those
    cells. Where a label's edge is an edge of the image too (an object on a plain background), two convs over
    the image and the scores can put it back at the pixel: a cheap, generic relative of mmseg's PointRend,
    which refines uncertain points from fine features. The last conv starts at zero, so at initialisation the
    output is the head's upsampled scores.
    """

    def __init__(self, in_chans: int, num_classes: int, channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_module(num_classes + in_chans, channels, 3), conv_module(channels, channels, 3))
        self.out = nn.Conv2d(channels, num_classes, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, logits: Tensor, image: Tensor) -> Tensor:
        """Scores (B, K, H, W) and the input (B, C, H, W), same size -> refined scores (B, K, H, W)."""
        return logits + self.out(self.convs(torch.cat([logits, image], dim=1)))  # (B, K + C, H, W) -> (B, K, H, W)


class FCNHead(nn.Module):
    """The auxiliary head (mmseg ``FCNHead``, num_convs=1, concat_input=False): 3x3 conv-BN-ReLU, classifier."""

    def __init__(self, in_dim: int, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.conv = conv_module(in_dim, channels, 3)
        self.classifier = SegClassifier(channels, num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.conv(x))


class FPNNeck(nn.Module):
    """mmdet's ``FPN`` (``num_outs`` = inputs): lateral 1x1 convs, top-down nearest sums, a 3x3 conv per level.

    Args:
        in_dims: channels of the input maps, finest first.
        channels: width of every output level (mmseg's Semantic FPN: 256).
    """

    def __init__(self, in_dims: Sequence[int], channels: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(d, channels, 1) for d in in_dims)
        self.outs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_dims)
        for conv in (*self.laterals, *self.outs):
            nn.init.xavier_uniform_(conv.weight)  # mmcv's ConvModule without norm or activation: Xavier, zero bias
            nn.init.zeros_(conv.bias)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Maps finest first -> as many maps of ``channels``, same sizes."""
        laterals = [conv(f) for conv, f in zip(self.laterals, feats)]
        for i in range(len(laterals) - 1, 0, -1):  # top-down: every level adds the coarser one, upsampled
            up = F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest")  # (B, C, h, w) -> finer
            laterals[i - 1] = laterals[i - 1] + up
        return [conv(x) for conv, x in zip(self.outs, laterals)]


class SemanticFPNHead(nn.Module):
    """Semantic FPN: the FPN neck, then every level brought to the finest scale by conv + 2x-upsample stages, summed.

    Args:
        in_dims: channels of the input maps, finest first.
        reductions: each map's stride against the input (finest first, each a power-of-two multiple of the first).
        neck_channels: the FPN's width (mmseg: 256).
        channels: the semantic branch's width (mmseg's ``FPNHead``: 128).
        num_classes: output classes.
        dropout: Dropout2d before the classifier (mmseg: 0.1).
    """

    def __init__(
        self,
        in_dims: Sequence[int],
        reductions: Sequence[int],
        neck_channels: int,
        channels: int,
        num_classes: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.neck = FPNNeck(in_dims, neck_channels)
        self.scale_heads = nn.ModuleList()
        for r in reductions:
            ups = round(math.log2(r / reductions[0]))  # 2x upsamples that bring this level to the finest scale
            layers: list[nn.Module] = []
            for k in range(max(ups, 1)):
                layers.append(conv_module(neck_channels if k == 0 else channels, channels, 3))
                if k < ups:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.scale_heads.append(nn.Sequential(*layers))
        self.classifier = SegClassifier(channels, num_classes, dropout)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Maps finest first -> class scores at the finest map's size (B, num_classes, h0, w0)."""
        levels = self.neck(feats)
        size = levels[0].shape[-2:]
        out = self.scale_heads[0](levels[0])
        for head, level in zip(self.scale_heads[1:], levels[1:]):
            out = out + resize(head(level), size)  # a no-op where the map is already at the finest size
        return self.classifier(out)
