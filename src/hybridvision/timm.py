"""Every hybridvision model inside timm: ``timm.create_model("hybridvision_ascan_t", ...)``.

Importing this module registers each backbone (``list_models(task="classification")``) in timm's registry
as ``hybridvision_<name>`` (``register()`` does it again for models registered later). The names join with "_"
because timm's ``create_model`` only accepts a bare registry name: a "/" or ":" reads as a Hugging Face Hub
repo or a folder (``hf-hub:``, ``local-dir:``), and a "." starts a pretrained tag.

What timm users get, the timm way:
- ``timm.create_model(name, num_classes=, in_chans=, img_size=, drop_rate=, drop_path_rate=, global_pool=)``;
  other keyword arguments are fields of the family's config (``layout=``, ``head_dim=`` ...).
- ``features_only=True, out_indices=...``: timm's own ``FeatureGetterNet`` around our model.
- ``pretrained=True``: the file in ``pretrained_cfg_overlay=dict(file=...)``, or the weights kept under
  ``$HYBRIDVISION_WEIGHTS`` (``hybridvision.factory.weights_path``), never downloaded. ``checkpoint_path=`` and
  ``timm.create_model("local-dir:<save_pretrained folder>", pretrained=True)`` work too, and so does
  ``timm.create_model("hf-hub:ORG/NAME", pretrained=True)`` for a repository ``hybridvision.push_to_hub`` (or timm's
  ``push_to_hf_hub``) wrote: its weights come through huggingface_hub's cache (``hybridvision.hub``).
- ``timm.models.get_pretrained_cfg(name)`` and ``model.pretrained_cfg``: input size, mean/std, crop, ...

timm is an optional dependency; this module needs it (and torchvision, which ``vision_ops`` completes where its C
extension cannot load) and is never imported by the rest of hybridvision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

try:
    from .vision_ops import import_torchvision

    import_torchvision()  # timm imports torchvision: completed first where its C extension is missing
    from timm.models import is_model, register_model
    from timm.models._features import FeatureGetterNet  # not re-exported by timm.models
except Exception as e:  # ImportError, or another error a broken timm or torchvision raises
    raise ImportError(
        f"hybridvision.timm needs timm and torchvision ({type(e).__name__}: {e}). Install them "
        "with `pip install -c constraints.txt 'hybridvision[compare]'`."
    ) from e

from . import factory, hub
from .checkpoint import HUB_PREFIX
from .models.features import features_cfg
from .registry import list_models

__all__ = ["create_model", "register", "timm_name"]  # timm's register_model appends each entry point

# timm's register_model reads the pretrained cfgs of the entry points' module from this dict.
default_cfgs: dict[str, dict[str, Any]] = {}


def timm_name(name: str) -> str:
    """Our registered name -> its name in timm's registry."""
    return factory.TIMM_PREFIX + name


def create_model(
    name: str,
    pretrained: bool = False,
    *,
    pretrained_cfg: Any = None,
    pretrained_cfg_overlay: Mapping[str, Any] | None = None,
    features_only: bool = False,
    out_indices: int | tuple[int, ...] | None = None,
    feature_cls: str | None = None,
    output_stride: int | None = None,
    device: Any = None,
    dtype: torch.dtype | None = None,
    **kwargs: Any,
) -> nn.Module:
    """What ``timm.create_model(timm_name(name), ...)`` runs: our model, with timm's extras on top."""
    for key in ("cache_dir", "pretrained_model_args"):  # timm's plumbing, nothing to do here
        kwargs.pop(key, None)
    if feature_cls not in (None, "getter"):
        raise ValueError(f"feature_cls={feature_cls!r}: hybridvision models extract features with 'getter'")
    weights = _weights(pretrained, pretrained_cfg, pretrained_cfg_overlay)
    model = factory.create_model(name, pretrained=weights, **kwargs)
    _check_output_stride(model, output_stride)
    model.to(device=device, dtype=dtype)
    if not features_only:
        return model
    levels = len(model.feature_info) if out_indices is None else out_indices
    extractor = FeatureGetterNet(model, out_indices=levels)  # timm's own wrapper, as timm's builder makes it
    extractor.pretrained_cfg = extractor.default_cfg = features_cfg(model.pretrained_cfg)
    return extractor


def _weights(pretrained: bool, cfg: Any, overlay: Mapping[str, Any] | None) -> bool | str | Path | None:
    """The weights to load: an explicit file (overlay, or a local-dir cfg), a Hub repository's (an hf-hub cfg,
    through huggingface_hub's cache), else True (our weights folder)."""
    if not pretrained:
        return None
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
    for source in (overlay, cfg):
        if isinstance(source, Mapping) and source.get("file"):
            return str(source["file"])
    if isinstance(cfg, Mapping) and cfg.get("source") == "hf-hub" and cfg.get("hf_hub_id"):
        return hub.weights(HUB_PREFIX + str(cfg["hf_hub_id"]))
    return True


def _check_output_stride(model: nn.Module, output_stride: int | None) -> None:
    if output_stride not in (None, model.stride):
        raise ValueError(
            f"output_stride={output_stride}: hybridvision models keep their total stride of {model.stride} "
            "(no dilated stages); leave output_stride out"
        )


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return create_model(name, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = timm_name(name)
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"hybridvision {name}: see hybridvision.create_model."
    return entrypoint


def register() -> list[str]:
    """Add every registered hybridvision model to timm's registry (again safe); returns their timm names.

    Each entry point also becomes an attribute of this module, as timm's model modules hold theirs.
    """
    names = []
    for name in list_models(task="classification"):  # backbones; task models (UperNet, UNets) are not timm models
        theirs = timm_name(name)
        if not is_model(theirs):
            default_cfgs[theirs] = {**factory.pretrained_cfg(name), "architecture": theirs}
            globals()[theirs] = register_model(_entrypoint(name))
        names.append(theirs)
    return names


register()
