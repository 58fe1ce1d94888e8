"""Pictures and reports of runs: loss/accuracy curves, a comparison table, and the demo's markdown report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write
from .metrics import EVAL_CSV, TRAIN_CSV, read_csv


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'hybridvision[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    return path


def plot_curves(run_dirs: Sequence[Path], out: Path, labels: Sequence[str] | None = None) -> Path:
    """Training loss (by epoch) and test top-1 of the model and its EMA for one or more runs, as one PNG."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, run in enumerate(run_dirs):
        label = labels[i] if labels else Path(run).name
        train, evals = read_csv(Path(run) / TRAIN_CSV), read_csv(Path(run) / EVAL_CSV)
        if not train and not evals:
            raise FileNotFoundError(f"{run} has no {TRAIN_CSV} or {EVAL_CSV}; is it a training run directory?")
        ax_loss.plot([r["epochs_done"] for r in train], [r["loss"] for r in train], label=label)
        x = [r["epochs_done"] for r in evals]
        (line,) = ax_acc.plot(x, [r["top1"] for r in evals], marker="o", label=f"{label}")
        if evals and "ema_top1" in evals[0]:
            ema = [r["ema_top1"] for r in evals]
            ax_acc.plot(x, ema, marker="s", ls="--", color=line.get_color(), label=f"{label} (EMA)")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="test top-1 (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    out = _save(fig, Path(out))
    plt.close(fig)
    return out


def plot_table(columns: Sequence[str], rows: Sequence[Sequence[str]], out: Path, title: str = "") -> Path:
    """A table as a PNG (for reports read where markdown does not render)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.8 * len(columns), 0.45 * (len(rows) + 2)))
    ax.axis("off")
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) + 2 for i, c in enumerate(columns)]
    widths = [w / sum(widths) for w in widths]  # column widths by their longest text
    t = ax.table(cellText=[list(r) for r in rows], colLabels=list(columns), loc="center", colWidths=widths)
    t.auto_set_font_size(False)
    t.set_fontsize(9)
    t.scale(1.0, 1.3)
    if title:
        ax.set_title(title, fontsize=10)
    out = _save(fig, Path(out))
    plt.close(fig)
    return out


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
