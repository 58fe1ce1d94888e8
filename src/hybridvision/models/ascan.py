"""AsCAN (Kag et al., NeurIPS 2024, arXiv:2411.04967): asymmetric convolution-attention networks.

Written from the paper's text; no official code exists. Confirmed by the paper (§3.1, App. A.1): a two-conv
stem (BN, GELU) to half resolution; four stages whose layout puts convolution before attention inside every
stage, with more convolution early and more attention late (the tiny model: ``CCCT / CCTT / CTTT`` after an
all-conv first stage); C = FusedMBConv with BatchNorm (no depthwise conv); T = parallel attention + MLP on
``LN(GELU(x))`` with global MHSA and a learned relative-position bias; a head that projects to an embedding
width (BN, GELU), average-pools and classifies. Widths, stage-1 depth, the embedding width and the B/L scaling
are not public (the paper's Table 6 is an image we cannot read): the tables below are our design, reasoned in
``docs/models/ascan.md``.

The paper's design space is one override away: ``layout`` takes any C/T strings, ``conv_block`` swaps the C
block (FusedMBConv / MBConv / ConvNeXt, or EfficientMod's modulation block for study E1) and ``attention`` the T
block's attention (global / window / grid).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..config import check, one_of
from ..registry import family
from .blocks import (
    ATTENTIONS,
    ClassifierHead,
    ConvNeXtBlock,
    ConvNormAct,
    ConvStem,
    FusedMBConv,
    MBConv,
    ModulationBlock,
    ParallelTransformerBlock,
    get_act,
    init_conv_fan_out,
    init_hybrid,
    make_attention,
)
from .blocks.window import window_shape
from .contract import Backbone, FeatureInfo, InputError, ModelConfig, build_stages, check_stages

CONV_BLOCKS = ("fused_mbconv", "mbconv", "convnext", "modulation")

# ---- Config


@dataclass(frozen=True)
class AsCANConfig(ModelConfig):
    """AsCAN. ``layout`` has one string per stage: 'C' = conv block, 'T' = transformer block, any order/length."""

    layout: tuple[str, ...] = ("CC", "CCCT", "CCTT", "CTTT")  # the paper's asymmetric C1 design (AsCAN-T)
    dims: tuple[int, ...] = (64, 128, 256, 512)  # channels per stage (S1..S4)
    stem_dims: tuple[int, int] = (32, 64)  # two 3x3 convs, each with BN + act
    stem_stride: int = 2  # 1 keeps full resolution for small inputs (32x32)
    # C block: "fused_mbconv" (paper), "mbconv" (MaxViT/CoAtNet), "convnext", "modulation" (EfficientMod's)
    conv_block: str = "fused_mbconv"
    attention: str = "global"  # T-block attention: "global" (paper), "window" or "grid" (MaxViT multi-axis)
    window_size: int = 7  # window and grid size of "window"/"grid" attention (7 splits 56/28/14/7 at 224)
    head_dim: int = 32  # channels per attention head
    mlp_ratio: float = 4.0  # T-block MLP width / block width
    expand_ratio: float = 4.0  # C-block expansion (FusedMBConv/MBConv), MLP ratio (ConvNeXt) or value r (modulation)
    embed_dim: int = 1280  # head: 1x1 conv-BN-act to this width before pooling; 0 = pool the last stage
    act: str = "gelu"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            min(self.stem_dims) >= 1 and self.embed_dim >= 0 and self.window_size >= 1 and self.head_dim >= 1,
            "stem_dims, head_dim and window_size must be positive and embed_dim >= 0",
        )
        check_stages(self.layout, self.dims, "CT", stem_stride=self.stem_stride, head_dim=self.head_dim)
        one_of("conv_block", self.conv_block, CONV_BLOCKS)
        one_of("attention", self.attention, ATTENTIONS)
        get_act(self.act)
        check(
            self.mlp_ratio > 0 and self.expand_ratio > 0,
            f"mlp_ratio and expand_ratio must be positive, got {self.mlp_ratio}, {self.expand_ratio}",
        )
        check(
            self.conv_block != "modulation" or float(self.expand_ratio).is_integer(),
            f"conv_block 'modulation' needs a whole expand_ratio (its value branch is r times the block width), "
            f"got {self.expand_ratio}; set expand_ratio to a whole number such as 4",
        )

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.layout)

    @property
    def stride(self) -> int:
        return self.stem_stride * 2 ** len(self.layout)  # every stage halves the map


# ---- Conv-block choices (paper §3.1, Tab. 1): FusedMBConv is AsCAN's; the others are the study's alternatives


def _conv_block(cfg: AsCANConfig, in_dim: int, out_dim: int, stride: int, dpr: float) -> nn.Module:
    act = get_act(cfg.act)
    if cfg.conv_block == "fused_mbconv":
        return FusedMBConv(
            in_dim, out_dim, stride=stride, expand_ratio=cfg.expand_ratio, act=act, se_act=act, drop_path_rate=dpr
        )
    if cfg.conv_block == "mbconv":  # MaxViT's: x4 of the output width, strided depthwise conv
        return MBConv(
            in_dim, out_dim, stride=stride, expand_ratio=cfg.expand_ratio, act=act, se_act=act, drop_path_rate=dpr
        )
    if cfg.conv_block == "modulation":  # EfficientMod's, downsampling as ConvNeXtBlock: strided depthwise context
        r = int(cfg.expand_ratio)
        return ModulationBlock(in_dim, out_dim=out_dim, stride=stride, expand_ratio=r, act=act, drop_path_rate=dpr)
    return ConvNeXtBlock(in_dim, out_dim, stride=stride, mlp_ratio=cfg.expand_ratio, act=act, drop_path_rate=dpr)


# ---- Model (paper §3.1, Fig. 2a)


class AsCAN(Backbone):
    """Conv stem, stages of C / T blocks laid out by ``config.layout``, projection head (pool after it)."""

    # channels_last: faster than NCHW at batch 16, on par or better at batch 1 (measured: docs/models/ascan.md)
    memory_format = torch.channels_last

    def __init__(self, config: AsCANConfig) -> None:
        super().__init__()
        self.config = c = config
        act = get_act(c.act)
        self.stem = ConvStem(c.in_chans, c.stem_dims, act=act, out_norm=True, stride=c.stem_stride)
        img_h, img_w = c.img_hw
        self.stages, stage_info = build_stages(
            c.layout,
            c.dims,
            c.stem_dims[1],
            c.stem_stride,
            lambda reduction: self._block_factories((img_h // reduction, img_w // reduction)),
            c.drop_path_rate,
        )
        self.feature_info = [FeatureInfo(num_chs=c.stem_dims[1], reduction=c.stem_stride, module="stem"), *stage_info]
        self.norm = nn.Identity()  # every block ends in its own norm-free residual sum; the head normalises
        pre_pool = ConvNormAct(c.dims[-1], c.embed_dim, 1, act=act) if c.embed_dim else None
        self.head = ClassifierHead(c.embed_dim or c.dims[-1], c.num_classes, pre_pool=pre_pool, drop=c.drop_rate)
        self._init_weights()
        # Store conv weights in the layout the trunk runs in: oneDNN otherwise reorders every weight on every
        # call, a visible share of a batch-1 forward.
        self.to(memory_format=self.memory_format)

    def _block_factories(self, grid: tuple[int, int]) -> dict[str, Any]:
        c = self.config

        def conv_block(in_dim: int, out_dim: int, stride: int, dpr: float) -> nn.Module:
            return _conv_block(c, in_dim, out_dim, stride, dpr)

        def attn_block(in_dim: int, out_dim: int, stride: int, dpr: float) -> nn.Module:
            attn = make_attention(
                c.attention, in_dim, out_dim, head_dim=c.head_dim, grid=grid, window_size=c.window_size
            )
            return ParallelTransformerBlock(
                in_dim, out_dim, attn=attn, stride=stride, mlp_ratio=c.mlp_ratio, act=get_act(c.act), drop_path_rate=dpr
            )

        return {"C": conv_block, "T": attn_block}

    def _init_weights(self) -> None:
        # One scheme (timm's 'vit_eff', as MaxViT/CoAtNet): fan-out normal for every conv part (stem, C blocks,
        # head projection), Xavier for T blocks; the classifier starts small with zero bias.
        init_hybrid(self.stem, self.stages, (ParallelTransformerBlock,))
        init_conv_fan_out(self.head.pre_pool)
        if isinstance(self.head.fc, nn.Linear):
            nn.init.trunc_normal_(self.head.fc.weight, std=0.02)
            nn.init.zeros_(self.head.fc.bias)

    # ---- Input sizes: window/grid attention also needs stage maps that split into windows

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if self.config.attention == "global":
            return
        h, w = x.shape[-2:]
        for axis, size in (("height", h), ("width", w)):
            misfit = self._window_misfit(size)
            if misfit is not None:
                stage, side = misfit
                kind, window = self.config.attention, self.config.window_size
                raise InputError(
                    f"input {axis} {size} gives a map {axis} of {side} at stages.{stage}, which {kind} attention "
                    f"cannot split into windows of {window}. Nearest valid {axis}s: "
                    f"{self._nearest_window_fit(size)}. Resize the images, or create the model with another "
                    "window_size."
                )

    def _window_misfit(self, size: int) -> tuple[int, int] | None:
        """(stage, map side) of the first attention stage whose map does not split into windows, else None."""
        for i, (pattern, info) in enumerate(zip(self.config.layout, self.feature_info[1:])):
            side = size // info["reduction"]
            if "T" in pattern and side % window_shape(side, side, self.config.window_size)[0]:
                return i, side
        return None

    def _nearest_window_fit(self, size: int) -> str:
        s = self.stride
        fits = [n for n in range(s, 2 * size + s * self.config.window_size, s) if self._window_misfit(n) is None]
        below = [n for n in fits if n < size]
        above = [n for n in fits if n > size]
        return " or ".join(str(n) for n in (below[-1:] + above[:1]))


# ---- Variants: our width/depth tables (docs/models/ascan.md); stochastic depth per the paper (A.2)

ASCAN_T = AsCANConfig(drop_path_rate=0.3)


_variant = family("ascan", AsCAN)


def _study(name: str, description: str, **overrides: Any) -> None:
    """A point of the paper's design space: ascan_t with one thing changed."""
    _variant(name, replace(ASCAN_T, **overrides), description, study_of="ascan_t", **overrides)


