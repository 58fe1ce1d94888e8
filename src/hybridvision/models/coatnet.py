"""CoAtNet (Dai, Liu, Le, Tan, NeurIPS 2021, arXiv:2106.04803): MBConv stages, then relative-attention stages.

Written from the paper. The paper configs ``coatnet_0`` .. ``coatnet_4`` follow Table 3: head size 32, MBConv
expansion 4 and SE 0.25 of the output width, pre-norm blocks, a 2x2 max pool on both branches of every
downsampling block (eqs. 4-5) and relative attention (eq. 3). The classifier keeps a tanh pre-logits layer
(MaxViT's head, as timm's paper-like configs do); with it the parameter counts land on the paper's.

timm's trained layouts ``coatnet_nano_rw_224`` and ``coatnet_0_rw_224`` differ in block counts, stride
placement, pooling, activations and head; they are the same code with other options, and timm's weights load
through ``convert_timm`` (key names, per-head qkv order, table layout, 1x1-conv -> linear shapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..config import one_of
from ..registry import family
from .blocks import (
    ClassifierHead,
    ConvStem,
    LayerNorm2d,
    MBConv,
    TransformerBlock,
    get_act,
    init_hybrid,
)
from .blocks.conv import POOLS
from .contract import Backbone, FeatureInfo, ModelConfig, build_stages, check_stages

# ---- Config


@dataclass(frozen=True)
class CoAtNetConfig(ModelConfig):
    """CoAtNet. ``layout`` has one string per stage, 'C' = MBConv block, 'T' = relative-attention block."""

    layout: tuple[str, ...] = ("CC", "CCC", "TTTTT", "TT")  # CoAtNet-0: C-C-T-T with 2/3/5/2 blocks
    dims: tuple[int, ...] = (96, 192, 384, 768)  # channels per stage (S1..S4)
    stem_dims: tuple[int, int] = (64, 64)  # S0: two 3x3 convs
    stem_stride: int = 2  # 1 keeps full resolution for small inputs (32x32)
    head_dim: int = 32  # channels per attention head
    mlp_ratio: float = 4.0
    pool: str = "max2"  # pool of downsampling blocks: "max2" (paper) or "avg2" (timm)
    conv_act: str = "gelu"  # MBConv and stem activation (timm rw: silu)
    conv_expand_from: str = "out"  # MBConv x4 expansion and SE 0.25 of the "out" (MaxViT) or "in" width
    conv_stride_mode: str = "pool"  # "pool" (pool both branches), "1x1" (strided expand), "dw" (strided dw)
    conv_pre_norm_act: bool = False  # activation after the MBConv pre-norm (timm coatnet_0_rw)
    conv_bias: bool = True  # bias on the MBConv projection and shortcut convs
    se_act: str = "silu"
    se_early: bool = False  # SE before the depthwise norm (timm coatnet_0_rw)
    attn_expand_first: bool = True  # widen in qkv (True) or in the output projection (False, timm rw)
    attn_shortcut_bias: bool = True
    head_hidden_dim: int = 768  # tanh pre-logits width; 0 = final LayerNorm on the map + linear classifier

    def __post_init__(self) -> None:
        super().__post_init__()
        check_stages(self.layout, self.dims, "CT", stem_stride=self.stem_stride, head_dim=self.head_dim)
        one_of("pool", self.pool, POOLS)
        one_of("conv_expand_from", self.conv_expand_from, ("in", "out"))
        one_of("conv_stride_mode", self.conv_stride_mode, ("pool", "1x1", "dw"))

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.layout)

    @property
    def stride(self) -> int:
        return self.stem_stride * 2 ** len(self.layout)  # every stage halves the map


# ---- Model (paper fig. 4)


class CoAtNet(Backbone):
    """Conv stem (S0), four stages of MBConv / relative-attention blocks (S1-S4), pooled classifier."""

    def __init__(self, config: CoAtNetConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = ConvStem(config.in_chans, config.stem_dims, act=get_act(config.conv_act), stride=config.stem_stride)
        img_h, img_w = config.img_hw
        self.stages, stage_info = build_stages(
            config.layout,
            config.dims,
            config.stem_dims[1],
            config.stem_stride,
            lambda reduction: self._block_factories((img_h // reduction, img_w // reduction)),
            config.drop_path_rate,
        )
        stem_info = FeatureInfo(num_chs=config.stem_dims[1], reduction=config.stem_stride, module="stem")
        self.feature_info = [stem_info, *stage_info]
        in_dim = config.dims[-1]
        hidden = config.head_hidden_dim
        self.norm = nn.Identity() if hidden else LayerNorm2d(in_dim, eps=1e-6)
        self.head = ClassifierHead(
            in_dim, config.num_classes, norm=bool(hidden), hidden_dim=hidden, drop=config.drop_rate
        )
        self._init_weights()

    def _block_factories(self, grid: tuple[int, int]) -> dict[str, Any]:
        c = self.config

        def conv_block(in_dim: int, out_dim: int, stride: int, dpr: float) -> nn.Module:
            return MBConv(
                in_dim,
                out_dim,
                stride=stride,
                expand_from=c.conv_expand_from,
                stride_mode=c.conv_stride_mode,
                pool=c.pool,
                se_act=get_act(c.se_act),
                se_early=c.se_early,
                act=get_act(c.conv_act),
                pre_norm_act=c.conv_pre_norm_act,
                bias=c.conv_bias,
                drop_path_rate=dpr,
            )

        def attn_block(in_dim: int, out_dim: int, stride: int, dpr: float) -> nn.Module:
            return TransformerBlock(
                in_dim,
                out_dim,
                stride=stride,
                head_dim=c.head_dim,
                expand_first=c.attn_expand_first,
                rel_pos_size=grid,
                mlp_ratio=c.mlp_ratio,
                pool=c.pool,
                shortcut_bias=c.attn_shortcut_bias,
                drop_path_rate=dpr,
            )

        return {"C": conv_block, "T": attn_block}

    def _init_weights(self) -> None:
        # timm's 'vit_eff' scheme: fan-out normal in conv blocks, Xavier in attention blocks; head default.
        init_hybrid(self.stem, self.stages, (TransformerBlock,))

    def convert_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Accept timm ``maxxvit`` CoAtNet state dicts as well as our own."""
        if any(k.endswith(("conv1_1x1.weight", "relative_position_bias_table")) for k in state_dict):
            return convert_timm(state_dict, self.config.head_dim)
        return state_dict


