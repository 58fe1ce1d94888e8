"""Figures of diffusion runs: the curves of consecutive training stages on one axis of images seen."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..engine.logs import read_csv
from ..engine.rundir import RunDir
from ..figures import pyplot, save_png


def plot_stages(runs: Sequence[Path], out: Path, labels: Sequence[str] | None = None) -> Path:
    """Training loss, validation loss and conditional accuracy of consecutive stages against images seen."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    offset = 0.0
    for i, run in enumerate(runs):
        label = labels[i] if labels else Path(run).name
        folder = RunDir(run)
        train, evals = read_csv(folder.train_log), read_csv(folder.eval_log)
        if not train:
            raise FileNotFoundError(f"{run} has no {RunDir.TRAIN_LOG}; is it a training run directory?")
        per_step = float(folder.config_dict().get("batch_size", 1))  # images per optimizer step
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
