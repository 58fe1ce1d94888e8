"""Models by name, with or without weights, and our own saved format.

``create_model`` builds a registered model and loads weights into it (ours, timm's, the official EfficientMod
trainer's: ``checkpoint`` reads and adapts them), optionally as a feature extractor (timm's ``features_only``).
``save_pretrained`` writes ``model.safetensors`` (+ ``model_ema.safetensors``) and ``config.json``;
``load_model`` rebuilds the model from them. The ``config.json`` also carries timm's fields, so
``timm.create_model("local-dir:<folder>", pretrained=True)`` reads it once ``hybridvision.timm`` is imported, and
``load_model`` reads timm's (``architecture``, ``model_args``) for the timm models that have a twin here.

A Hugging Face Hub repository, ``hf-hub:ORG/NAME``, stands for a name (``create_model``; its weights with
``pretrained=True``, as in timm) or a folder (``load_model``): ``hub`` fetches it through huggingface_hub's cache,
imported only then.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import (
    CONFIG_NAME,
    EMA_WEIGHTS_NAME,
    HUB_PREFIX,
    WEIGHTS_NAME,
    CheckpointError,
    load_pretrained,
    read_state_dict,
)
from .config import ConfigError
from .fileio import save_json, save_tensors
from .models.contract import TIMM_PREFIX, check_img_size, default_cfg
from .models.features import FeatureExtractor
from .registry import get_config, get_entry, list_models

WEIGHTS_ENV = "HYBRIDVISION_WEIGHTS"  # the folder `pretrained=True` looks in
DEFAULT_WEIGHTS_DIR = Path("~/.cache/hybridvision/weights")

Pretrained = bool | str | Path | None
DATA_FACTS = ("mean", "std", "interpolation", "crop_pct")  # pretrained_cfg keys that describe the weights' data


def create_model(
    name: str,
    pretrained: Pretrained = None,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | tuple[int, int] | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    global_pool: str | None = None,
    features_only: bool = False,
    out_indices: int | Sequence[int] | None = None,
    feature_cls: str | None = None,
    pretrained_ema: bool = True,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model, optionally loading weights (timm's ``create_model`` arguments).

    Args:
        name: a registered name (``hybridvision models`` lists them), or a Hub repository
            ``hf-hub:ORG/NAME[@REVISION]`` in our layout or timm's: the model its ``config.json`` describes.
        pretrained: ``None``/``False`` for fresh init; a path to weights (our safetensors or run directory,
            timm ``.safetensors``/``.pth``, official EfficientMod ``.pth.tar``); ``True`` for the weights kept
            under ``$HYBRIDVISION_WEIGHTS`` (default ``~/.cache/hybridvision/weights``) as ``<name>/`` or
            ``<name>.safetensors``, or, with an ``hf-hub:`` name, the repository's weights (through
            huggingface_hub's cache: ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``); nothing else is ever downloaded.
            Foreign key layouts are converted by the family; a different ``num_classes`` keeps a fresh classifier
            (with a warning), a different ``img_size`` resizes relative-position tables, a different
            ``in_chans`` adapts the first conv.
        num_classes: classifier outputs (0 = no classifier, ``forward`` returns pooled features).
        in_chans: input channels.
        img_size: the input size the model is built for (int or (H, W)); other multiples of the total
            stride still work at run time.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic-depth rate at the deepest block.
        global_pool: "avg" (default), "max", "avgmax", or "" (no pooling: ``forward`` returns a map).
        features_only: return a ``FeatureExtractor`` whose forward gives the maps of ``out_indices``.
        out_indices: feature levels for ``features_only`` (0 = stem, 1.. = stages; default: all).
        feature_cls: timm's feature-extractor kind; only "getter" (``forward_intermediates``) exists here.
        pretrained_ema: when the checkpoint holds both EMA and raw weights (official EfficientMod trainer,
            our runs), load the EMA weights (default) or the raw ones (``False``).
        **overrides: any field of the family's config (e.g. ``layout=...``, ``head_dim=64``).
    """
    if feature_cls not in (None, "getter"):
        raise ValueError(f"feature_cls={feature_cls!r}: hybridvision extractors use forward_intermediates ('getter')")
    if name.startswith(HUB_PREFIX):
        name, saved, pretrained = _hub_source(name, pretrained)
        overrides = {**saved, **overrides}
    contract = dict(num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate)
    contract |= dict(drop_path_rate=drop_path_rate, global_pool=global_pool)
    overrides.update({k: v for k, v in contract.items() if v is not None})
    entry = get_entry(name)
    model = entry.model_cls(get_config(name, **overrides))
    model.model_name, model.card = name, dict(entry.card)  # a copy: the registry's facts stay as registered
    weights = weights_path(name) if pretrained is True else (pretrained or None)
    if weights is not None:
        saved = _saved_config(weights)
        if saved.get("fused"):
            _fuse_like(model, weights, pretrained_ema)
        load_pretrained(model, weights, use_ema=pretrained_ema)
        model.card.update(data_facts(saved))
    return FeatureExtractor(model, out_indices) if features_only else model