# ---- timm checkpoints

_TIMM_RENAMES = (
    ("conv1_1x1.", "conv_expand."),
    ("conv2_kxk.", "conv_dw."),
    ("conv3_1x1.", "conv_project."),
    ("se_early.", "se."),
    ("shortcut.expand.", "shortcut.proj."),
    ("norm1.norm.", "norm1."),
    ("attn.rel_pos.relative_position_bias_table", "attn.rel_pos.table"),
    ("head.pre_logits.fc.", "head.pre_logits.0."),
)
_LINEAR_SUFFIXES = (
    "attn.qkv.weight",
    "attn.proj.weight",
    "mlp.fc1.weight",
    "mlp.fc2.weight",
    "se.fc1.weight",
    "se.fc2.weight",
)


def convert_timm(state_dict: dict[str, Tensor], head_dim: int) -> dict[str, Tensor]:
    """Map a timm CoAtNet state dict (``coatnet_*`` in ``maxxvit.py``) to our key names and layouts."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith("relative_position_index"):
            continue  # rebuilt from the grid size
        for old, new in _TIMM_RENAMES:
            key = key.replace(old, new)
        if key.endswith(_LINEAR_SUFFIXES) and value.dim() == 4:
            value = value[:, :, 0, 0]  # 1x1 conv (out, in, 1, 1) -> linear (out, in)
        if key.endswith(("attn.qkv.weight", "attn.qkv.bias")):
            value = _qkv_from_head_first(value, head_dim)
        if key.endswith("attn.rel_pos.table"):
            value = _table_from_timm(value)
        out[key] = value
    return out


def _qkv_from_head_first(w: Tensor, head_dim: int) -> Tensor:
    """timm orders qkv channels per head [q0 k0 v0 q1 ...]; ours are [q | k | v], each (heads, head_dim)."""
    heads = w.shape[0] // (3 * head_dim)
    w = w.reshape(heads, 3, head_dim, *w.shape[1:])  # (h, 3, d, ...)
    return w.transpose(0, 1).reshape(3 * heads * head_dim, *w.shape[3:])  # (3, h, d, ...) -> (3hd, ...)


def _table_from_timm(table: Tensor) -> Tensor:
    """timm's ((2H-1)(2W-1), heads) table for a square grid -> ours (heads, 2H-1, 2W-1)."""
    side = round(table.shape[0] ** 0.5)
    if side * side != table.shape[0]:
        raise ValueError(f"cannot infer the grid of a non-square timm position table of {table.shape[0]} rows")
    return table.t().reshape(table.shape[1], side, side)  # (L, h) -> (h, 2H-1, 2W-1)


