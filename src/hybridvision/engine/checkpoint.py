"""Run-directory checkpoints: complete training state, written so that a crash never costs the last good one.

A checkpoint is a directory ``checkpoints/step_XXXXXXXX/`` holding safetensors (model, EMA, optimizer, RNG)
and ``state.json``. It is assembled under a temporary name, ``manifest.json`` (sizes and sha256 of every file)
is written last, and only then is the directory renamed into place; older checkpoints are pruned after that.
Loading walks checkpoints newest first and takes the first whose files match its manifest, so a truncated or
half-copied checkpoint is reported and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor

from ..checkpoint import CONFIG_NAME, EMA_WEIGHTS_NAME, WEIGHTS_NAME, CheckpointError
from ..fileio import save_json, save_tensors

log = logging.getLogger(__name__)

CKPT_DIR = "checkpoints"
MANIFEST = "manifest.json"


@dataclass
class TrainState:
    """Everything a resumed run needs besides the config."""

    model: dict[str, Tensor]
    optimizer: dict[str, Any]  # torch optimizer state dict keyed by parameter name
    state: dict[str, Any]  # step, epoch, elapsed_s, ema_updates, scaler, python/numpy RNG ...
    ema: dict[str, Tensor] | None = None
    rng: tuple[dict[str, Tensor], dict[str, Any]] | None = None  # (tensor states, JSON states)


# ---- Flattening optimizer and RNG state into tensors + JSON


def _split_optimizer(opt_state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for name, entries in opt_state["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"{name}/{key}"] = value
            else:
                scalars[f"{name}/{key}"] = value
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, dict[str, Any]] = {}
    for flat, value in [*tensors.items(), *meta["scalars"].items()]:
        name, _, key = flat.rpartition("/")
        state.setdefault(name, {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def capture_rng() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """torch (CPU and CUDA) generator states as tensors; Python and numpy states as JSON."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    meta = {"python": _listify(random.getstate()), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    return tensors, meta


def restore_rng(tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    random.setstate(_tuplify(meta["python"]))
    kind, keys, *rest = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))


def _listify(x: Any) -> Any:
    return [_listify(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, list) else x


# ---- Manifest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: Path) -> None:
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
    entries = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files}
    save_json({"files": entries}, directory / MANIFEST)


def verify(directory: Path) -> str | None:
    """None when every file matches the manifest, else what is wrong."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError) as e:
        return f"no readable {MANIFEST} ({e.__class__.__name__})"
    for name, entry in manifest.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != entry["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {entry['bytes']} (truncated?)"
        if _sha256(path) != entry["sha256"]:
            return f"{name} does not match its sha256 (corrupt)"
    return None


# ---- Saving and loading


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete-looking checkpoint directories, newest first."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_")]
    return sorted(found, key=lambda p: int(p.name.removeprefix("step_")), reverse=True)


def save_checkpoint(run_dir: Path, step: int, ts: TrainState, keep: int = 2) -> Path:
    """Write ``ts`` as ``checkpoints/step_<step>``; no earlier checkpoint goes before this one is complete.

    A step is written once: when a complete checkpoint of ``step`` exists already, it is kept as it is.
    """
    root = Path(run_dir) / CKPT_DIR
    final = root / f"step_{step:08d}"
    if not (final.is_dir() and verify(final) is None):
        tmp = root / f".tmp-step_{step:08d}"
        _write_state(tmp, ts)
        replace_dir(tmp, final)
    for old in checkpoint_dirs(run_dir)[max(keep, 1) :]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_state(tmp: Path, ts: TrainState) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_tensors(ts.model, tmp / "model.safetensors")
    if ts.ema is not None:
        save_tensors(ts.ema, tmp / "model_ema.safetensors")
    opt_tensors, opt_meta = _split_optimizer(ts.optimizer)
    save_tensors(opt_tensors, tmp / "optimizer.safetensors")
    rng_tensors, rng_meta = ts.rng if ts.rng is not None else capture_rng()
    save_tensors(rng_tensors, tmp / "rng.safetensors")
    save_json({**ts.state, "optimizer": opt_meta, "rng": rng_meta}, tmp / "state.json")
    write_manifest(tmp)


def replace_dir(new: Path, target: Path) -> None:
    """Put the complete directory ``new`` at ``target``; an old ``target`` is moved aside first and deleted last.

    A kill at any point leaves the old directory or the new one in place (or both, one under a hidden name).
    Hidden leftovers of an earlier kill next to ``target`` are removed.
    """
    aside = target.with_name(f".old-{target.name}")
    shutil.rmtree(aside, ignore_errors=True)
    if target.exists():
        os.replace(target, aside)
    os.replace(new, target)
    shutil.rmtree(aside, ignore_errors=True)
    for stale in target.parent.glob(".tmp-*"):
        if stale != new:
            shutil.rmtree(stale, ignore_errors=True)


def save_final(directory: Path, config: dict, weights: dict[str, Tensor], ema: dict[str, Tensor] | None) -> None:
    """The trained weights in ``save_pretrained``'s layout (``load_model`` and ``--init-from`` read it).

    Written as a whole: into a hidden directory first, then put in place (``replace_dir``).
    """
    tmp = directory.with_name(f".tmp-{directory.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_tensors(weights, tmp / WEIGHTS_NAME, metadata={"format": "pt"})
    if ema is not None:
        save_tensors(ema, tmp / EMA_WEIGHTS_NAME, metadata={"format": "pt"})
    save_json(config, tmp / CONFIG_NAME)
    replace_dir(tmp, directory)


def problems(directories: list[Path]) -> str:
    """What is wrong with each of ``directories`` (checkpoints), as "step_...: why; ..." for an error message."""
    return "; ".join(f"{d.name}: {verify(d)}" for d in directories)


def latest_good(run_dir: Path) -> Path | None:
    """The newest checkpoint that matches its manifest; broken ones are reported and passed over."""
    for directory in checkpoint_dirs(run_dir):
        problem = verify(directory)
        if problem is None:
            return directory
        log.warning("checkpoint %s is unusable (%s); falling back to an earlier one", directory, problem)
    return None


def load_checkpoint(directory: Path) -> TrainState:
    problem = verify(directory)
    if problem is not None:
        raise CheckpointError(f"checkpoint {directory} is unusable: {problem}")
    meta = json.loads((directory / "state.json").read_text())
    ema_path = directory / "model_ema.safetensors"
    opt = _join_optimizer(load_file(str(directory / "optimizer.safetensors")), meta.pop("optimizer"))
    rng_meta = meta.pop("rng")
    return TrainState(
        model=load_file(str(directory / "model.safetensors")),
        optimizer=opt,
        state=meta,
        ema=load_file(str(ema_path)) if ema_path.is_file() else None,
        rng=(load_file(str(directory / "rng.safetensors")), rng_meta),
    )
