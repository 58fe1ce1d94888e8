"""Feature-extractor form of a backbone: timm's ``features_only=True`` (its ``FeatureGetterNet``), without timm.

``create_model(name, features_only=True, out_indices=...)`` returns ``FeatureExtractor(model, out_indices)``:
the backbone pruned after the deepest requested level, whose forward returns the list of requested maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from .contract import Backbone, FeatureInfo


def features_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """A backbone's pretrained_cfg without the classifier facts (timm's ``pretrained_cfg_for_features``)."""
    return {k: v for k, v in cfg.items() if k not in ("num_classes", "classifier")}


class FeatureInfoList(list):
    """The feature levels an extractor returns, as timm's ``FeatureInfo`` reads them (a list of dicts too)."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]


class FeatureExtractor(nn.Module):
    """A backbone whose forward returns the maps of ``out_indices`` (feature levels; 0 = stem), NCHW.

    Args:
        model: the backbone; stages after the deepest requested level, the classifier head and (unless
            ``norm``) the final norm are pruned away.
        out_indices: feature levels as ``forward_intermediates`` takes them (None: every level).
        norm: apply the final norm to the last stage's map when it is requested.
    """

    def __init__(self, model: Backbone, out_indices: int | Sequence[int] | None = None, norm: bool = False) -> None:
        super().__init__()
        levels = len(model.feature_info) if out_indices is None else out_indices
        take = model.prune_intermediate_layers(levels, prune_norm=not norm)
        self.model = model
        self.out_indices = tuple(take)
        self.norm = norm
        self.feature_info = FeatureInfoList(FeatureInfo(**model.feature_info[i]) for i in take)

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        return features_cfg(self.model.pretrained_cfg)

    @property
    def default_cfg(self) -> dict[str, Any]:
        return self.pretrained_cfg

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.model.forward_intermediates(x, self.out_indices, norm=self.norm, intermediates_only=True)