_variant(
    "ascan_test",
    AsCANConfig(
        layout=("C", "CT", "CT", "CT"),
        dims=(16, 32, 32, 64),
        stem_dims=(8, 16),
        head_dim=16,
        embed_dim=64,
        num_classes=10,
        img_size=64,
    ),
    "tiny AsCAN for tests",
    test=True,
)
_variant(
    "ascan_nano",
    AsCANConfig(
        layout=("CC", "CCCT", "CCTT", "CTTT"),
        dims=(24, 32, 64, 160),
        stem_dims=(16, 24),
        stem_stride=1,
        head_dim=16,
        embed_dim=512,
        num_classes=10,
        img_size=32,
        drop_path_rate=0.1,
    ),
    "AsCAN for 32x32 data and CPU demos (stride-1 stem)",
)
_variant(
    "ascan_t",
    ASCAN_T,
    "AsCAN-T: CC-CCCT-CCTT-CTTT (the paper's asymmetric C1), our widths",
    paper_top1=83.44,
)
_variant(
    "ascan_b",
    AsCANConfig(
        layout=("CC", "CCCT", "CCCCTTTT", "CTTT"),
        dims=(96, 192, 384, 768),
        stem_dims=(48, 96),
        drop_path_rate=0.4,
    ),
    "AsCAN-B: 1.5x AsCAN-T's widths, double-depth S3 (our design)",
)
_variant(
    "ascan_l",
    AsCANConfig(
        layout=("CC", "CCCT", "CCCCCCCTTTTT", "CTTTTT"),
        dims=(128, 256, 512, 1024),
        stem_dims=(64, 128),
        embed_dim=1536,
        drop_path_rate=0.5,
    ),
    "AsCAN-L: MaxViT-L widths and total depth, our layout; the paper's 173M / 30.7G",
    paper_params_m=173,
    paper_gmacs=30.7,
    paper_top1=85.2,
)