# ---- Variants (paper Table 3; timm's trained layouts)

_PAPER = dict(pool="max2", conv_stride_mode="pool")
_TIMM_DATA = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bicubic"}


def _paper(dims: tuple[int, ...], depths: tuple[int, ...], stem: int) -> CoAtNetConfig:
    layout = tuple(kind * d for kind, d in zip("CCTT", depths))
    return CoAtNetConfig(layout=layout, dims=dims, stem_dims=(stem, stem), head_hidden_dim=dims[-1], **_PAPER)


_RW = dict(
    stem_dims=(32, 64),
    pool="avg2",
    conv_act="silu",
    conv_expand_from="in",
    conv_stride_mode="pool",
    attn_expand_first=False,
    head_hidden_dim=0,
)

_variant = family("coatnet", CoAtNet)

_variant(
    "coatnet_test",
    CoAtNetConfig(
        layout=("C", "C", "TT", "T"),
        dims=(16, 24, 32, 64),
        stem_dims=(8, 16),
        head_dim=16,
        head_hidden_dim=32,
        num_classes=10,
        img_size=64,
    ),
    "tiny CoAtNet for tests",
    test=True,
)
_variant(
    "coatnet_nano",
    CoAtNetConfig(
        layout=("C", "CC", "TTT", "TT"),
        dims=(32, 64, 128, 192),
        stem_dims=(16, 32),
        stem_stride=1,
        head_hidden_dim=0,
        num_classes=10,
        img_size=32,
    ),
    "small-data CoAtNet for 32x32 inputs (stem stride 1)",
)
_variant(
    "coatnet_0",
    _paper((96, 192, 384, 768), (2, 3, 5, 2), 64),
    "paper CoAtNet-0",
    paper_params_m=25,
    paper_gmacs=4.2,
    paper_top1=81.6,
)
_variant(
    "coatnet_1",
    _paper((96, 192, 384, 768), (2, 6, 14, 2), 64),
    "paper CoAtNet-1",
    paper_params_m=42,
    paper_gmacs=8.4,
    paper_top1=83.3,
)
_variant(
    "coatnet_2",
    _paper((128, 256, 512, 1024), (2, 6, 14, 2), 128),
    "paper CoAtNet-2",
    paper_params_m=75,
    paper_gmacs=15.7,
    paper_top1=84.1,
)
_variant(
    "coatnet_3",
    _paper((192, 384, 768, 1536), (2, 6, 14, 2), 192),
    "paper CoAtNet-3",
    paper_params_m=168,
    paper_gmacs=34.7,
    paper_top1=84.5,
)
_variant(
    "coatnet_4",
    _paper((192, 384, 768, 1536), (2, 12, 28, 2), 192),
    "paper CoAtNet-4",
    paper_params_m=275,
    paper_gmacs_384=189.5,
)
_variant(
    "coatnet_nano_rw_224",
    CoAtNetConfig(layout=("CCC", "CCCC", "TTTTTT", "TTT"), dims=(64, 128, 256, 512), **_RW),
    "timm coatnet_nano_rw_224 layout (timm weights load)",
    timm_twin="coatnet_nano_rw_224",
    timm_params_m=15.14,
    timm_top1=81.70,
    crop_pct=0.9,
    **_TIMM_DATA,
)
_variant(
    "coatnet_0_rw_224",
    CoAtNetConfig(
        layout=("CC", "CCC", "TTTTTTT", "TT"),
        dims=(96, 192, 384, 768),
        conv_pre_norm_act=True,
        conv_bias=False,
        se_act="relu",
        se_early=True,
        attn_shortcut_bias=False,
        **_RW,
    ),
    "timm coatnet_0_rw_224 layout (timm weights load)",
    timm_twin="coatnet_0_rw_224",
    timm_params_m=27.44,
    timm_top1=82.40,
    crop_pct=0.95,
    **_TIMM_DATA,
)
