"""``det predict``: an overlay PNG per input image with the run's detections: masks blended in, boxes, labels and
scores (PIL only). Images are scaled up (nearest) to at least ``MIN_SIDE`` pixels so small scenes stay readable.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data import overlays, read_image
from ..data.overlays import draw_each, overlay_targets, shrink
from ..engine.distributed import pick_device
from ..fileio import check_folder
from ..vision_ops import set_roi_align
from .config import DetPredictConfig
from .evaluate import saved_model

MIN_SIDE = 256  # overlays are scaled up (nearest) to at least this side
SMALLER = "give smaller images, or --device cpu when the GPU ran out"  # when one runs out of memory


def colour(label: int) -> tuple[int, int, int]:
    """A colour per class, far apart in hue (golden-ratio steps)."""
    r, g, b = colorsys.hsv_to_rgb((0.13 + 0.618034 * label) % 1.0, 0.8, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


def overlay(image: np.ndarray, det: dict, classes: Sequence[str], cfg: DetPredictConfig):
    """A PIL image: ``image`` (H, W, C) uint8 with the detections scoring at least ``cfg.score`` drawn on it."""
    from PIL import Image, ImageDraw

    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    keep = det["scores"] >= cfg.score
    out = rgb.astype(np.float32)
    for mask, label in zip(det["masks"][keep, 0].numpy() > 0.5, det["labels"][keep].tolist()):
        out[mask] = out[mask] * (1 - cfg.alpha) + np.array(colour(label)) * cfg.alpha
    zoom = max(1, -(-MIN_SIDE // min(image.shape[:2])))
    canvas = Image.fromarray(out.round().astype(np.uint8)).resize((rgb.shape[1] * zoom, rgb.shape[0] * zoom))
    draw = ImageDraw.Draw(canvas)
    for box, label, score in zip(
        det["boxes"][keep].tolist(), det["labels"][keep].tolist(), det["scores"][keep].tolist()
    ):
        x1, y1, x2, y2 = (v * zoom for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=colour(label), width=2)
        draw.text((x1 + 2, y1 + 1), f"{classes[label]} {score:.2f}", fill=colour(label))
    return canvas


def predict_files(run: str | Path, paths: Sequence[str | Path], cfg: DetPredictConfig) -> list[Path]:
    """An overlay PNG per image (``<out>/<path below the inputs' folder>/<stem>_det.png``); returns the files written.

    Every check comes before the model loads (``data.overlays``); an image that cannot be read or runs out of memory
    is skipped and named, the others are written, then ``PredictError`` says which failed.
    """
    out = check_folder(cfg.out, "--out", "for the overlays")
    files, targets = overlay_targets(paths, out, "det", cfg.overwrite)
    return draw_each(files, targets, Drawer(run, cfg).overlay, out, SMALLER)


class Drawer:
    """A run's detector on a device, with its classes: draws one image file's detections."""

    def __init__(self, run: str | Path, cfg: DetPredictConfig) -> None:
        model, info = saved_model(Path(run), use_ema=cfg.weights == "ema")
        set_roi_align(cfg.roi_align)
        self.device, self.cfg = pick_device(cfg.device), cfg
        self.model = model.to(self.device).eval()
        self.classes = info.get("classes") or [str(i) for i in range(model.config.num_classes)]
        d = model.config.detector  # the network sees at most min_size x max_size pixels: nothing is lost below
        self.max_pixels = max(overlays.MAX_PIXELS, d.min_size * d.max_size)

    @torch.no_grad()
    def overlay(self, path: Path):
        """The PIL overlay of one image file (uint8 (H, W, C) as the run's channels), fitted into ``max_pixels``
        first when larger (said on stderr): masks are pasted and drawn at the image's size."""
        image = shrink(read_image(path, self.model.config.in_chans), self.max_pixels, path)
        x = torch.from_numpy(image.copy()).permute(2, 0, 1).to(self.device).float() / 255  # (H, W, C) -> (C, H, W)
        det = {k: v.cpu() for k, v in self.model([x])[0].items()}
        return overlay(image, det, self.classes, self.cfg)
