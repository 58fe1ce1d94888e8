"""The papers' speed figure: throughput (x) against MACs or top-1 accuracy (y), point area by parameters.

Accuracy comes from a model's card (``*_top1`` keys such as ``paper_top1`` or ``timm_top1``) and is used when
every plotted model has one; otherwise the y axis is GMACs. Each implementation/backend is one series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..figures import pyplot, save_png

Y_CHOICES = ("auto", "macs", "accuracy")


def card_top1(name: str) -> float | None:
    """Top-1 accuracy a model card states (ImageNet-1k), or None (also for names not registered here)."""
    from ..registry import get_entry

    try:
        card = get_entry(name).card
    except KeyError:
        return None
    for key in ("top1", "paper_top1", "timm_top1"):
        if isinstance(card.get(key), (int, float)):
            return float(card[key])
    values = [v for k, v in card.items() if k.endswith("top1") and isinstance(v, (int, float))]
    return float(values[0]) if values else None


def pick_batch(rows: list[dict[str, Any]]) -> int:
    """The largest batch size every plotted model was measured at (else the largest measured)."""
    by_model: dict[str, set[int]] = {}
    for row in rows:
        by_model.setdefault(row["model"], set()).add(row["batch_size"])
    common = set.intersection(*by_model.values()) if by_model else set()
    return max(common) if common else max(b for s in by_model.values() for b in s)


def plot_rows(
    rows: list[dict[str, Any]], out: str | Path, *, y: str = "auto", batch: int | None = None, title: str = ""
) -> Path:
    """Draw the figure for measured ``rows`` (bench rows with status 'ok') and write a PNG."""
    if y not in Y_CHOICES:
        raise ValueError(f"y must be one of {', '.join(Y_CHOICES)}; got {y!r}")
    ok = [r for r in rows if r.get("status") == "ok" and r.get("throughput_img_s")]
    if not ok:
        raise ValueError("no measured rows to plot (all rows failed or the files hold no throughput)")
    batch = batch or pick_batch(ok)
    ok = [r for r in ok if r["batch_size"] == batch]
    if not ok:
        raise ValueError(
            f"no rows at batch size {batch}; measured batch sizes: {sorted({r['batch_size'] for r in rows})}"
        )
    acc = {r["model"]: card_top1(r["model"]) for r in ok}
    use_acc = y == "accuracy" or (y == "auto" and all(v is not None for v in acc.values()))
    if use_acc and any(v is None for v in acc.values()):
        missing = sorted(m for m, v in acc.items() if v is None)
        raise ValueError(f"no top-1 accuracy on the model card of {', '.join(missing)}; use y='macs'")
    fig = _figure(ok, acc if use_acc else None, batch, title)
    out = Path(out)
    return save_png(fig, out, dpi=150)


def _figure(rows: list[dict[str, Any]], acc: dict[str, float | None] | None, batch: int, title: str):
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(9, 6))
    largest = max(r["params"] for r in rows)
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        label = row["impl"] if row["backend"] == "torch" else f"{row['impl']} ({row['backend']})"
        series.setdefault(label, []).append(row)
    for i, (label, points) in enumerate(series.items()):
        xs = [p["throughput_img_s"] for p in points]
        ys = [acc[p["model"]] if acc else p["macs"] / 1e9 for p in points]
        sizes = [30 + 600 * p["params"] / largest for p in points]
        ax.scatter(xs, ys, s=sizes, alpha=0.6, label=label, edgecolors="black", linewidths=0.5)
        if i > 0:
            continue  # model names once, on the first implementation's points
        for p, xv, yv in zip(points, xs, ys):
            ax.annotate(p["model"], (xv, yv), textcoords="offset points", xytext=(6, 4), fontsize=8)
    xs = [r["throughput_img_s"] for r in rows]
    if max(xs) / min(xs) > 10:
        ax.set_xscale("log")
    if not acc and max(r["macs"] for r in rows) / min(r["macs"] for r in rows) > 30:
        ax.set_yscale("log")
    first = rows[0]
    ax.set_xlabel(f"throughput (img/s) at batch {batch}, {first['precision']}, {first['device']}")
    ax.set_ylabel("ImageNet-1k top-1 (%) from model cards" if acc else "GMACs per image")
    ax.set_title(title or f"{first.get('env_device') or first['device']}; point area ~ parameters", fontsize=10)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        legend = ax.legend(fontsize=8)
        for handle in legend.legend_handles:
            handle.set_sizes([40])  # legend markers at one size, not the first point's
    return fig
