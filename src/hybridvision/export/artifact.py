"""The deployable artifact: an exported model file and, beside it, ``<file>.json`` holding what a user needs to
feed it images (input size, channels, mean/std, interpolation, resize and crop) and to read its outputs (labels).

Reading an image into the model's input needs only numpy and Pillow (``preprocess_image``), so a server or an
app can classify with the runtime's own loader and this file; ``docs/deploy.md`` shows it for each runtime.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import save_json

ARTIFACT_VERSION = 1  # bumped when a field's meaning changes
RESIZE_MODES = ("shorter_side", "pad")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes the model's input; the same steps calibration and ``predict`` use."""

    input_size: tuple[int, int]  # (H, W) the model takes
    channels: int  # 1: converted to grey (L), 3: to RGB
    mean: tuple[float, ...]  # per channel, on [0, 1] pixels
    std: tuple[float, ...]  # per channel, on [0, 1] pixels
    interpolation: str = "bilinear"  # resampling filter of the resize
    resize: str = "shorter_side"  # "shorter_side": scale the shorter side to input/crop_pct, then centre crop;
    # "pad": images no larger than the input are centred on black (Fashion-MNIST's 28 -> 32), larger ones resized
    crop_pct: float = 1.0  # shorter_side only: the centre crop keeps this fraction of the resized image

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES or self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"preprocessing resize={self.resize!r}, interpolation={self.interpolation!r}: expected one of "
                f"{RESIZE_MODES} and one of {INTERPOLATIONS}"
            )
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean {self.mean} and std {self.std} must have one value per input channel ({self.channels}); "
                "pass --mean and --std with that many values"
            )
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) -> float32 (N, C, H, W): [0, 1], minus mean, over std."""
        mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)  # (C,) -> (1, C, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
        return ((images.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


@dataclass(frozen=True)
class Artifact:
    """What ``<model file>.json`` records."""

    model: str  # registered model name the file was exported from
    format: str  # "onnx", "openvino", "executorch" or "pt2"
    precision: str  # "fp32", "fp16" or "int8"
    runtime: str  # the runtime that loads the file ("onnxruntime", "openvino", "executorch", "torch")
    file: str  # the model file's name (beside this record)
    preprocess: Preprocess
    labels: tuple[str, ...]  # one name per output; "class_<i>" when the model has no named classes
    check: dict[str, Any] | None = None  # what --check measured (None: not checked)
    version: int = ARTIFACT_VERSION


def record_path(model_file: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json`` (the artifact record beside the model file)."""
    model_file = Path(model_file)
    return model_file.with_name(model_file.name + ".json")


def write_artifact(artifact: Artifact, model_file: str | Path) -> Path:
    """Write the record beside ``model_file`` (atomically); returns its path."""
    path = record_path(model_file)
    save_json(asdict(artifact), path)
    return path


def read_artifact(path: str | Path) -> tuple[Artifact, Path]:
    """(record, model file) from a model file or its ``.json`` record; one line naming the problem otherwise."""
    path = Path(path)
    record = path if path.suffix == ".json" and path.is_file() else record_path(path)
    if not record.is_file():
        raise FileNotFoundError(
            f"{path}: no artifact record {record.name} beside it; export with `hybridvision export ... --out FILE`, "
            "which writes FILE and FILE.json"
        )
    try:
        data = json.loads(record.read_text())
        pre = data.pop("preprocess")
        pre = Preprocess(**{**pre, **{k: tuple(pre[k]) for k in ("input_size", "mean", "std")}})
        artifact = Artifact(**{**data, "preprocess": pre, "labels": tuple(data["labels"])})
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{record} is not an artifact record written by `hybridvision export`: {e}") from None
    model_file = record.with_name(artifact.file)
    if not model_file.is_file():
        raise FileNotFoundError(f"{record} names {artifact.file}, which is not beside it")
    return artifact, model_file


def preprocess_image(path: str | Path, spec: Preprocess) -> np.ndarray:
    """One image file -> uint8 (C, H, W) at the model's input size, by ``spec``'s resize and crop.

    Only Pillow and numpy: this is what a deployed service runs before ``spec.normalize``.
    """
    from PIL import Image

    with Image.open(path) as img:
        return prepare(img.convert("L" if spec.channels == 1 else "RGB"), spec)


def prepare(img, spec: Preprocess) -> np.ndarray:
    """A Pillow image in ``spec``'s mode (L or RGB) -> uint8 (C, H, W): resized or padded, then centre-cropped."""
    from PIL import Image

    h, w = spec.input_size
    filt = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[spec.interpolation]
    if spec.resize == "pad" and img.width <= w and img.height <= h:
        canvas = Image.new(img.mode, (w, h))
        canvas.paste(img, ((w - img.width) // 2, (h - img.height) // 2))
        img = canvas
    elif spec.resize == "pad":
        img = img.resize((w, h), filt)
    else:
        scale = max(h, w) / spec.crop_pct / min(img.width, img.height)
        img = img.resize((max(w, round(img.width * scale)), max(h, round(img.height * scale))), filt)
        left, top = (img.width - w) // 2, (img.height - h) // 2
        img = img.crop((left, top, left + w, top + h))
    arr = np.asarray(img, dtype=np.uint8).reshape(h, w, spec.channels)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))  # (H, W, C) -> (C, H, W)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, stable in float32."""
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
