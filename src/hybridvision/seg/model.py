"""``SegModel``: any registered backbone + UperNet or Semantic FPN (+ the auxiliary FCN head), through the model
contract only.

The backbone is built by name (``hub.create_model``, no classifier) and read through ``forward_intermediates`` /
``feature_info``; stages deeper than the last level the head reads, the final norm and the classifier are
pruned (``prune_intermediate_layers``), so every parameter left gets a gradient. Nothing here knows a family
beyond ``DEEPEST_STAGES``, the paper's choice of levels written as data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checkpoint import CheckpointError, adapt_state_dict, read_state_dict
from ..config import check, one_of
from ..factory import task_backbone
from ..models.blocks import ConvNormAct
from ..models.contract import ModelConfig
from ..registry import get_config, get_entry
from .heads import FCNHead, InputRefine, SemanticFPNHead, UperNetHead, resize

log = logging.getLogger(__name__)

# Feature levels when ``head.feature_levels`` is empty: how many of the deepest stages feed the head, by family.
# AsCAN's UperNet reads S2-S4 (paper); every other family gives all its stages (mmseg's out_indices 0-3).
DEEPEST_STAGES = {"ascan": 3}
HEADS = ("upernet", "fpn")  # UperNet (mmseg's UPerHead) or Semantic FPN (mmseg's FPN neck + FPNHead)


@dataclass(frozen=True)
class HeadConfig:
    """The decode head (UperNet or Semantic FPN) and the auxiliary FCN head; defaults are mmseg's UperNet."""

    kind: str = "upernet"  # "upernet" or "fpn" (Semantic FPN, as EfficientMod on ADE20K)
    feature_levels: tuple[int, ...] = ()  # backbone levels read (0 = stem, i = stage Si); () = the family's default
    channels: int = 512  # UperNet's width: PPM, laterals, FPN and fusion convs
    pool_scales: tuple[int, ...] = (1, 2, 3, 6)  # pyramid-pooling output sizes on the deepest map
    neck_channels: int = 256  # Semantic FPN: the FPN neck's width (mmseg: 256)
    fpn_channels: int = 128  # Semantic FPN: the semantic branch's width (mmseg's FPNHead: 128)
    aux_channels: int = 256  # auxiliary FCN head width; 0 = no auxiliary head
    aux_level: int = -2  # which of the levels read feeds the auxiliary head (-2: mmseg's in_index=2 of four)
    refine: int = 0  # width of a full-resolution refinement on the image after UperNet (0 = none, as mmseg)

    def __post_init__(self) -> None:
        levels = self.feature_levels
        one_of("head.kind", self.kind, HEADS)
        check(min(self.neck_channels, self.fpn_channels) >= 1, "head.neck_channels and head.fpn_channels must be >= 1")
        check(all(v >= 0 for v in levels), f"head.feature_levels are absolute levels >= 0, got {levels}")
        check(
            all(a < b for a, b in zip(levels, levels[1:])),
            f"head.feature_levels must rise strictly (finest first), got {levels}",
        )
        check(self.channels >= 1, f"head.channels must be >= 1, got {self.channels}")
        check(self.aux_channels >= 0, f"head.aux_channels must be >= 0 (0 = none), got {self.aux_channels}")
        check(self.refine >= 0, f"head.refine must be >= 0 (0 = none), got {self.refine}")
        check(
            bool(self.pool_scales) and min(self.pool_scales) >= 1,
            f"head.pool_scales must be sizes >= 1, got {self.pool_scales}",
        )


@dataclass(frozen=True)
class SegModelConfig(ModelConfig):
    """A segmentation model: the shared contract fields (``in_chans``, ``num_classes``, ``img_size`` ... go to the
    backbone; ``drop_rate`` is the dropout before both classifiers), the backbone's name and the head."""

    num_classes: int = 150  # ADE20K
    img_size: int | tuple[int, int] = 512  # the crop the backbone's position tables are built for
    drop_rate: float = 0.1  # Dropout2d before the classifiers (mmseg's dropout_ratio)
    backbone: str = "ascan_t"  # any registered backbone
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model overrides for it
    head: HeadConfig = field(default_factory=HeadConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.num_classes >= 1, f"num_classes must be >= 1 for segmentation, got {self.num_classes}")
        get_entry(self.backbone)  # an unknown name fails here, with the closest names

    @property
    def stride(self) -> int:
        return get_config(self.backbone, **self.backbone_kwargs).stride


def resolve_levels(backbone: str, levels: tuple[int, ...], num_levels: int) -> tuple[int, ...]:
    """The feature levels a head reads: ``levels``, checked against the backbone, or the family's default."""
    stages = num_levels - 1
    if not levels:
        count = min(DEEPEST_STAGES.get(get_entry(backbone).family, stages), stages)
        return tuple(range(stages - count + 1, stages + 1))
    bad = [v for v in levels if v >= num_levels]
    check(
        not bad,
        f"backbone {backbone} cannot give feature level {bad[0] if bad else ''}: it has levels 0..{stages} "
        f"(0 = stem, 1..{stages} = stages S1..S{stages}). Choose head.feature_levels in that range, or leave "
        "them empty for the family's default",
    )
    return tuple(levels)


