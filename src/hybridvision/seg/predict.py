"""``seg predict``: colour-coded overlays of a run's predictions, with a legend of the classes shown (PIL only).

Each output PNG holds the image, the prediction over it and (for evaluation scenes) the ground truth over it,
side by side and scaled up to at least ``MIN_SIDE`` pixels, then a legend: one swatch per class present.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data import overlays, read_image
from ..data.overlays import OVERWRITE, draw_each, overlay_targets, shrink
from ..data.scenes import IGNORE
from ..fileio import atomic_write, check_folder, refuse_existing
from .config import PredictConfig, ink_threshold
from .data import load_split
from .evaluate import saved_model, saved_train_config
from .infer import SegInput, labels, predict

SMALLER = "fit the images into a smaller size with --infer.scale LONG,SHORT"  # when one runs out of memory
MIN_SIDE = 256  # panels are scaled up (nearest) to at least this side, so small scenes stay readable
LEGEND_ROW, LEGEND_WIDTH = 18, 210  # pixels per legend line, legend column width


def palette(classes: Sequence[str]) -> np.ndarray:
    """(K, 3) uint8 colours, far apart in hue (golden-ratio steps); "background" is black."""
    colours = [colorsys.hsv_to_rgb((0.13 + 0.618034 * k) % 1.0, 0.75, 0.95) for k in range(len(classes))]
    out = (np.array(colours) * 255).round().astype(np.uint8)
    out[[i for i, name in enumerate(classes) if name == "background"]] = 0
    return out


def overlay(image: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float) -> np.ndarray:
    """(H, W, 3) uint8 image with class colours blended in at ``alpha``; ignored pixels (255) keep the image."""
    known = labels != IGNORE
    painted = colours[np.where(known, labels, 0)].astype(np.float32)
    mixed = image.astype(np.float32) * (1 - alpha) + painted * alpha
    return np.where(known[..., None], mixed, image).round().astype(np.uint8)


def classes_shown(*maps: np.ndarray | None) -> list[int]:
    """The class indices present in the label maps (ignored pixels left out), sorted."""
    found = set().union(*({int(v) for v in np.unique(m)} for m in maps if m is not None))
    return sorted(found - {IGNORE})


def draw_legend(canvas, left: int, shown: list[int], classes: Sequence[str], colours: np.ndarray, title: str) -> None:
    """A title, then one swatch and name per class, in a column starting at x = ``left``."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    draw.text((left, 4), title, fill="black")
    for i, k in enumerate(shown, start=1):
        y = 4 + LEGEND_ROW * i
        swatch = tuple(int(c) for c in colours[k])
        draw.rectangle((left, y, left + 14, y + 12), fill=swatch, outline="black")
        draw.text((left + 20, y), classes[k], fill="black")


