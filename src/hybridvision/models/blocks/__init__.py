"""Shared, family-agnostic blocks. Every block is NCHW at its boundaries and takes explicit keyword arguments."""

from .act import ACTIVATIONS, get_act
from .attention import (
    Attention,
    CrossAttention,
    QKNorm,
    RelPosBias,
    attend,
    relative_index,
    resize_table,
    to_map,
    to_tokens,
)
from .cond import EMB_MODES, EmbModulation, check_context, check_emb, make_emb_modulation
from .conv import Downsample, MBConv, SqueezeExcite, make_divisible, make_pool, shortcut
from .convnext import ConvNeXtBlock
from .drop import DropPath, drop_path, drop_path_rates
from .fold import bn_scale_shift, fold_bn, fold_bn_before
from .fused_mbconv import ConvNormAct, FusedMBConv
from .head import ClassifierHead
from .init import init_conv_fan_out, init_hybrid, init_transformer
from .mlp import Mlp
from .modulation import MODULATIONS, ContextBranch, ModulationBlock, modulate
from .norm import NORMS, LayerNorm2d, RMSNorm2d, group_count, make_norm2d
from .rope import Rope2d, apply_rope, grid_positions, rope_angles
from .stage import Stage, build_blocks, check_layout
from .stem import ConvStem
from .transformer import ParallelTransformerBlock, TransformerBlock
from .window import ATTENTIONS, MultiAxisAttention, PartitionAttention, make_attention, partition, unpartition

__all__ = [
    "ACTIVATIONS",
    "ATTENTIONS",
    "EMB_MODES",
    "MODULATIONS",
    "NORMS",
    "get_act",
    "Attention",
    "ClassifierHead",
    "ContextBranch",
    "ConvNeXtBlock",
    "ConvNormAct",
    "ConvStem",
    "CrossAttention",
    "DropPath",
    "Downsample",
    "EmbModulation",
    "FusedMBConv",
    "LayerNorm2d",
    "MBConv",
    "Mlp",
    "ModulationBlock",
    "MultiAxisAttention",
    "ParallelTransformerBlock",
    "PartitionAttention",
    "QKNorm",
    "RMSNorm2d",
    "RelPosBias",
    "Rope2d",
    "SqueezeExcite",
    "Stage",
    "TransformerBlock",
    "apply_rope",
    "attend",
    "bn_scale_shift",
    "build_blocks",
    "check_context",
    "check_emb",
    "check_layout",
    "drop_path",
    "drop_path_rates",
    "fold_bn",
    "fold_bn_before",
    "grid_positions",
    "group_count",
    "init_conv_fan_out",
    "init_hybrid",
    "init_transformer",
    "make_divisible",
    "make_attention",
    "make_emb_modulation",
    "make_norm2d",
    "make_pool",
    "modulate",
    "partition",
    "relative_index",
    "resize_table",
    "rope_angles",
    "shortcut",
    "to_map",
    "to_tokens",
    "unpartition",
]
