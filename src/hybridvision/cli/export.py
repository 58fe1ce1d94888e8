"""``hybridvision export NAME --format onnx --out PATH``: export with the dynamo exporter (legacy as fallback) and,
with ``--check``, run the file in onnxruntime and fail unless it matches PyTorch within the stated tolerance.

The file is written atomically and only after the check passed: a failed export never replaces a good file.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from ..export import (
    DYNAMO_MIN_OPSET,
    LEGACY_OPSETS,
    ExportError,
    RuntimeUnsupported,
    export_onnx,
    exporters_for,
    tolerance_text,
)
from ..factory import create_model
from ..fileio import check_writable
from .common import console

MEMORY_HINT = "export with a smaller --batch-size or --img-size"

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


def _tolerance_text() -> str:
    fp32, fp16 = tolerance_text(torch.float32), tolerance_text(torch.float16)
    return f"onnxruntime vs PyTorch fp32, fp32 export: {fp32}; fp16 export: {fp16}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="registered model name")
    parser.add_argument("--format", default="onnx", choices=("onnx",), help="output format (default onnx)")
    parser.add_argument("--out", type=Path, required=True, help="file to write (e.g. model.onnx)")
    parser.add_argument("--img-size", type=int, help="input size (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=1, help="example batch size (default 1; 2 if dynamic)")
    parser.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32", help="weights and input dtype")
    parser.add_argument(
        "--check", action="store_true", help=f"check in onnxruntime before writing: {_tolerance_text()}"
    )
    parser.add_argument(
        "--exporter", choices=("auto", "dynamo", "legacy"), default="auto", help="auto: dynamo, then legacy"
    )
    parser.add_argument(
        "--opset",
        type=int,
        help=f"ONNX opset, written exactly: {DYNAMO_MIN_OPSET} and newer (dynamo exporter) or "
        f"{LEGACY_OPSETS[0]}..{LEGACY_OPSETS[1]} (legacy); default 18, or 17 from the legacy exporter",
    )
    parser.add_argument("--pretrained", help="weights to load (our directory, or a checkpoint file)")
    parser.add_argument("--no-fuse", action="store_true", help="keep BatchNorm separate (default: folded)")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1 (the example batch that is exported), got {args.batch_size}")
    check_writable(args.out, "--out")
    exporters_for(args.exporter, args.opset)  # an opset no exporter writes fails before the model is built
    img = {"img_size": args.img_size} if args.img_size is not None else {}
    reference = create_model(args.name, pretrained=args.pretrained, **img).eval()
    if not args.no_fuse and callable(getattr(reference, "fuse", None)):
        reference.fuse()
    model = copy.deepcopy(reference).to(PRECISIONS[args.precision])
    batch = max(2, args.batch_size) if args.dynamic_batch else args.batch_size
    shape = (batch, reference.config.in_chans, *reference.config.img_hw)
    try:
        result = export_onnx(
            model,
            args.out,
            shape,
            dynamic_batch=args.dynamic_batch,
            opset=args.opset,
            exporter=args.exporter,
            check=args.check,
            reference=reference,
        )
    except RuntimeUnsupported as e:
        console.print(f"[red]error: {args.precision} export NOT checked: {e}[/red]")
        console.print(
            f"Nothing was written to {args.out}. Export without --check to get the unchecked file, and "
            "check it where onnxruntime supports it (e.g. onnxruntime-gpu with CUDAExecutionProvider)."
        )
        return 1
    except ExportError as e:
        console.print(f"[red]error: {e}[/red]\nNothing was written to {args.out}.")
        return 1
    size_mb = result.path.stat().st_size / 2**20
    dims = "dynamic batch" if args.dynamic_batch else f"batch {batch}"
    console.print(
        f"exported {args.name} ({result.dtype}, {result.exporter} exporter, opset {result.opset}, {dims}, "
        f"input {'x'.join(map(str, shape[1:]))}) -> {result.path} ({size_mb:.1f} MB)"
    )
    if args.check:
        console.print(
            f"check: onnxruntime matches PyTorch fp32: max|diff| = {result.max_abs_diff:.2e} "
            f"(tolerance: {result.tolerance})"
        )
    return 0