# Layout study (paper Tab. 2, Tab. 9; CoAtNet §3): same widths and depths as ascan_t, blocks rearranged.
_study(
    "ascan_t_symmetric",
    "AsCAN-T, symmetric CC-CCCC-CCTT-TTTT (the paper's counterpart)",
    layout=("CC", "CCCC", "CCTT", "TTTT"),
)
_study("ascan_t_tc", "AsCAN-T with T before C: CC-TCCC-TTCC-TTTC (paper Tab. 9)", layout=("CC", "TCCC", "TTCC", "TTTC"))
_study(
    "ascan_t_coat_cccc", "AsCAN-T blocks, CoAtNet stage types C-C-C-C (all conv)", layout=("CC", "CCCC", "CCCC", "CCCC")
)
_study("ascan_t_coat_ccct", "AsCAN-T blocks, CoAtNet stage types C-C-C-T", layout=("CC", "CCCC", "CCCC", "TTTT"))
_study(
    "ascan_t_coat_cctt",
    "AsCAN-T blocks, CoAtNet stage types C-C-T-T (CoAtNet's choice)",
    layout=("CC", "CCCC", "TTTT", "TTTT"),
)
_study("ascan_t_coat_cttt", "AsCAN-T blocks, CoAtNet stage types C-T-T-T", layout=("CC", "TTTT", "TTTT", "TTTT"))
# Block study (paper Tab. 1): one block kind swapped.
_study("ascan_t_mbconv", "AsCAN-T with MBConv C blocks (depthwise 3x3, MaxViT's)", conv_block="mbconv")
_study("ascan_t_convnext", "AsCAN-T with ConvNeXt C blocks (depthwise 7x7 + LN + MLP)", conv_block="convnext")
_study("ascan_t_window", "AsCAN-T with 7x7 window attention in T blocks", attention="window")
_study("ascan_t_grid", "AsCAN-T with multi-axis (window + grid, MaxViT) attention", attention="grid")
