"""Reading, writing and adapting weights, safely.

- Our format: a directory with ``model.safetensors`` (+ ``model_ema.safetensors``) and ``config.json``.
- Foreign files: safetensors, or pickled ``.pth``/``.pth.tar`` read with ``torch.load(weights_only=True)`` and
  only the classes in ``SAFE_GLOBALS`` allowed; anything else is refused with a message, never executed.
- Writing (atomic) lives in ``fileio``; our own format (``save_pretrained`` / ``load_model``) in ``hub``.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

log = logging.getLogger(__name__)

# Classes a pickled checkpoint may contain: the official EfficientMod trainer stores its argparse.Namespace.
SAFE_GLOBALS: list[Any] = [argparse.Namespace]

WEIGHTS_NAME = "model.safetensors"
EMA_WEIGHTS_NAME = "model_ema.safetensors"
CONFIG_NAME = "config.json"
TIMM_BIN_NAME = "pytorch_model.bin"  # timm's older folders and Hub repositories (before safetensors)
HUB_PREFIX = "hf-hub:"  # a Hugging Face Hub model repository as a source ("hf-hub:ORG/NAME", see ``hub``)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message says why and what to do."""


# ---- Reading


def read_state_dict(path: str | Path, *, use_ema: bool = True) -> dict[str, Tensor]:
    """Tensors of a checkpoint file or directory, unwrapped from trainer dicts (``state_dict[_ema]``, ``module.``)."""
    path = Path(path)
    if path.is_dir() and not (path / WEIGHTS_NAME).is_file() and (path / "final" / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"{path} is a run folder; its weights are in {path / 'final'}: pass that folder")
    if path.is_dir():
        path = _weights_in(path, use_ema)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    data = _read_safetensors(path) if path.suffix == ".safetensors" else _read_pickle(path)
    return _unwrap(data, path, use_ema)


def _weights_in(folder: Path, use_ema: bool) -> Path:
    """The weights file of a folder: EMA weights when asked and present, then ours, then timm's older file."""
    names = (EMA_WEIGHTS_NAME,) * use_ema + (WEIGHTS_NAME, TIMM_BIN_NAME)
    return next((folder / n for n in names if (folder / n).is_file()), folder / WEIGHTS_NAME)


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {e}") from None


