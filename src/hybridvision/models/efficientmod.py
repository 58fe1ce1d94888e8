"""EfficientMod (Ma et al., "Efficient Modulation for Vision Networks", ICLR 2024, arXiv:2403.19963).

Written from the paper and checked against the official code (github.com/ma-xu/EfficientMod, Apache-2.0), whose
released checkpoints load here unchanged: ``convert_official`` maps its key names, and the reference fixtures
reproduce its outputs (``tests/test_efficientmod.py``). A conv stem (7x7 stride 4 + LayerNorm), four stages of
modulation blocks ('M': ``p(ctx(x) * v(x))``, paper eq. 5) optionally followed by plain pre-norm ViT blocks
('A'), a 3x3 stride-2 conv + LayerNorm between stages, final LayerNorm, average pool, linear classifier.

Differences from the official module tree, all invisible in the outputs:
- The downsampling conv sits at the *start* of the next stage, so the output of ``stages.K`` (feature level
  K + 1; level 0 is the stem) is the official feature map before ``layers.K.downsample`` (what its
  detection/segmentation backbones return).
- Blocks are NCHW at their boundaries and run their linear layers on channels-last views, which cost nothing
  when the map is stored channels_last (the family's ``memory_format``, chosen by measurement).
- Init: the official ``_init_weights`` tests ``isinstance(m, nn.Linear or nn.Conv2d)``, which is
  ``isinstance(m, nn.Linear)``, so its convolutions keep PyTorch's default init (weights kaiming-uniform with
  a=sqrt(5), biases U(+-1/sqrt(fan_in))). We initialise every conv like every linear layer, trunc-normal
  std 0.02 with zero bias: what the official expression was evidently written to do, and the ConvNeXt scheme
  whose training recipe (AdamW 4e-3, layer scale 1e-4, 7x7 depthwise context) EfficientMod follows. Each conv
  is either followed by a LayerNorm (stem, downsampling) or sits in a residual branch scaled by layer scale
  1e-4 (context conv), so its weight scale only matters relative to the next norm; the random biases were the
  real defect (they shift every token's context by up to 1/sqrt(49) before the GELU).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from torch import Tensor, nn

from ..config import check, one_of
from ..registry import family
from .blocks import (
    MODULATIONS,
    ClassifierHead,
    LayerNorm2d,
    ModulationBlock,
    TransformerBlock,
    build_blocks,
    drop_path_rates,
)
from .contract import Backbone, FeatureInfo, ModelConfig, Stage, check_stages

# ---- Config


@dataclass(frozen=True)
class EfficientModConfig(ModelConfig):
    """EfficientMod. ``layout`` has one string per stage: 'M' = modulation block, 'A' = attention block."""

    layout: tuple[str, ...] = ("MM", "MM", "MMMMMMA", "MMAA")  # EfficientMod-xxs
    dims: tuple[int, ...] = (32, 64, 128, 256)  # channels per stage
    expand_ratios: tuple[int, ...] = (1, 6)  # value expansion r of a stage's successive M blocks, cycled
    attn_mlp_ratios: tuple[float, ...] = (4.0, 4.0, 4.0, 4.0)  # MLP ratio of the A blocks, per stage
    num_heads: int = 8
    min_head_dim: int = 32  # head_dim = max(C // num_heads, min_head_dim): inner width may exceed C
    context_kernel: int = 7  # depthwise kernel of the context branch
    layer_scale_init: float = 1e-4  # M blocks only; A blocks have no layer scale
    stem_kernel: int = 7
    stem_stride: int = 4  # 2 keeps resolution for 32x32 inputs
    norm_eps: float = 1e-5
    # How ctx meets the rC-wide value: "reshape" (broadcast over a (.., r, C) view) or "repeat" (the official
    # tiled copy); identical outputs. Reshape measured faster on CPU (results/speed/cpu-efficientmod-modulation.json).
    modulation: str = "reshape"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_stages(
            self.layout,
            self.dims,
            "MA",
            stem_stride=self.stem_stride,
            stem_strides=(1, 2, 4),
            attn_mlp_ratios=self.attn_mlp_ratios,
        )
        one_of("modulation", self.modulation, MODULATIONS)
        check(
            bool(self.expand_ratios) and min(self.expand_ratios) >= 1,
            f"expand_ratios must be integers >= 1, got {self.expand_ratios}",
        )
        for name in ("stem_kernel", "context_kernel"):
            check(getattr(self, name) % 2 == 1, f"{name} must be odd (symmetric padding), got {getattr(self, name)}")
        check(self.num_heads >= 1 and self.min_head_dim >= 1, "num_heads and min_head_dim must be >= 1")

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.layout)

    @property
    def stride(self) -> int:
        return self.stem_stride * 2 ** (len(self.layout) - 1)  # stages 1.. halve the map, stage 0 keeps it

    def head_dim(self, dim: int) -> int:
        """The official rule: C / heads, but never below ``min_head_dim``."""
        return max(dim // self.num_heads, self.min_head_dim)


# ---- Stem and downsampling


class ConvNorm(nn.Module):
    """Strided conv then LayerNorm over channels: the stem (7x7/4) and the downsampling layers (3x3/2)."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, stride: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_dim, out_dim, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm = LayerNorm2d(out_dim, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x))