def data_facts(saved: dict[str, Any]) -> dict[str, Any]:
    """What a saved ``config.json``'s ``pretrained_cfg`` says about the data its weights were trained on (mean, std,
    interpolation, crop): the loaded model's card takes them, so its ``pretrained_cfg`` says the same."""
    cfg = saved.get("pretrained_cfg")
    return {k: cfg[k] for k in DATA_FACTS if k in cfg} if isinstance(cfg, dict) else {}


def task_backbone(config: Any, **options: Any) -> nn.Module:
    """The backbone a task model's config names, without a classifier: its ``backbone`` and ``backbone_kwargs``
    with the contract fields ``in_chans``, ``img_size``, ``drop_path_rate``; ``options``: more ``create_model``
    arguments (``features_only``, ``out_indices``)."""
    c = config
    contract = dict(in_chans=c.in_chans, img_size=c.img_size, drop_path_rate=c.drop_path_rate)
    return create_model(c.backbone, num_classes=0, **contract, **options, **c.backbone_kwargs)


def check_backbone(name: str, img_size: int, **kwargs: Any) -> None:
    """A task's ``--model`` is a registered classifier whose total stride divides ``img_size``; else one ConfigError
    line naming the fix (a detector, segmentor or UNet given as the backbone names the classifier to give)."""
    entry = get_entry(name)  # an unknown name fails here, with the closest names
    if entry.task != "classification":
        inner = name.split("_", 1)[1] if "_" in name else name
        example = inner if inner in list_models() and get_entry(inner).task == "classification" else "ascan_nano"
        raise ConfigError(
            f"--model {name} is a {entry.task} model; --model takes the backbone, a classification model such as "
            f"{example} (`hybridvision models --task classification` lists them)"
        )
    check_img_size(img_size, get_config(name, **kwargs).stride, name)  # the registered stride


def backbone_settings(train: Any) -> dict[str, Any]:
    """A task model's backbone fields from its training config (``model``, ``model_kwargs``, ``img_size``,
    ``drop_path_rate`` and ``data.channels``)."""
    return dict(
        backbone=train.model,
        backbone_kwargs=dict(train.model_kwargs),
        in_chans=train.data.channels,
        img_size=train.img_size,
        drop_path_rate=train.drop_path_rate,
    )


def _fuse_like(model: nn.Module, weights: str | Path, use_ema: bool) -> None:
    """Fuse a fresh model into the structure of a fused save, so its weights load.

    What ``fuse()`` folds can depend on the weights (a BatchNorm with a negative scale before a max pool
    stays), so the tensors the unfused model shares with the file are loaded first: the norms that stayed
    unfolded bring their statistics and stay unfolded again.
    """
    state = read_state_dict(weights, use_ema=use_ema)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    model.eval().fuse()


def weights_path(name: str) -> Path:
    """Where ``pretrained=True`` finds ``name``'s weights; raises CheckpointError saying where to put them."""
    root = Path(os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS_DIR).expanduser()
    for candidate in (root / name, root / f"{name}.safetensors"):
        if candidate.exists():
            return candidate
    raise CheckpointError(
        f"pretrained=True: no weights for {name!r} in {root}. hybridvision downloads nothing: put a "
        f"save_pretrained folder at {root / name}/ or a weights file (ours, timm's or the official one) at "
        f"{root / name}.safetensors, set {WEIGHTS_ENV} to the folder that holds them, or pass the file as "
        "pretrained='path/to/weights'."
    )


