"""The AsCAN UNet's typed config, in a module of its own: reading it (``hybridvision models``, the registry)
imports neither the model nor diffusers, whose ``ModelMixin`` the model subclasses."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ...config import at_least, check, one_of
from ...models.blocks import check_layout
from ...models.contract import InputError, nearest_sizes, pair

CONTEXTS = ("class", "text")

# ---- Config


@dataclass(frozen=True)
class DenoiserConfig:
    """What every denoiser config has: the fields ``create_model`` sets, and the sizes it accepts."""

    in_chans: int = 4  # sample channels (a VAE latent's, or 1/3 in pixel space)
    img_size: int | tuple[int, int] = 32  # the size `info` counts at; any multiple of `stride` runs
    dims: tuple[int, ...] = (160, 320, 640)  # width per level, highest resolution first
    num_classes: int = 1000  # class labels; the embedding has one more row: the null label
    drop_path_rate: float = 0.0  # stochastic depth at the deepest block

    @property
    def img_hw(self) -> tuple[int, int]:
        return pair(self.img_size)

    @property
    def stride(self) -> int:
        """Sizes must be multiples of this: each level after the first halves the map."""
        return 2 ** (len(self.dims) - 1)


@dataclass(frozen=True)
class AsCANUNetConfig(DenoiserConfig):
    """One AsCAN UNet. Layouts and heads per level, highest resolution first; level i > 0 starts with stride 2."""

    out_chans: int = 0  # predicted channels; 0 = in_chans (epsilon has the sample's shape)
    down: tuple[str, ...] = ("CC", "CCT", "CTT")  # blocks per down level, C before T (the classifier's rule)
    mid: str = "TT"  # blocks of the middle, at the lowest resolution
    up: tuple[str, ...] = ()  # blocks per up level (highest resolution first); () = the same as `down`
    head_dim: int = 64  # the paper's T2I heads 5/10/20 at 320/640/1280
    num_heads: tuple[int, ...] = ()  # heads per level; () = max(1, dim // head_dim)
    mlp_ratio: float = 4.0
    expand_ratio: float = 4.0  # FusedMBConv expansion
    time_dim: int = 0  # time-embedding width; 0 = 4 * dims[0] (DDPM, SDXL)
    class_tokens: int = 1  # context tokens per class (our choice; the paper does not say)
    context_dim: int = 768  # cross-attention context width (the paper's class model: 768; text: the encoder's)
    context: str = "class"  # "class": labels -> learned tokens; "text": a frozen encoder's tokens via the text adapter
    adapter_depth: int = 2  # text: T blocks adapting the encoder's tokens (the paper: 2)
    adapter_heads: int = 1  # text: their heads, at the encoder's width `context_dim` (the paper: 1 head of 4096)
    pooled_text: bool = False  # text: also add the prompt's pooled vector to the time embedding (SDXL; not the paper)

    def __post_init__(self) -> None:
        levels = len(self.dims)
        check(
            levels >= 1 and len(self.down) == levels and len(self.up) in (0, levels),
            f"dims has {levels} levels, down {len(self.down)} and up {len(self.up)}: give one layout string "
            "per level (up may be () to mirror down)",
        )
        check_layout((*self.down, self.mid, *self.up), "CT")
        check(
            not self.num_heads or len(self.num_heads) == levels,
            f"num_heads needs one entry per level ({levels}), got {self.num_heads}",
        )
        at_least(self, 1, "in_chans", "head_dim", "context_dim", "class_tokens")
        check(self.num_classes >= 0, f"num_classes must be >= 0 (0 = context only), got {self.num_classes}")
        one_of("context", self.context, CONTEXTS)
        check(
            not self.pooled_text or self.context == "text",
            "pooled_text needs context='text': class models have no prompt to pool",
        )

    @property
    def up_layout(self) -> tuple[str, ...]:
        return self.up or self.down

    @property
    def emb_dim(self) -> int:
        return self.time_dim or 4 * self.dims[0]

    def heads(self, level: int) -> int:
        return self.num_heads[level] if self.num_heads else max(1, self.dims[level] // self.head_dim)

    # diffusers' names of the same facts, read by code written for any diffusers UNet (``unet.config.in_channels``)

    @property
    def in_channels(self) -> int:
        return self.in_chans

    @property
    def out_channels(self) -> int:
        return self.out_chans or self.in_chans

    @property
    def sample_size(self) -> tuple[int, int]:
        return self.img_hw


def check_size(x: Tensor, stride: int) -> None:
    """Raise InputError naming the nearest valid sizes when H or W is not a multiple of a UNet's ``stride``."""
    h, w = x.shape[-2:]
    if h % stride or w % stride:
        raise InputError(
            f"sample size {h}x{w} is not a multiple of {stride}, the stride of this UNet. Nearest valid sizes: "
            f"height {nearest_sizes(h, stride)}, width {nearest_sizes(w, stride)}; pad the images."
        )
