"""The one path of every ``<task> predict`` command from image files to overlay PNGs.

``overlay_targets`` names one output per input (its path below the inputs' common folder, ``<stem>_<tag>.png``)
and checks them all before any work: no overlay replaces an input, none of an earlier run is replaced unless
``--overwrite true``. ``draw_each`` then draws and writes each (atomically); an image that cannot be read or runs
out of memory is named and skipped, the others are written, and a ``PredictError`` (exit 2) says which failed.
A task's drawer fits images above ``MAX_PIXELS`` (or its own larger bound) into it first with ``shrink``.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..env import memory_error
from ..fileio import atomic_write, refuse_existing
from .idx import DataError
from .images import ImageError, image_files

OVERWRITE = "--overwrite true"  # the option that lets overlays of an earlier run be replaced
# Images with more pixels than this (or than the task's own bound, if more) are fitted into it before prediction.
MAX_PIXELS = 1024 * 1024

log = logging.getLogger(__name__)


def overlay_names(files: Sequence[Path], tag: str) -> list[Path]:
    """A distinct relative output path per input: its path below the inputs' common folder, ``<stem>_<tag>.png``.

    Inputs that would still share a name (``photo.jpg`` and ``photo.png`` in one folder) keep their suffix in it
    (``photo_jpg_<tag>.png``, ``photo_png_<tag>.png``).
    """
    absolute = [Path(os.path.abspath(f)) for f in files]
    root = Path(os.path.commonpath([f.parent for f in absolute]))
    plain = [f.parent.relative_to(root) / f"{f.stem}_{tag}.png" for f in absolute]
    clash = {name for name, count in Counter(plain).items() if count > 1}
    return [
        name.with_name(f"{f.stem}_{f.suffix.lstrip('.').lower()}_{tag}.png") if name in clash else name
        for f, name in zip(absolute, plain)
    ]


def overlay_targets(paths: Sequence[str | Path], out: Path, tag: str, overwrite: bool) -> tuple[list[Path], list[Path]]:
    """(the images named or found in the folders named, the overlay path of each in ``out``), checked before any
    work: files under ``out`` are not inputs, no overlay would replace an input, and none exists already unless
    ``overwrite``."""
    files = image_files(paths, skip=out)
    targets = [out / name for name in overlay_names(files, tag)]
    inputs = {Path(os.path.abspath(f)) for f in files}
    if overwritten := [t for t in targets if Path(os.path.abspath(t)) in inputs]:
        raise FileExistsError(f"the overlay {overwritten[0]} would replace an input image; choose another --out")
    if not overwrite:
        refuse_existing(targets, OVERWRITE)
    return files, targets


def shrink(image: np.ndarray, limit: int, path: Path) -> np.ndarray:
    """(H, W, C) uint8 ``image`` area-resized to at most ``limit`` pixels (aspect kept); the change is logged."""
    from PIL import Image

    h, w = image.shape[:2]
    if h * w <= limit:
        return image
    factor = math.sqrt(limit / (h * w))
    size = (max(1, int(w * factor)), max(1, int(h * factor)))  # PIL's (width, height)
    log.warning("%s: %dx%d is predicted at %dx%d (at most %d pixels)", path, w, h, *size, limit)
    img = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).resize(size, Image.BOX)
    return np.asarray(img).reshape(size[1], size[0], -1)  # (h, w) or (h, w, C) -> (h, w, C)


def draw_each(
    files: Sequence[Path], targets: Sequence[Path], draw: Callable[[Path], object], out: Path, smaller: str
) -> list[Path]:
    """Write ``draw(file)`` (a PIL image) as a PNG at each target (in ``out``); returns the files written.

    An image that cannot be read (``ImageError``) or runs out of memory is skipped; after the others are written a
    ``PredictError`` names each (``smaller`` says how to fit images into less memory). Other errors are bugs: raised.
    """
    written, failed = [], []
    for path, target in zip(files, targets):
        try:
            image = draw(path)
        except (ImageError, MemoryError, RuntimeError) as e:
            failed.append(_failure(path, e, smaller))
            continue
        atomic_write(target, lambda tmp, image=image: image.save(tmp, format="PNG"))
        written.append(target)
    if failed:
        raise PredictError(failed, written, out)
    return written


class PredictError(DataError):
    """Some images could not be predicted; the message names each, and what was written."""

    def __init__(self, failed: list[str], written: list[Path], out: Path) -> None:
        done = f"{len(written)} overlay(s) of the other images written to {out}" if written else "nothing written"
        if len(failed) == 1:
            super().__init__(f"{failed[0]} ({done})")
        else:
            super().__init__(f"{len(failed)} images could not be predicted ({done}):\n" + "\n".join(failed))
        self.failed, self.written = failed, written


def _failure(path: Path, error: Exception, smaller: str) -> str:
    """One line for an image that failed: unreadable, or out of memory (what to change)."""
    if isinstance(error, ImageError):
        return str(error)
    what = memory_error(error)
    if not what:
        raise error
    return f"{path}: {what}; {smaller}"