# ---- Model


class EfficientMod(Backbone):
    """Conv stem, four stages of modulation (and attention) blocks, LayerNorm, pooled linear classifier."""

    first_conv = "stem.proj"

    def __init__(self, config: EfficientModConfig) -> None:
        super().__init__()
        self.config = c = config
        self.stem = ConvNorm(c.in_chans, c.dims[0], c.stem_kernel, c.stem_stride, eps=c.norm_eps)
        rates = drop_path_rates(c.drop_path_rate, c.depths)  # linear over all blocks, as the official dpr
        stages, reduction, in_dim = [], c.stem_stride, c.dims[0]
        self.feature_info = [FeatureInfo(num_chs=in_dim, reduction=reduction, module="stem")]
        for i, (pattern, dim) in enumerate(zip(c.layout, c.dims)):
            down = ConvNorm(in_dim, dim, 3, 2, eps=c.norm_eps) if i > 0 else None
            reduction *= 2 if i > 0 else 1
            blocks = build_blocks(pattern, dim, dim, self._block_factories(i), rates[i], stride=1)
            stages.append(Stage(blocks, downsample=down))
            self.feature_info.append(FeatureInfo(num_chs=dim, reduction=reduction, module=f"stages.{i}"))
            in_dim = dim
        self.stages = nn.ModuleList(stages)
        self.norm = LayerNorm2d(in_dim, eps=c.norm_eps)
        self.head = ClassifierHead(in_dim, c.num_classes, drop=c.drop_rate)
        self._init_weights()

    def _block_factories(self, stage: int) -> dict[str, object]:
        c = self.config
        ratios = itertools.cycle(c.expand_ratios)  # 1, 6, 1, 6, ... over the stage's M blocks

        def mod_block(in_dim: int, out_dim: int, stride: int, dpr: float) -> nn.Module:
            return ModulationBlock(
                out_dim,
                expand_ratio=next(ratios),
                kernel_size=c.context_kernel,
                layer_scale_init=c.layer_scale_init,
                modulation=c.modulation,
                norm_eps=c.norm_eps,
                drop_path_rate=dpr,
            )

        def attn_block(in_dim: int, out_dim: int, stride: int, dpr: float) -> nn.Module:
            return TransformerBlock(
                out_dim,
                num_heads=c.num_heads,
                head_dim=c.head_dim(out_dim),
                mlp_ratio=c.attn_mlp_ratios[stage],
                qkv_bias=False,
                norm_eps=c.norm_eps,
                drop_path_rate=dpr,
            )

        return {"M": mod_block, "A": attn_block}

    def _init_weights(self) -> None:
        # Every conv and linear layer: trunc-normal(0.02), zero bias (see the module docstring for why convs
        # too). LayerNorms start at identity and layer scales at layer_scale_init (set at construction).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def convert_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Accept official EfficientMod state dicts (``patch_embed``, ``layers.*``) as well as our own."""
        if any(k.startswith(("patch_embed.", "layers.")) for k in state_dict):
            return convert_official(state_dict)
        return state_dict


# ---- Official checkpoints (ma-xu/EfficientMod key names)

