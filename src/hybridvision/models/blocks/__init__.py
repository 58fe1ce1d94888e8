"""Shared, family-agnostic blocks. Every block is NCHW at its boundaries and takes explicit keyword arguments."""

from .act import ACTIVATIONS, get_act
from .attention import Attention, RelPosBias, relative_index, resize_table
from .conv import (
    Downsample,
    MBConv,
    SqueezeExcite,
    fold_bn,
    fold_bn_before,
    make_divisible,
    make_pool,
    shortcut,
)
from .drop import DropPath, drop_path, drop_path_rates
from .head import ClassifierHead
from .init import init_conv_fan_out, init_transformer
from .mlp import Mlp
from .norm import LayerNorm2d
from .stage import build_blocks, check_layout
from .stem import ConvStem
from .transformer import TransformerBlock

__all__ = [
    "ACTIVATIONS",
    "get_act",
    "Attention",
    "ClassifierHead",
    "ConvStem",
    "DropPath",
    "Downsample",
    "LayerNorm2d",
    "MBConv",
    "Mlp",
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
    "init_transformer",
    "make_divisible",
    "make_pool",
    "relative_index",
    "resize_table",
    "shortcut",
]
