"""The model contract every backbone honours (timm's names): stem -> stages -> norm -> head.

``Backbone`` implements the contract once for all families; a family's ``__init__`` only builds
``stem``, ``stages``, ``norm``, ``head`` and ``feature_info``. Task packages (seg, diffusion, train) use
backbones only through these members, typed by ``BackboneProtocol``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from .blocks.attention import RelPosBias
from .blocks.drop import drop_path_rates
from .blocks.stage import BlockFactory, Stage, build_blocks


class InputError(ValueError):
    """An input the model cannot take (wrong rank, channels, dtype or spatial size)."""


@dataclass(frozen=True)
class FeatureInfo:
    """One feature level: channels, reduction (input size / map size) and the module that produces it."""

    channels: int
    reduction: int
    name: str


@dataclass(frozen=True)
class ModelConfig:
    """Instantiation fields every family config shares (the ``create_model`` keyword arguments)."""

    in_chans: int = 3
    num_classes: int = 1000  # 0 = no classifier: forward returns pooled features
    img_size: int | tuple[int, int] = 224  # size the position tables are built for; others resize at run time
    drop_path_rate: float = 0.0  # stochastic depth at the deepest block, linear from 0

    def __post_init__(self) -> None:
        if self.in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {self.in_chans}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        h, w = pair(self.img_size)
        if h < 1 or w < 1:
            raise ValueError(f"img_size must be positive, got {self.img_size}")

    @property
    def img_hw(self) -> tuple[int, int]:
        return pair(self.img_size)


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """Raise a ValueError naming the valid choices when a string option is not one of them."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {tuple(choices)}")


def pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


@runtime_checkable
class BackboneProtocol(Protocol):
    """What task packages may rely on."""

    config: Any
    feature_info: list[FeatureInfo]

    def forward_features(self, x: Tensor) -> Tensor: ...
    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor: ...
    def forward_intermediates(self, x: Tensor, indices: int | Sequence[int] | None = None) -> list[Tensor]: ...
    def reset_classifier(self, num_classes: int) -> None: ...


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
    (relative-position tables are sized from it). Stochastic depth rises linearly over all blocks.
    """
    rates = drop_path_rates(drop_path_rate, [len(p) for p in layout])
    stages, info, reduction = [], [], in_reduction
    for i, (pattern, dim) in enumerate(zip(layout, dims)):
        reduction *= 2
        stages.append(Stage(build_blocks(pattern, in_dim, dim, make_factories(reduction), rates[i])))
        info.append(FeatureInfo(dim, reduction, f"stages.{i}"))
        in_dim = dim
    return nn.ModuleList(stages), info


def nearest_sizes(size: int, stride: int) -> str:
    lo = max(stride, size // stride * stride)
    hi = math.ceil(size / stride) * stride
    return str(lo) if lo == hi else f"{lo} or {hi}"


class Backbone(nn.Module):
    """Shared implementation of the contract; subclasses build ``stem``, ``stages``, ``norm``, ``head``."""

    config: ModelConfig
    stem: nn.Module
    stages: nn.ModuleList
    norm: nn.Module
    head: nn.Module
    feature_info: list[FeatureInfo]
    memory_format: torch.memory_format = torch.channels_last  # the layout the trunk runs in (measured per family)

    @property
    def stride(self) -> int:
        """Total stride: inputs must be a multiple of it."""
        return self.feature_info[-1].reduction

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def num_features(self) -> int:
        """Width of the pooled (pre-logits) features."""
        return self.head.num_features

    def check_input(self, x: Tensor) -> None:
        """Raise InputError with the fix when ``x`` is not a batch this model can take."""
        if not isinstance(x, Tensor):
            raise InputError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            hint = " Add a batch dimension with x.unsqueeze(0)." if x.dim() == 3 else ""
            raise InputError(f"expected a 4-D (B, C, H, W) batch, got shape {tuple(x.shape)}.{hint}")
        if not x.is_floating_point():
            raise InputError(
                f"expected a floating-point tensor, got {x.dtype}. Convert images with x.float() / 255 and "
                "normalise them with the model's mean/std."
            )
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

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem, stages and final norm: (B, C_in, H, W) -> (B, C, H/stride, W/stride)."""
        self.check_input(x)
        x = self.stem(x.contiguous(memory_format=self.memory_format))
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_intermediates(
        self, x: Tensor, indices: int | Sequence[int] | None = None, norm: bool = False
    ) -> list[Tensor]:
        """NCHW outputs of the requested stages.

        Args:
            x: input batch (B, C, H, W).
            indices: stage indices (negative counts from the end), an int n for the last n stages, or None
                for all stages; ``feature_info[i]`` describes stage i.
            norm: apply the final norm to the last stage's output when it is requested.
        """
        self.check_input(x)
        take = self._feature_indices(indices)
        out = []
        x = self.stem(x.contiguous(memory_format=self.memory_format))
        for i, stage in enumerate(self.stages[: max(take) + 1]):
            x = stage(x)
            if i in take:
                out.append(self.norm(x) if norm and i == len(self.stages) - 1 else x)
        return out

    def _feature_indices(self, indices: int | Sequence[int] | None) -> list[int]:
        n = len(self.stages)
        if indices is None:
            return list(range(n))
        if isinstance(indices, int):
            if not 1 <= indices <= n:
                raise ValueError(f"asked for the last {indices} stages; this model has {n}")
            return list(range(n - indices, n))
        take = sorted({i % n if -n <= i < n else _bad_index(i, n) for i in indices})
        return take

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool and classify a ``forward_features`` map; ``pre_logits`` returns the pooled features."""
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier (0 removes it); the trunk is untouched."""
        self.head.reset(num_classes)
        object.__setattr__(self, "config", _replace_field(self.config, num_classes=num_classes))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    def set_input_size(self, img_size: int | tuple[int, int]) -> None:
        """Resize every position table to a new native input size (before fine-tuning at that size)."""
        h, w = pair(img_size)
        for info, stage in zip(self.feature_info, self.stages):
            for module in stage.modules():
                if isinstance(module, RelPosBias) and module.global_grid:
                    module.resize_((h // info.reduction, w // info.reduction))
        object.__setattr__(self, "config", _replace_field(self.config, img_size=(h, w)))

    def no_weight_decay(self) -> set[str]:
        """Parameter names that take no weight decay: norms, biases, position tables (all 1-D or tables)."""
        return {n for n, p in self.named_parameters() if p.ndim <= 1 or n.endswith("rel_pos.table")}

    def fuse(self) -> nn.Module:
        """Fold inference-only structure (BatchNorm into convs) in place; returns self. Eval mode only."""
        if self.training:
            raise RuntimeError("fuse() is for inference: call model.eval() first")
        for module in list(self.modules()):
            if module is not self and hasattr(module, "fuse"):
                module.fuse()
        return self


def _bad_index(i: int, n: int) -> int:
    raise ValueError(f"stage index {i} is out of range for a model with {n} stages")


def _replace_field(config: Any, **values: Any) -> Any:
    return dataclasses.replace(config, **values)