def _read_pickle(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # not a class outside the allow-list: bytes that are no pickle at all
            raise _not_a_checkpoint(path, e) from None
        raise CheckpointError(
            f"refused to unpickle {path}: it holds objects outside the allow-list "
            f"(hybridvision.checkpoint.SAFE_GLOBALS). Details: {_global_named(e)} "
            "If you trust the file, load it yourself and re-save the state dict as safetensors."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, KeyError, ValueError, IndexError) as e:
        raise _not_a_checkpoint(path, e) from None


def _not_a_checkpoint(path: Path, e: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a PyTorch checkpoint, or a corrupt or truncated one ({type(e).__name__}); "
        "check that the file is complete and is the weights file you meant"
    )


def _global_named(e: Exception) -> str:
    """The line of torch's message that names the refused class."""
    lines = [line.strip() for line in str(e).splitlines() if "GLOBAL" in line or "global" in line]
    return (lines[0] if lines else str(e).splitlines()[0])[:300]


def _unwrap(data: Any, path: Path, use_ema: bool) -> dict[str, Tensor]:
    if isinstance(data, dict) and not _is_tensor_dict(data):
        keys = ("state_dict_ema", "model_ema", "state_dict", "model") if use_ema else ("state_dict", "model")
        found = next((k for k in keys if isinstance(data.get(k), dict)), None)
        if found is None:
            raise CheckpointError(f"{path} holds no weights: top-level keys are {sorted(data)[:10]}")
        if use_ema and not found.endswith("ema"):
            log.info("%s has no EMA weights; loading '%s'", path, found)
        data = data[found]
    if not _is_tensor_dict(data):
        raise CheckpointError(f"{path} does not hold a dict of tensors")
    return {k.removeprefix("module."): v for k, v in data.items()}


def _is_tensor_dict(data: Any) -> bool:
    return isinstance(data, dict) and bool(data) and all(isinstance(v, Tensor) for v in data.values())


# ---- Adapting to the model


def load_pretrained(model: nn.Module, path: str | Path, *, use_ema: bool = True) -> None:
    """Load weights into ``model``, converting foreign layouts and adapting head, input channels and tables."""
    state = read_state_dict(path, use_ema=use_ema)
    if hasattr(model, "convert_state_dict"):
        state = model.convert_state_dict(state)
    state = adapt_state_dict(model, state)
    own = model.state_dict()
    for key in [k for k in own if k.startswith("head.fc.") and k not in state]:
        state[key] = own[key]  # a checkpoint saved without a classifier: keep the model's fresh one
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        name = getattr(model, "model_name", type(model).__name__)
        raise CheckpointError(
            f"{path} does not fit {name}: {len(missing)} missing keys {missing[:4]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:4]}. Is it a checkpoint of another model or size?"
        )
    model.load_state_dict(state, strict=True)


def adapt_state_dict(model: nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Reconcile shape differences a user asks for: classifier size, input channels, position-table size.

    A module with an ``adapt_loaded(name, tensor)`` method adapts its own weights of another shape (the
    relative-position bias resamples its table); any other difference is another configuration: an error.
    """
    own = model.state_dict()
    out = {}
    for key, value in state.items():
        target = own.get(key)
        if target is None or target.shape == value.shape:
            if target is not None or not key.startswith("head.fc."):
                out[key] = value  # a classifier the model no longer has (num_classes=0) is dropped
            continue
        if key.startswith("head.fc."):
            out[key] = target
        elif _is_input_conv(value, target):
            out[key] = adapt_input_conv(value, target.shape[1])
        else:
            out[key] = _adapted_by_owner(_owner(model, key), key, value, target)
    _warn_dropped_classifier(model, state, own)
    return out


def _adapted_by_owner(owner: nn.Module | None, key: str, value: Tensor, target: Tensor) -> Tensor:
    """``value`` adapted by the module that holds it (position tables resample), else a CheckpointError."""
    try:
        if hasattr(owner, "adapt_loaded"):
            return owner.adapt_loaded(key.rpartition(".")[2], value)
    except ValueError:
        pass
    raise CheckpointError(
        f"weight {key!r} has shape {tuple(value.shape)} in the checkpoint but {tuple(target.shape)} in "
        "the model: the checkpoint is for another configuration"
    )


def _owner(model: nn.Module, key: str) -> nn.Module | None:
    """The module that holds parameter or buffer ``key``."""
    try:
        return model.get_submodule(key.rpartition(".")[0])
    except AttributeError:
        return None


def _warn_dropped_classifier(model: nn.Module, state: dict[str, Tensor], own: dict[str, Tensor]) -> None:
    """One WARNING when the checkpoint's classifier was replaced by the model's fresh one (other class count)."""
    key = "head.fc.weight"
    if key in state and key in own and state[key].shape != own[key].shape:
        name = getattr(model, "model_name", "") or type(model).__name__
        log.warning(
            "%s: dropped the checkpoint's classifier head.fc (%d classes): the model has %d classes, so it keeps "
            "a freshly initialised head.fc; train it before use",
            name,
            state[key].shape[0],
            own[key].shape[0],
        )


def _is_input_conv(value: Tensor, target: Tensor) -> bool:
    return value.dim() == 4 and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]


def adapt_input_conv(weight: Tensor, in_chans: int) -> Tensor:
    """First-conv weights for another channel count: summed to 1 channel, or tiled and rescaled (timm's rule)."""
    w = weight.float()
    if in_chans == 1:
        out = w.sum(dim=1, keepdim=True)  # (O, C, k, k) -> (O, 1, k, k)
    else:
        reps = -(-in_chans // w.shape[1])
        out = w.repeat(1, reps, 1, 1)[:, :in_chans] * (w.shape[1] / in_chans)  # (O, in_chans, k, k)
    return out.to(weight.dtype)