def panel(image: np.ndarray, pred: np.ndarray, classes: Sequence[str], alpha: float, truth: np.ndarray | None = None):
    """One PIL image: image | prediction overlay [| ground-truth overlay], and a legend of the classes present."""
    from PIL import Image

    colours = palette(classes)
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    tiles = [rgb, overlay(rgb, pred, colours, alpha)]
    tiles += [overlay(rgb, truth, colours, alpha)] if truth is not None else []
    strip = np.concatenate(tiles, axis=1)  # n x (H, W, 3) -> (H, n * W, 3)
    zoom = max(1, -(-MIN_SIDE // min(image.shape[:2])))
    strip = Image.fromarray(strip).resize((strip.shape[1] * zoom, strip.shape[0] * zoom), Image.NEAREST)
    shown = classes_shown(pred, truth)
    canvas = Image.new("RGB", (strip.width + LEGEND_WIDTH, max(strip.height, LEGEND_ROW * (len(shown) + 2))), "white")
    canvas.paste(strip, (0, 0))
    title = "image | prediction" + (" | ground truth" if truth is not None else "")
    draw_legend(canvas, strip.width + 8, shown, classes, colours, title)
    return canvas


def save_panel(img, path: Path) -> Path:
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
    return path


class Predictor:
    """A run's model on a device, with its normalisation, classes and inference settings."""

    def __init__(self, run: str | Path, cfg: PredictConfig) -> None:
        from ..engine.distributed import pick_device

        self.run, self.cfg = Path(run), cfg
        self.train_cfg = saved_train_config(self.run)
        if self.train_cfg is None:
            raise FileNotFoundError(f"{run} is not a run folder; pass a segmentation run directory")
        self.device = pick_device(cfg.device)
        model, info = saved_model(self.run, use_ema=cfg.weights == "ema")
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        data = self.train_cfg.data
        self.classes = list(info.get("classes") or load_split(data, train=False).classes)
        self.input = SegInput.of(self.train_cfg.img_size, data.mean, data.std)
        # whole-image inference grows with the square of the pixel count in attention stages (4000x4000: ~16 TB)
        self.max_pixels = max(overlays.MAX_PIXELS, 4 * self.train_cfg.img_size**2)
        self.ink = ink_threshold(data, cfg.infer)  # the region vote's ink threshold (None: no vote)

    def overlay(self, path: Path):
        """The panel of one image file, fitted into ``max_pixels`` first when larger (said on stderr)."""
        image = read_image(path, self.train_cfg.data.channels)
        image = shrink(image, self.max_pixels, path)
        pred = self.labels(torch.from_numpy(image.copy()).permute(2, 0, 1)[None])[0]  # (H, W, C) -> (1, C, H, W)
        return panel(image, pred.numpy(), self.classes, self.cfg.alpha)

    def labels(self, images: Tensor) -> Tensor:
        """uint8 (B, C, H, W) -> predicted classes (B, H, W)."""
        x = self.input.normalize(images.to(self.device))
        probs = predict(self.model, x, self.cfg.infer, len(self.classes), self.train_cfg.img_size)
        return labels(probs, images, self.cfg.infer, self.ink).cpu()


def predict_files(run: str | Path, paths: Sequence[str | Path], cfg: PredictConfig) -> list[Path]:
    """An overlay PNG per image (``<out>/<path below the inputs' folder>/<stem>_seg.png``); returns the files written.

    An image that cannot be read or predicted is skipped and named; the others are written, then ``PredictError``
    says which failed (``data.overlays``). Images above ``Predictor.max_pixels`` are fitted into it first.
    """
    out = out_folder(cfg)
    files, targets = overlay_targets(paths, out, "seg", cfg.overwrite)
    return draw_each(files, targets, Predictor(run, cfg).overlay, out, SMALLER)


def out_folder(cfg: PredictConfig) -> Path:
    """``cfg.out``, checked before any work: a folder, or a path where one can be made."""
    return check_folder(cfg.out, "--out", "for the overlays")


def predict_scenes(run: str | Path, cfg: PredictConfig) -> list[Path]:
    """Overlays of the first ``cfg.scenes`` evaluation images with their ground truth (``<out>/scene_NNN.png``)."""
    out = out_folder(cfg)
    p = Predictor(run, cfg)
    split = load_split(p.train_cfg.data, train=False)
    count = min(cfg.scenes, len(split))
    if not cfg.overwrite:
        refuse_existing([out / f"scene_{i:03d}.png" for i in range(count)], OVERWRITE)
    images, masks, sizes, _ = next(split.batches([list(range(count))]))
    written = []
    for i, (h, w) in enumerate(sizes.tolist()):
        image = images[i : i + 1, :, :h, :w]  # the image without its batch padding
        pred = p.labels(image)[0].numpy()
        truth = masks[i, :h, :w].numpy()
        img = panel(image[0].permute(1, 2, 0).numpy(), pred, p.classes, cfg.alpha, truth)  # (C, H, W) -> (H, W, C)
        written.append(save_panel(img, out / f"scene_{i:03d}.png"))
    return written
