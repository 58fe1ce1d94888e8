"""``hybridvision predict ARTIFACT IMAGE...``: classify image files with an exported model and the preprocessing
and labels recorded beside it (``hybridvision export ... --out ARTIFACT`` wrote ``ARTIFACT.json``).

No model code runs: the file goes to its own runtime (onnxruntime, OpenVINO, ExecuTorch or torch.export), images
are read with Pillow and numpy as the record says, and the top classes are printed (or written as JSON).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..export.artifact import preprocess_image, read_artifact, softmax
from ..export.runtimes import load_runner
from ..fileio import save_json
from .common import console, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", type=Path, help="exported model file (or its .json record)")
    parser.add_argument("images", type=Path, nargs="+", help="image files to classify")
    parser.add_argument("--top", type=int, default=3, help="classes shown per image (default 3)")
    parser.add_argument("--threads", type=int, default=0, help="runtime threads (0: the runtime's default)")
    parser.add_argument("--json", type=Path, help="also write the predictions here")


def predict(artifact_path: Path, images: list[Path], top: int = 3, threads: int = 0) -> list[dict]:
    """[{image, top: [(label, probability), ...]}] for each image, one at a time (any exported batch size)."""
    artifact, model_file = read_artifact(artifact_path)
    run = load_runner(model_file, threads, artifact.precision)
    spec, labels = artifact.preprocess, artifact.labels
    out = []
    for path in images:
        x = spec.normalize(preprocess_image(path, spec)[None])  # (C, H, W) -> (1, C, H, W)
        probs = softmax(run(x))[0]
        best = np.argsort(-probs)[:top]
        out.append({"image": str(path), "top": [(labels[i], float(probs[i])) for i in best]})
    return out


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ValueError(f"--top must be >= 1, got {args.top}")
    for path in args.images:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image file")
    results = predict(args.artifact, args.images, args.top, args.threads)
    rows = [[r["image"], ", ".join(f"{label} {p:.1%}" for label, p in r["top"])] for r in results]
    console.print(table(f"{args.artifact.name}: top-{args.top}", ["image", "classes"], rows))
    if args.json:
        save_json({"artifact": str(args.artifact), "predictions": results}, args.json)
        console.print(f"wrote {args.json}")
    return 0
