"""Tables for people: a comparison table as markdown and as a PNG (for reports read where markdown does not render)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..figures import pyplot, save_png


def plot_table(columns: Sequence[str], rows: Sequence[Sequence[str]], out: Path, title: str = "") -> Path:
    """A table as a PNG (for reports read where markdown does not render)."""
    plt = pyplot()
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
    return save_png(fig, out)
