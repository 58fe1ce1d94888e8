"""The model contract every backbone honours, with timm's names and timm's semantics: stem -> stages -> norm -> head.

``Backbone`` implements the contract once for all families; a family's ``__init__`` only builds ``stem``,
``stages``, ``norm``, ``head`` and ``feature_info``. Task packages (seg, diffusion, train) use backbones only
through these members, typed by ``BackboneProtocol``. ``docs/timm.md`` lists the contract next to timm's.

Feature levels are numbered as in timm: 0 is the stem's output, 1..n the stages' outputs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, runtime_checkable

import torch
from torch import Tensor, nn

from ..config import check, one_of
from .blocks import ClassifierHead
from .blocks.attention import RelPosBias
from .blocks.drop import drop_path_rates
from .blocks.stage import BlockFactory, Stage, build_blocks, check_layout

GLOBAL_POOLS = ("avg", "max", "avgmax", "")  # "" = no pooling: the head runs at every position (timm's meaning)
OUTPUT_FORMATS = ("NCHW", "NHWC")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TIMM_PREFIX = "hybridvision_"  # our models' names in timm's registry (see hybridvision.timm)

__all__ = ["Backbone", "BackboneProtocol", "FeatureInfo", "InputError", "ModelConfig", "Stage", "build_stages"]


class InputError(ValueError):
    """An input the model cannot take (wrong rank, channels, dtype, batch or spatial size)."""


class FeatureInfo(TypedDict):
    """One feature level as timm describes it (a plain dict at run time, so timm's ``FeatureInfo`` reads it)."""

    num_chs: int  # channels
    reduction: int  # input size / map size
    module: str  # the module that produces it ("stem", "stages.0", ...)


@dataclass(frozen=True)
class ModelConfig:
    """Instantiation fields every family config shares (the ``create_model`` keyword arguments)."""

    in_chans: int = 3
    num_classes: int = 1000  # 0 = no classifier: forward returns pooled features
    img_size: int | tuple[int, int] = 224  # size the position tables are built for; others resize at run time
    drop_rate: float = 0.0  # dropout before the classifier
    drop_path_rate: float = 0.0  # stochastic depth at the deepest block, linear from 0
    global_pool: str = "avg"  # "avg", "max", "avgmax" or "" (no pooling: forward returns a map)

    def __post_init__(self) -> None:
        check(self.in_chans >= 1, f"in_chans must be >= 1, got {self.in_chans}")
        check(self.num_classes >= 0, f"num_classes must be >= 0, got {self.num_classes}")
        for name in ("drop_rate", "drop_path_rate"):
            check(0.0 <= getattr(self, name) < 1.0, f"{name} must be in [0, 1), got {getattr(self, name)}")
        one_of("global_pool", self.global_pool, GLOBAL_POOLS)
        check_img_size(self.img_size, self._family_stride(), type(self).__name__.removesuffix("Config"))

    def _family_stride(self) -> int:
        """The family's total stride, or 1 for the bare contract (and for layouts its own checks will refuse)."""
        try:
            stride = self.stride
        except NotImplementedError:
            return 1
        return stride if isinstance(stride, int) and stride >= 1 else 1

    @property
    def img_hw(self) -> tuple[int, int]:
        return pair(self.img_size)

    @property
    def stride(self) -> int:
        """Total stride of the family's network (each family config says how its stages reduce)."""
        raise NotImplementedError


def check_stages(
    layout: Sequence[str],
    dims: Sequence[int],
    letters: str,
    *,
    stem_stride: int,
    stem_strides: Sequence[int] = (1, 2),
    head_dim: int = 0,
    attention: str = "T",
    **per_stage: Sequence[Any],
) -> None:
    """The layout checks every family config shares.

    One layout string and one width per stage (and one entry of every ``per_stage`` sequence), only ``letters``
    in the layout, positive widths, a stem stride from ``stem_strides``, and, when ``head_dim`` is given, widths
    that split into heads of ``head_dim`` in every stage holding an ``attention`` block.
    """
    check(bool(layout), "layout needs at least one stage, e.g. ('CC', 'CCCT', 'CCTT', 'CTTT')")
    for key, values in {"dims": dims, **per_stage}.items():
        check(
            len(values) == len(layout),
            f"layout has {len(layout)} stages but {key} has {len(values)}; give one entry per stage",
        )
    check_layout(layout, letters)
    one_of("stem_stride", stem_stride, stem_strides)
    check(min(dims) >= 1, f"dims must be positive, got {tuple(dims)}")
    for i, (pattern, dim) in enumerate(zip(layout, dims)):
        check(
            not (head_dim and attention in pattern and dim % head_dim),
            f"stage {i} ({pattern!r}) has attention but its width {dim} is not a multiple of "
            f"head_dim {head_dim}; change dims[{i}] or head_dim",
        )


def check_img_size(img_size: int | Sequence[int], stride: int, family: str = "the model") -> None:
    """Raise InputError naming the valid sizes unless both sides of ``img_size`` are positive multiples of
    ``stride`` (a smaller input leaves no map at the deepest stage; another size cannot run at all)."""
    h, w = pair(img_size)
    if h >= stride and w >= stride and not h % stride and not w % stride:
        return
    size = str(h) if h == w else f"{h}x{w}"
    valid = (
        nearest_sizes(h, stride) if h == w else f"height {nearest_sizes(h, stride)}, width {nearest_sizes(w, stride)}"
    )
    raise InputError(
        f"img_size {size} is not a positive multiple of {stride}, the total stride of {family}. Nearest valid "
        f"sizes: {valid} (any multiple of {stride})"
    )


def pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def default_cfg(config: ModelConfig, card: Mapping[str, Any], *, architecture: str, first_conv: str) -> dict:
    """timm's ``pretrained_cfg`` of a model (only timm's ``PretrainedCfg`` keys): input, data and layer facts.

    Data facts (mean/std, interpolation, crop) come from the model card, ImageNet's where the card is silent.
    """
    h, w = config.img_hw
    s = config.stride
    return {
        "architecture": architecture,
        "input_size": (config.in_chans, h, w),
        "min_input_size": (config.in_chans, s, s),
        "fixed_input_size": False,  # any multiple of the stride runs; position tables resample
        "pool_size": (h // s, w // s),
        "interpolation": card.get("interpolation", "bicubic"),
        "crop_pct": card.get("crop_pct", 0.875),
        "crop_mode": "center",
        "mean": tuple(card.get("mean", IMAGENET_MEAN)),
        "std": tuple(card.get("std", IMAGENET_STD)),
        "num_classes": config.num_classes,
        "first_conv": first_conv,
        "classifier": "head.fc",
        "license": "apache-2.0",
    }


@runtime_checkable
class BackboneProtocol(Protocol):
    """What task packages may rely on."""

    config: Any
    feature_info: list[FeatureInfo]

    def forward_features(self, x: Tensor) -> Tensor: ...
    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor: ...
    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]: ...
    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None: ...


def build_stages(
    layout: Sequence[str],
    dims: Sequence[int],
    in_dim: int,
    in_reduction: int,
    make_factories: Callable[[int], Mapping[str, BlockFactory]],
    drop_path_rate: float = 0.0,
) -> tuple[nn.ModuleList, list[FeatureInfo]]:
    """Stages from a layout (a string per stage): stage i halves the map in its first block and has width dims[i].

    ``make_factories(reduction)`` gives the letter -> block factories of the stage at that total reduction
    (relative-position tables are sized from it). Stochastic depth rises linearly over all blocks. Returns the
    stages and their feature levels (the stem's level is the family's to add in front).
    """
    rates = drop_path_rates(drop_path_rate, [len(p) for p in layout])
    stages, info, reduction = [], [], in_reduction
    for i, (pattern, dim) in enumerate(zip(layout, dims)):
        reduction *= 2
        stages.append(Stage(build_blocks(pattern, in_dim, dim, make_factories(reduction), rates[i])))
        info.append(FeatureInfo(num_chs=dim, reduction=reduction, module=f"stages.{i}"))
        in_dim = dim
    return nn.ModuleList(stages), info


def nearest_sizes(size: int, stride: int) -> str:
    lo = max(stride, size // stride * stride)
    hi = max(stride, math.ceil(size / stride) * stride)
    return str(lo) if lo == hi else f"{lo} or {hi}"


def pool_map(x: Tensor, kind: str) -> Tensor:
    """(B, C, H, W) -> (B, C) by ``kind`` ("avg", "max", "avgmax": the mean of both)."""
    if kind == "avg":
        return x.mean((2, 3))
    peak = x.amax((2, 3))
    return peak if kind == "max" else 0.5 * (peak + x.mean((2, 3)))


class Backbone(nn.Module):
    """Shared implementation of the contract; subclasses build ``stem``, ``stages``, ``norm``, ``head``."""

    config: ModelConfig
    stem: nn.Module
    stages: nn.ModuleList
    norm: nn.Module
    head: ClassifierHead
    feature_info: list[FeatureInfo]  # stem first, then every stage
    memory_format: torch.memory_format = torch.channels_last  # the layout the trunk runs in (measured per family)
    first_conv: str = "stem.conv1"  # the convolution that reads the input (timm's pretrained_cfg names it)
    model_name: str = ""  # the registered name (set by create_model)
    card: Mapping[str, Any] = {}  # the registry's facts about that name (set by create_model)
    fused: bool = False  # fuse() has folded inference-only structure (BatchNorm, layer scale) into weights

    # ---- Facts, in timm's words

    @property
    def stride(self) -> int:
        """Total stride: inputs must be a multiple of it."""
        return self.feature_info[-1]["reduction"]

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def num_features(self) -> int:
        """Channels of ``forward_features``' output (timm's definition)."""
        return self.feature_info[-1]["num_chs"]

    @property
    def global_pool(self) -> str:
        """The pooling type, timm's attribute: "avg", "max", "avgmax", or "" (no pooling: forward returns a map).

        It reads the config, so ``reset_classifier(n, global_pool)`` (the one way to change it) keeps it in step.
        """
        return self.config.global_pool

    @property
    def head_hidden_size(self) -> int:
        """Width of the pooled pre-logits features (``forward_head(x, pre_logits=True)``)."""
        return self.head.num_features

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's pretrained_cfg: input size, mean/std, interpolation, crop, classifier and first-conv names.

        Its ``architecture`` is the model's name in timm's registry, so what timm's own ``push_to_hf_hub`` writes
        of it loads back in timm (once ``hybridvision.timm`` is imported).
        """
        name = TIMM_PREFIX + self.model_name if self.model_name else type(self).__name__.lower()
        return default_cfg(self.config, self.card, architecture=name, first_conv=self.first_conv)

    @property
    def default_cfg(self) -> dict[str, Any]:
        return self.pretrained_cfg

    # ---- Inputs

    def check_input(self, x: Tensor) -> None:
        """Raise InputError with the fix when ``x`` is not a batch this model can take."""
        if not isinstance(x, Tensor):
            raise InputError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            hint = " Add a batch dimension with x.unsqueeze(0)." if x.dim() == 3 else ""
            raise InputError(f"expected a 4-D (B, C, H, W) batch, got shape {tuple(x.shape)}.{hint}")
        if x.shape[0] == 0:
            raise InputError(f"got an empty batch (shape {tuple(x.shape)}); skip the call when there are no images")
        self._check_dtype(x)
        chans = self.config.in_chans
        if x.shape[1] != chans:
            hwc = " Is the batch (B, H, W, C)? Use x.permute(0, 3, 1, 2)." if x.shape[-1] == chans else ""
            raise InputError(
                f"expected {chans} input channels, got {x.shape[1]} (shape {tuple(x.shape)}). Create the model "
                f"with in_chans={x.shape[1]}, or convert the images to {chans} channels.{hwc}"
            )
        h, w = x.shape[-2:]
        s = self.stride
        if h % s or w % s or h < s or w < s:
            raise InputError(
                f"input size {h}x{w} is not a positive multiple of {s}, the total stride of {type(self).__name__}. "
                f"Nearest valid sizes: height {nearest_sizes(h, s)}, width {nearest_sizes(w, s)}. "
                "Resize or pad the images."
            )

    def _check_dtype(self, x: Tensor) -> None:
        if not x.is_floating_point():
            raise InputError(
                f"expected a floating-point tensor, got {x.dtype}. Convert images with x.float() / 255 and "
                "normalise them with the model's mean/std."
            )
        weights = next(self.parameters()).dtype
        if x.dtype != weights and not torch.is_autocast_enabled(x.device.type):
            raise InputError(
                f"the input is {x.dtype} but the model's weights are {weights}: convert the input with "
                f"x.to({weights}), or the model with model.to({x.dtype}) (or run under torch.autocast)"
            )

    # ---- Forward

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem, stages and final norm: (B, C_in, H, W) -> (B, num_features, H/stride, W/stride)."""
        self.check_input(x)
        x = self.stem(x.contiguous(memory_format=self.memory_format))
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool and classify a ``forward_features`` map; ``pre_logits`` stops before the classifier.

        With ``global_pool=""`` nothing is pooled: the head runs at every position and a map comes out.
        """
        kind = self.config.global_pool
        if kind == "avg":
            return self.head(x, pre_logits=pre_logits)
        head = self.head
        x = head.pre_pool(x)
        x = pool_map(x, kind) if kind else x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, C), or -> (B, H, W, C)
        x = head.drop(head.pre_logits(head.norm(x)))
        x = x if pre_logits else head.fc(x)
        return x if kind else x.permute(0, 3, 1, 2)  # (B, H, W, F) -> (B, F, H, W)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Feature maps of the requested levels (timm's signature and meaning), and the final features.

        Args:
            x: input batch (B, C, H, W).
            indices: feature levels: None for all, an int n for the last n, or a list (negative counts from
                the end). Level 0 is the stem, level i the output of ``stages[i - 1]``; ``feature_info[i]``
                describes level i.
            norm: apply the final norm to the last stage's output when it is requested.
            stop_early: stop after the deepest requested level (the final features are then that level's).
            output_fmt: "NCHW" or "NHWC" for the returned maps.
            intermediates_only: return only the list of maps.

        Returns:
            ``(forward_features output, [maps])``, or ``[maps]`` with ``intermediates_only``.
        """
        one_of("output_fmt", output_fmt, OUTPUT_FORMATS)
        self.check_input(x)
        take, deepest = self._take_indices(indices)
        x = self.stem(x.contiguous(memory_format=self.memory_format))
        maps = [x] if 0 in take else []
        stages = self.stages[:deepest] if stop_early else self.stages
        for level, stage in enumerate(stages, start=1):
            x = stage(x)
            if level in take:
                maps.append(self.norm(x) if norm and level == len(self.stages) else x)
        if output_fmt == "NHWC":
            maps = [m.permute(0, 2, 3, 1) for m in maps]  # (B, C, H, W) -> (B, H, W, C)
        if intermediates_only:
            return maps
        return (self.norm(x) if len(stages) == len(self.stages) else x), maps

    def _take_indices(self, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
        """timm's ``feature_take_indices``: absolute feature levels and the deepest one."""
        n = len(self.feature_info)
        levels = f"this model has {n} feature levels (0 = stem, 1..{n - 1} = stages)"
        if indices is None or isinstance(indices, int):
            count = n if indices is None else indices
            if not 0 < count <= n:
                raise InputError(f"indices={indices} asks for the last {indices} feature levels; {levels}")
            take = list(range(n - count, n))
        else:
            take = [i + n if i < 0 else i for i in indices]
            if not take:
                raise InputError(f"indices=[] selects no feature level; pass None for all of them. {levels}")
            bad = [i for i, t in zip(indices, take) if not 0 <= t < n]
            if bad:
                raise InputError(f"feature index {bad[0]} is out of range: {levels}; negative counts from the end")
        return take, max(take)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the deepest level of ``indices`` (and the final norm, the head); timm's method.

        Returns the absolute levels. A pruned model cannot be saved with ``save_pretrained``.
        """
        take, deepest = self._take_indices(indices)
        self.stages = self.stages[:deepest]
        self.feature_info = self.feature_info[: deepest + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.head = ClassifierHead(self.num_features, 0)
            self.config = dataclasses.replace(self.config, num_classes=0, global_pool="")
        return take

    # ---- Head

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier (0 removes it), on the model's device and dtype; the trunk is untouched.

        ``global_pool`` (timm's argument) also changes the pooling; "" removes it, so forward returns a map.
        """
        pool = self.config.global_pool if global_pool is None else global_pool
        one_of("global_pool", pool, GLOBAL_POOLS)
        ref = next(self.parameters())
        self.head.reset(num_classes)
        self.head.fc.to(device=ref.device, dtype=ref.dtype)
        self.config = dataclasses.replace(self.config, num_classes=num_classes, global_pool=pool)

    # ---- Training and deployment helpers

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups by depth (timm's ``group_matcher``, used for layer-wise learning-rate decay)."""
        if coarse:
            return {"stem": r"^stem", "blocks": [(r"^stages\.(\d+)", None), (r"^norm", (99999,))]}
        blocks = [
            (r"^stages\.(\d+)\.downsample", (0,)),
            (r"^stages\.(\d+)\.blocks\.(\d+)", None),
            (r"^norm", (99999,)),
        ]
        return {"stem": r"^stem", "blocks": blocks}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    def set_input_size(self, img_size: int | tuple[int, int]) -> None:
        """Resize every position table to a new native input size (before fine-tuning at that size)."""
        h, w = pair(img_size)
        for info, stage in zip(self.feature_info[1:], self.stages):
            for module in stage.modules():
                if isinstance(module, RelPosBias) and module.global_grid:
                    module.resize_((h // info["reduction"], w // info["reduction"]))
        self.config = dataclasses.replace(self.config, img_size=(h, w))

    def no_weight_decay(self) -> set[str]:
        """Parameter names that take no weight decay: norms, biases, position tables (all 1-D or tables)."""
        return {n for n, p in self.named_parameters() if p.ndim <= 1 or n.endswith("rel_pos.table")}

    def fuse(self) -> nn.Module:
        """Fold inference-only structure (BatchNorm into convs) in place; returns self. Eval mode only.

        ``save_pretrained`` records it, and ``load_model`` fuses the rebuilt model before loading the weights.
        """
        if self.training:
            raise RuntimeError("fuse() is for inference: call model.eval() first")
        for module in list(self.modules()):
            if module is not self and hasattr(module, "fuse"):
                module.fuse()
        self.fused = True
        return self
