"""``det predict``: an overlay PNG per input image with the run's detections: masks blended in, boxes, labels and
scores (PIL only). Images are scaled up (nearest) to at least ``MIN_SIDE`` pixels so small scenes stay readable.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data import image_files
from ..engine.distributed import pick_device
from ..fileio import atomic_write, check_folder, refuse_existing
from ..vision_ops import set_roi_align
from .config import DetPredictConfig
from .data import read_image
from .evaluate import saved_model

MIN_SIDE = 256


def colour(label: int) -> tuple[int, int, int]:
    """A colour per class, far apart in hue (golden-ratio steps)."""
    r, g, b = colorsys.hsv_to_rgb((0.13 + 0.618034 * label) % 1.0, 0.8, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


def output_names(files: Sequence[Path]) -> list[str]:
    """``<stem>_det.png`` per input; inputs sharing a stem get ``<stem>_det_2.png``, ... (none overwrites another)."""
    names, used = [], set()
    for f in files:
        name, n = f"{f.stem}_det.png", 1
        while name in used:
            n += 1
            name = f"{f.stem}_det_{n}.png"
        used.add(name)
        names.append(name)
    return names


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
    """An overlay PNG per image in ``cfg.out``; returns the files written."""
    files = image_files(paths)  # a wrong path fails before the model loads
    out = check_folder(cfg.out, "--out", "for the overlays")
    names = output_names(files)
    if not cfg.overwrite:
        refuse_existing([out / n for n in names], "--overwrite true")
    model, info = saved_model(Path(run), use_ema=cfg.weights == "ema")
    set_roi_align(cfg.roi_align)
    device = pick_device(cfg.device)
    model = model.to(device).eval()
    channels, classes = model.config.in_chans, info.get("classes") or []
    written = []
    for path, name in zip(files, names):
        image = read_image(path, channels)
        if image is None:
            continue
        with torch.no_grad():
            det = {k: v.cpu() for k, v in model([image.to(device).float() / 255])[0].items()}
        labels = classes or [str(i) for i in range(model.config.num_classes)]
        img = overlay(image.permute(1, 2, 0).numpy(), det, labels, cfg)  # (C, H, W) -> (H, W, C)
        atomic_write(out / name, lambda tmp, img=img: img.save(tmp, format="PNG"))
        written.append(out / name)
    return written