_MOD_BLOCK_RENAMES = (
    ("gamma_1", "gamma"),
    ("mlp.fc1.", "value."),
    ("mlp.fc2.", "proj."),
    ("mlp.context_layer.f.", "context.f."),
    ("mlp.context_layer.context_list.0.", "context.dw."),
    ("mlp.context_layer.g.", "context.g."),
)
_BLOCK_KEY = re.compile(r"layers\.(\d+)\.blocks\.(\d+)\.(.+)")
_DOWN_KEY = re.compile(r"layers\.(\d+)\.downsample\.(.+)")


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map an official EfficientMod state dict to our names; tensors are passed through unchanged.

    ``patch_embed`` -> ``stem``; ``layers.i.blocks.j`` -> ``stages.i.blocks.j`` (modulation blocks renamed
    inside, attention blocks already share our names); ``layers.i.downsample`` -> ``stages.{i+1}.downsample``;
    ``head`` -> ``head.fc``. Modulation blocks are recognised by their ``gamma_1``.
    """
    mod_blocks = {k.removesuffix("gamma_1") for k in state_dict if k.endswith(".gamma_1")}
    return {_official_key(k, mod_blocks): v for k, v in state_dict.items()}


def _official_key(key: str, mod_blocks: set[str]) -> str:
    if key.startswith("patch_embed."):
        return "stem." + key.removeprefix("patch_embed.")
    if key.startswith("head."):
        return "head.fc." + key.removeprefix("head.")
    if m := _DOWN_KEY.fullmatch(key):
        return f"stages.{int(m[1]) + 1}.downsample.{m[2]}"
    if m := _BLOCK_KEY.fullmatch(key):
        rest = m[3]
        if key.removesuffix(rest) in mod_blocks:
            for old, new in _MOD_BLOCK_RENAMES:
                rest = rest.replace(old, new) if rest.startswith(old) else rest
        return f"stages.{m[1]}.blocks.{m[2]}.{rest}"
    return key  # norm.* keeps its name


# ---- Variants (official factories; paper Table 1/3 numbers in the cards)

_IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "interpolation": "bicubic", "crop_pct": 0.875}


def _card(params_m: float, gmacs: float, top1: float, top1_distilled: float, released: str) -> dict:
    # gmacs: the official model's exact count (spec §2); the paper prints it rounded (0.6/0.8/1.4/1.5G).
    return {
        "paper_params_m": params_m,
        "paper_gmacs": gmacs,
        "paper_top1": top1,
        "paper_top1_distilled": top1_distilled,
        "released_checkpoint": released,
        **_IMAGENET,
    }


_variant = family("efficientmod", EfficientMod)

_variant(
    "efficientmod_test",
    EfficientModConfig(
        layout=("M", "MM", "MA", "A"),
        dims=(16, 24, 32, 48),
        expand_ratios=(1, 4),
        num_heads=2,
        min_head_dim=24,  # stage 2: heads x head_dim = 48 > C = 32, as in the official small stages
        num_classes=10,
        img_size=64,
    ),
    "tiny EfficientMod for tests",
    test=True,
)
_variant(
    "efficientmod_nano",
    EfficientModConfig(
        layout=("MM", "MM", "MMMA", "MA"),
        dims=(32, 64, 128, 192),
        expand_ratios=(1, 6),
        stem_kernel=3,
        stem_stride=2,  # stages at 1/2 .. 1/16: 16x16 down to 2x2 for 32x32 inputs
        num_classes=10,
        img_size=32,
    ),
    "small-data EfficientMod for 32x32 inputs (1.7M params, 27 MMACs)",
)
_variant(
    "efficientmod_xxs",
    EfficientModConfig(layout=("MM", "MM", "MMMMMMA", "MMAA"), dims=(32, 64, 128, 256), expand_ratios=(1, 6)),
    "EfficientMod-xxs (hybrid)",
    **_card(4.7, 0.58, 76.0, 77.1, "distilled"),
)
_variant(
    "efficientmod_xs",
    EfficientModConfig(layout=("MMM", "MMM", "MMMMAAA", "MMAAA"), dims=(32, 64, 144, 288), expand_ratios=(1, 4)),
    "EfficientMod-xs (hybrid)",
    **_card(6.6, 0.77, 78.3, 79.4, "distilled"),
)
_variant(
    "efficientmod_s",
    EfficientModConfig(
        layout=("MMMM", "MMMM", "MMMMMMMMAAAA", "MMMMAAAA"),
        dims=(32, 64, 144, 312),
        expand_ratios=(1, 6),
        attn_mlp_ratios=(4.0, 4.0, 4.0, 5.0),
        drop_path_rate=0.02,
    ),
    "EfficientMod-s (hybrid)",
    **_card(12.9, 1.40, 81.0, 81.9, "distilled"),
)
_variant(
    "efficientmod_s_conv",
    EfficientModConfig(
        layout=("M" * 4, "M" * 4, "M" * 12, "M" * 8),
        dims=(40, 80, 160, 344),
        expand_ratios=(1, 6),
        drop_path_rate=0.02,
    ),
    "EfficientMod-s-Conv (pure conv)",
    **_card(12.9, 1.47, 80.5, 81.5, "not distilled (80.5)"),
)
