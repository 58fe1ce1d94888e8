"""matplotlib for every picture we write: the non-interactive backend, a clear error without it, atomic PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .fileio import atomic_write, check_writable


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), or an ImportError naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'hybridvision[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG atomically and close it; a path that is a folder, cannot be written or is named
    otherwise than ``.png`` is one line (never PNG bytes under another format's name)."""
    path = Path(path)
    try:
        check_writable(path, "the figure")
        if path.suffix.lower() != ".png":
            raise ValueError(f"the figure {path} is written as PNG; give a file name ending in .png")
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
    finally:
        pyplot().close(fig)
    return path
