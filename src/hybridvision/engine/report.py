"""Curves of runs (training loss and the task's evaluation metric, model and EMA, against epochs, as one PNG) and
a finished run's commit-ready export: its config, logs, curves and summary with the recipe it followed, and the
weights it reports as a ``save_pretrained`` folder."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..checkpoint import CONFIG_NAME, EMA_WEIGHTS_NAME, WEIGHTS_NAME
from ..figures import pyplot, save_png
from ..fileio import save_json
from .logs import read_csv
from .rundir import RunDir


def run_metric(run: Path, evals: list[dict[str, float]]) -> str:
    """The metric a run reports: its summary's ``metric``, else the first metric column of its eval log."""
    folder = RunDir(run)
    if folder.summary_file.is_file():
        metric = folder.read_summary().get("metric")
        if metric:
            return metric
    keys = [k for k in (evals[0] if evals else {}) if k not in ("epoch", "step", "epochs_done")]
    return "top1" if "top1" in keys else (keys[0] if keys else "")


def plot_curves(run_dirs: Sequence[Path], out: Path, labels: Sequence[str] | None = None) -> Path:
    """Training loss (by epoch) and the evaluation metric of the model and its EMA for one or more runs, as one PNG."""
    plt = pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    metrics = set()
    for i, run in enumerate(run_dirs):
        label = labels[i] if labels else Path(run).name
        folder = RunDir(run)
        train, evals = read_csv(folder.train_log), read_csv(folder.eval_log)
        if not train and not evals:
            raise FileNotFoundError(
                f"{run} has no {RunDir.TRAIN_LOG} or {RunDir.EVAL_LOG}; is it a training run directory?"
            )
        ax_loss.plot([r["epochs_done"] for r in train], [r["loss"] for r in train], label=label)
        metric = run_metric(Path(run), evals)
        metrics.add(metric)
        x = [r["epochs_done"] for r in evals if metric in r]
        (line,) = ax_metric.plot(x, [r[metric] for r in evals if metric in r], marker="o", label=f"{label}")
        if evals and f"ema_{metric}" in evals[0]:
            ema = [r[f"ema_{metric}"] for r in evals if metric in r]
            ax_metric.plot(x, ema, marker="s", ls="--", color=line.get_color(), label=f"{label} (EMA)")
    name = " / ".join(sorted(metrics))
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_metric.set(xlabel="epoch", ylabel=_METRIC_LABELS.get(name, name), title=name)
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_png(fig, out)


_METRIC_LABELS = {
    "top1": "test top-1 (%)",
    "miou": "mIoU (%)",
    "fid": "FID (lower is better)",
    "cond_acc": "conditional accuracy (%)",
}


def recipe_note(recipe: str | Path) -> str:
    """The first line of a recipe file, its comment marks stripped: what the recipe aims at ("" for no recipe)."""
    if not recipe:
        return ""
    lines = Path(recipe).read_text().splitlines()
    return lines[0].lstrip("# ").strip() if lines else ""


def export_record(
    run: str | Path, out: str | Path, *, recipe: str = "", label: str = "", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A finished run's results for committing, in ``out/``: its config, model description and logs, ``curves.png``
    (labelled ``label``) and, written last, ``summary.json``: the recipe, its note, the run's summary and ``extra``.
    Returns that summary."""
    folder, out = RunDir(run), Path(out)
    summary = folder.read_summary()
    folder.copy_record(out, tuple(n for n in RunDir.RECORD if n != RunDir.SUMMARY))
    plot_curves([folder.path], out / "curves.png", labels=[label or folder.path.name])
    summary = {"recipe": str(recipe), "target_note": recipe_note(recipe), **summary, **(extra or {})}
    save_json(summary, out / RunDir.SUMMARY)
    return summary


def export_weights(weights_dir: str | Path, out: str | Path, *, ema: bool = True) -> Path:
    """``weights_dir``'s EMA weights (``ema`` and kept; else its raw ones) and model description as a
    ``save_pretrained`` folder at ``out``, which ``create_model(pretrained=...)`` and the tasks' eval read."""
    src, out = Path(weights_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = src / EMA_WEIGHTS_NAME if ema and (src / EMA_WEIGHTS_NAME).is_file() else src / WEIGHTS_NAME
    shutil.copyfile(chosen, out / WEIGHTS_NAME)
    shutil.copyfile(src / CONFIG_NAME, out / CONFIG_NAME)
    return out
