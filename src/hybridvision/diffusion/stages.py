"""Multi-stage training (AsCAN §3.3.2: 256² -> 512² -> 1024², each stage from the previous one's weights).

``carry_over`` loads into a fresh denoiser every weight of a previous run whose name and shape fit, and names the
rest. At another resolution everything fits: convolutions do not depend on the map size and the UNet's 2-D RoPE
has no size-bound table (its angles are computed for each H x W). What cannot carry over (another width, a class
table into a text model, another input channel count) starts fresh and is listed, by module, in a warning and in
the run's summary. A checkpoint of which nothing fits is an error: it is another kind of model.

``plot_stages`` draws the curves of consecutive stages on one axis of training images seen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import CheckpointError, read_state_dict
from ..engine.logs import EVAL_CSV, TRAIN_CSV, read_csv
from ..figures import pyplot, save_png

log = logging.getLogger(__name__)


def _modules(keys: Sequence[str]) -> list[str]:
    """Parameter names grouped by their module (``down.1.blocks.0.attn.qkv.weight`` -> ``down.1.blocks.0.attn.qkv``)."""
    return sorted({k.rsplit(".", 1)[0] for k in keys})


def carry_over(model: nn.Module, source: str | Path, *, use_ema: bool = True) -> dict[str, Any]:
    """Load what fits of ``source`` (a run's final/ or checkpoint, or a weights file) into ``model``; a report."""
    state = read_state_dict(source, use_ema=use_ema)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    name = getattr(model, "model_name", type(model).__name__)
    if not fits:
        raise CheckpointError(
            f"nothing in {source} fits {name} (no parameter name and shape in common): --init-from needs a run of "
            "the same kind of denoiser (an AsCAN UNet for an AsCAN UNet)"
        )
    fresh = [k for k in own if k not in fits]  # keep their new initialisation
    dropped = [k for k in state if k not in fits]  # in the source, not usable here
    model.load_state_dict({**own, **fits})
    report = {"source": str(source), "carried": len(fits), "fresh": _modules(fresh), "dropped": _modules(dropped)}
    if fresh or dropped:
        shapes = [f"{k} {tuple(state[k].shape)} -> {tuple(own[k].shape)}" for k in dropped if k in own][:4]
        log.warning(
            "init from %s: %d tensors carried over; not carried over (fresh init): %s; dropped from the source: %s%s",
            source, len(fits), ", ".join(report["fresh"][:8]) or "none", ", ".join(report["dropped"][:8]) or "none",
            f" (shape changes: {'; '.join(shapes)})" if shapes else "",
        )  # fmt: skip
    else:
        log.info("init from %s: all %d tensors carried over", source, len(fits))
    return report


def plot_stages(runs: Sequence[Path], out: Path, labels: Sequence[str] | None = None) -> Path:
    """Training loss, validation loss and conditional accuracy of consecutive stages against images seen."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    offset = 0.0
    for i, run in enumerate(runs):
        label = labels[i] if labels else Path(run).name
        train, evals = read_csv(Path(run) / TRAIN_CSV), read_csv(Path(run) / EVAL_CSV)
        if not train:
            raise FileNotFoundError(f"{run} has no {TRAIN_CSV}; is it a training run directory?")
        per_step = _batch(run)  # images per optimizer step
        x = [offset + r["step"] * per_step / 1e3 for r in train]
        (line,) = axes[0].plot(x, [r["loss"] for r in train], label=label, alpha=0.8)
        for ax, key in ((axes[1], "val_loss"), (axes[2], "cond_acc")):
            rows = [r for r in evals if key in r]
            xs = [offset + r["step"] * per_step / 1e3 for r in rows]
            ax.plot(xs, [r[key] for r in rows], marker="o", color=line.get_color(), label=label)
            if rows and f"ema_{key}" in rows[0]:
                ema = [r[f"ema_{key}"] for r in rows]
                ax.plot(xs, ema, marker="s", ls="--", color=line.get_color(), label=f"{label} (EMA)")
        offset = x[-1] if x else offset
        for ax in axes:
            ax.axvline(offset, color="grey", lw=0.8, ls=":")
    titles = ("training loss", "validation loss (held-out prompts)", "conditional accuracy (%)")
    for ax, title in zip(axes, titles):
        ax.set(xlabel="training images seen (thousands)", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_png(fig, out)


def _batch(run: Path) -> float:
    import yaml

    return float(yaml.safe_load((Path(run) / "config.yaml").read_text()).get("batch_size", 1))