def pretrained_cfg(name: str) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` of a registered name, without building the model."""
    entry = get_entry(name)
    first_conv = getattr(entry.model_cls, "first_conv", "stem.conv1")
    return default_cfg(entry.config, entry.card, architecture=name, first_conv=first_conv)


def config_overrides(name: str, config: Any) -> dict[str, Any]:
    """The fields of ``config`` that differ from ``name``'s registered config: what rebuilds it by name."""
    base, mine = dataclasses.asdict(get_entry(name).config), dataclasses.asdict(config)
    return {k: v for k, v in mine.items() if base.get(k) != v}


def model_config_dict(model: nn.Module) -> dict[str, Any]:
    """What ``save_pretrained`` writes next to the weights: enough to rebuild the model, ours or timm's way."""
    name = getattr(model, "model_name", "")
    if not name:
        raise ValueError("this model was not made by create_model, so it has no registered name to save")
    stages = getattr(model, "stages", None)
    if stages is not None and len(stages) != len(model.config.layout):
        raise ValueError(f"{name} was pruned (prune_intermediate_layers / features_only); save it before pruning")
    changed = config_overrides(name, model.config)
    saved = {"model": name, "overrides": changed, "fused": getattr(model, "fused", False)}
    if not hasattr(model, "pretrained_cfg"):  # a denoiser, not a classifier: no timm fields
        return saved
    timm_fields = {"architecture": TIMM_PREFIX + name, "num_classes": model.config.num_classes}
    timm_fields |= {"num_features": model.num_features, "pretrained_cfg": model.pretrained_cfg, "model_args": changed}
    return saved | timm_fields


def save_pretrained(
    model: nn.Module, directory: str | Path, ema: nn.Module | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model.safetensors`` (+ ``model_ema.safetensors``) and ``config.json`` to ``directory``.

    A fused model (``model.fuse()``) is saved as it is and marked so; loading rebuilds it fused. ``extra``: more
    fields for ``config.json``, or other values of the model's (a run's task and class names, its mean/std).
    """
    directory = Path(directory)
    config = {**model_config_dict(model), **(extra or {})}
    save_tensors(model.state_dict(), directory / WEIGHTS_NAME, metadata={"format": "pt"})
    if ema is not None:
        save_tensors(ema.state_dict(), directory / EMA_WEIGHTS_NAME, metadata={"format": "pt"})
    save_json(config, directory / CONFIG_NAME)
    return directory


def load_model(source: str | Path, *, use_ema: bool = True, **overrides: Any) -> nn.Module:
    """Rebuild a saved model (config and weights; fused if it was saved fused): a ``save_pretrained`` folder, a
    folder in timm's layout, or a Hub repository ``hf-hub:ORG/NAME`` of either."""
    if str(source).startswith(HUB_PREFIX):
        return create_model(str(source), pretrained=True, pretrained_ema=use_ema, **overrides)
    directory = Path(source)
    if not (directory / CONFIG_NAME).is_file():
        raise CheckpointError(f"{directory} has no {CONFIG_NAME}; was it written by save_pretrained?")
    name, saved = saved_model_spec(_saved_config(directory), str(directory / CONFIG_NAME))
    return create_model(name, pretrained=directory, pretrained_ema=use_ema, **{**saved, **overrides})


def _hub_source(name: str, pretrained: Pretrained) -> tuple[str, dict[str, Any], Pretrained]:
    """What an ``hf-hub:`` name builds: the registered name, the saved overrides, and the weights to load (the
    repository's cached folder for ``pretrained=True``)."""
    from . import hub  # huggingface_hub loads only for Hub names

    registered, saved = saved_model_spec(_saved_config(hub.config_folder(name)), f"{name} ({CONFIG_NAME})")
    return registered, saved, hub.weights(name) if pretrained is True else pretrained


def saved_model_spec(cfg: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """The registered name and overrides a saved ``config.json`` describes, in our layout or timm's.

    Ours names the ``model`` and its ``overrides``. timm's names an ``architecture`` (``hybridvision_<name>``, or a
    timm model with a twin here), its ``model_args`` and ``num_classes``.
    """
    if "model" in cfg:
        name, overrides = cfg["model"], cfg.get("overrides", {})
    elif "architecture" in cfg:
        name, overrides = registered_name(str(cfg["architecture"]), where), cfg.get("model_args", {})
        if isinstance(overrides, dict) and "num_classes" in cfg:
            overrides = {**overrides, "num_classes": cfg["num_classes"]}
    else:
        raise CheckpointError(
            f"{where} names no model: it has neither 'model' (hybridvision's layout) nor 'architecture' (timm's)"
        )
    if not isinstance(name, str) or not isinstance(overrides, dict):
        raise CheckpointError(f"{where} is not a valid model config: the model name or its arguments are malformed")
    return name, dict(overrides)


def registered_name(architecture: str, where: str = "") -> str:
    """Our name of a timm architecture: ``hybridvision_<name>``, or the model whose card names it ``timm_twin``
    (timm's ``coatnet_nano_rw_224`` loads into ours of that name); a pretrained tag (``.sw_in1k``) is ignored."""
    base = architecture.partition(".")[0]
    if base.startswith(TIMM_PREFIX) and base.removeprefix(TIMM_PREFIX) in list_models():
        return base.removeprefix(TIMM_PREFIX)
    cards = {n: get_entry(n).card for n in list_models(task="classification")}
    twins = {card["timm_twin"]: n for n, card in cards.items() if "timm_twin" in card}
    if base in twins:
        return twins[base]
    raise CheckpointError(
        f"{where}: timm's {architecture!r} has no twin in hybridvision (the timm models that load here: "
        f"{', '.join(sorted(twins))}); build it with timm.create_model instead"
    )


def _saved_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a save_pretrained folder ({} for a weights file or a folder without one)."""
    cfg_path = Path(path) / CONFIG_NAME
    if not cfg_path.is_file():
        return {}
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path} is not a valid model config: {e}") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_path} is not a valid model config: expected a JSON object")
    return cfg