class SegModel(nn.Module):
    """Backbone -> UperNet or Semantic FPN (+ FCN auxiliary head); class scores at the input's size.

    ``forward(x)`` returns logits (B, num_classes, H, W); ``forward(x, with_aux=True)`` returns
    ``(logits, aux_logits)`` (``aux_logits`` None without an auxiliary head), for training.
    """

    fused: bool = False

    def __init__(self, config: SegModelConfig) -> None:
        super().__init__()
        self.config = c = config
        self.backbone = task_backbone(c)
        self.levels = resolve_levels(c.backbone, c.head.feature_levels, len(self.backbone.feature_info))
        self.backbone.prune_intermediate_layers(list(self.levels), prune_norm=True)
        dims = [self.backbone.feature_info[i]["num_chs"] for i in self.levels]
        h = c.head
        check(
            -len(dims) <= h.aux_level < len(dims),
            f"head.aux_level {h.aux_level} does not index the {len(dims)} levels read {self.levels}",
        )
        self.aux_index = h.aux_level % len(dims)
        self.decode = self._decode_head(dims, [self.backbone.feature_info[i]["reduction"] for i in self.levels])
        self.aux = FCNHead(dims[self.aux_index], h.aux_channels, c.num_classes, c.drop_rate) if h.aux_channels else None
        self.refine = InputRefine(c.in_chans, c.num_classes, h.refine) if h.refine else None

    def _decode_head(self, dims: list[int], reductions: list[int]) -> nn.Module:
        c, h = self.config, self.config.head
        if h.kind == "fpn":
            return SemanticFPNHead(dims, reductions, h.neck_channels, h.fpn_channels, c.num_classes, c.drop_rate)
        return UperNetHead(dims, h.channels, c.num_classes, h.pool_scales, c.drop_rate)

    @property
    def stride(self) -> int:
        """Inputs must be a multiple of this (the deepest level's reduction)."""
        return self.backbone.stride

    @property
    def memory_format(self) -> torch.memory_format:
        return self.backbone.memory_format

    @memory_format.setter
    def memory_format(self, fmt: torch.memory_format) -> None:
        self.backbone.memory_format = fmt

    def forward(self, x: Tensor, with_aux: bool = False) -> Tensor | tuple[Tensor, Tensor | None]:
        feats = self.backbone.forward_intermediates(x, list(self.levels), intermediates_only=True)
        logits = resize(self.decode(feats), x.shape[-2:])  # (B, K, H/r, W/r) -> (B, K, H, W)
        if self.refine is not None:
            logits = self.refine(logits, x)
        if not with_aux:
            return logits
        aux = None if self.aux is None else resize(self.aux(feats[self.aux_index]), x.shape[-2:])
        return logits, aux

    def fuse(self) -> SegModel:
        """Fold every BatchNorm into its conv (backbone and heads), for inference; eval mode only."""
        if self.training:
            raise RuntimeError("fuse() is for inference: call model.eval() first")
        self.backbone.fuse()
        heads = [head for head in (self.decode, self.aux, self.refine) if head is not None]
        for module in (m for head in heads for m in head.modules()):
            if isinstance(module, ConvNormAct):
                module.fuse()
        self.fused = True
        return self


def load_weights(model: SegModel, source: str | Path, *, use_ema: bool = True) -> str:
    """Weights for ``model`` from a segmentation run or save (all of it) or a classifier's weights (the backbone).

    Classifier checkpoints (ours, timm's, the official EfficientMod ones) go through the family's converter;
    position tables are resized to the new input size, the first conv adapted to ``in_chans``, and a
    classifier of another class count is kept fresh. Returns "model" or "backbone": what was loaded.
    """
    state = read_state_dict(source, use_ema=use_ema)
    whole = any(k.startswith("backbone.") for k in state)
    target = model if whole else model.backbone
    if not whole and hasattr(target, "convert_state_dict"):
        state = target.convert_state_dict(state)
    own = target.state_dict()
    state = {k: v for k, v in state.items() if k in own}  # pruned stages, final norm, classifier: not needed
    fresh = [k for k in state if ".classifier." in k and state[k].shape != own[k].shape]
    state |= {k: own[k] for k in fresh}  # another class count: the classifiers start fresh
    if fresh:
        log.warning("%s: the classifiers have another class count; they start fresh", source)
    state = adapt_state_dict(target, state)
    missing = sorted(set(own) - set(state))
    if missing:
        raise CheckpointError(
            f"{source} does not fit {'the model' if whole else 'backbone ' + model.config.backbone}: "
            f"{len(missing)} missing weights {missing[:4]}. Is it a checkpoint of another model?"
        )
    target.load_state_dict(state, strict=True)
    return "model" if whole else "backbone"
