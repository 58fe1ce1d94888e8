"""Shared, family-agnostic blocks. Every block is NCHW at its boundaries and takes explicit keyword arguments."""

from .act import ACTIVATIONS, get_act
from .attention import Attention, RelPosBias, relative_index, resize_table
from .conv import (
    ConvNormAct,
    Downsample,
    FusedMBConv,
    MBConv,
    SqueezeExcite,
    fold_bn,
    fold_bn_before,
    make_divisible,
    make_pool,
    shortcut,
)
from .convnext import ConvNeXtBlock
from .drop import DropPath, drop_path, drop_path_rates
from .head import ClassifierHead
from .init import init_conv_fan_out, init_hybrid, init_transformer
from .mlp import Mlp
from .norm import LayerNorm2d
from .stage import build_blocks, check_layout
from .stem import ConvStem
from .transformer import ParallelTransformerBlock, TransformerBlock
from .window import ATTENTIONS, MultiAxisAttention, PartitionAttention, make_attention, partition, unpartition

__all__ = [
    "ACTIVATIONS",
    "ATTENTIONS",
    "get_act",
    "Attention",
    "ClassifierHead",
    "ConvNeXtBlock",
    "ConvNormAct",
    "ConvStem",
    "DropPath",
    "Downsample",
    "FusedMBConv",
    "LayerNorm2d",
    "MBConv",
    "Mlp",
    "MultiAxisAttention",
    "ParallelTransformerBlock",
    "PartitionAttention",
    "RelPosBias",
    "SqueezeExcite",
    "TransformerBlock",
    "build_blocks",
    "check_layout",
    "drop_path",
    "drop_path_rates",
    "fold_bn",
    "fold_bn_before",
    "init_conv_fan_out",
    "init_hybrid",
    "init_transformer",
    "make_divisible",
    "make_attention",
    "make_pool",
    "partition",
    "relative_index",
    "resize_table",
    "shortcut",
    "unpartition",
]
