"""``hybridvision export NAME|RUN --format FORMAT --out PATH``: write a model for a runtime, with its preprocessing
and labels beside it (``PATH.json``), and with ``--check`` compare it with the fp32 PyTorch model first.

Formats: ``onnx`` (onnxruntime; fp32, fp16, int8 QDQ), ``openvino`` (IR .xml/.bin; fp32, int8 from the QDQ file),
``executorch`` (.pte, XNNPACK; fp32, int8), ``pt2`` (torch.export program; fp32, PT2E int8 for torch.compile).
``--precision int8 --calib SOURCE`` calibrates on real images (``fashion-mnist`` or an image folder) and
``--check`` scores the int8 model on other images of the same source against fp32: it fails beyond the stated
top-1 drop, top-1 agreement and SQNR limits. Files are written atomically and only after the check passed: a
failed export never replaces a good file.
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
from ..export.artifact import write_artifact
from ..export.deploy import FLOAT_TOLERANCE, FORMATS, ExportRequest, export_artifact
from ..export.quantize import FLOAT_LAYERS
from ..export.scoring import Tolerance
from ..fileio import check_writable
from .common import console
from .deploy_source import Source, load_source

MEMORY_HINT = "export with a smaller --batch-size or --img-size"

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "int8": None}


def _tolerance_text() -> str:
    fp32, fp16 = tolerance_text(torch.float32), tolerance_text(torch.float16)
    return (
        f"the file's runtime vs PyTorch fp32: fp32 ONNX {fp32} (other runtimes' fp32: + 1e-05 * max|output|); "
        f"fp16 ONNX {fp16}; int8: the --max-top1-drop / --min-agreement / --min-sqnr limits on held-out --calib "
        "images"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="registered model name, or a classification run / saved-model folder")
    parser.add_argument("--format", default="onnx", choices=tuple(FORMATS), help="output format (default onnx)")
    parser.add_argument("--out", type=Path, required=True, help="file to write (model.onnx/.xml/.pte/.pt2)")
    parser.add_argument("--img-size", type=int, help="input size (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=1, help="example batch size (default 1; 2 if dynamic)")
    parser.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32", help="fp32, fp16 (onnx), int8")
    parser.add_argument("--calib", help="int8 calibration (and --check) images: 'fashion-mnist' or an image folder")
    parser.add_argument("--calib-count", type=int, default=256, help="calibration images (default 256)")
    parser.add_argument("--check-count", type=int, default=500, help="held-out check images (default 500)")
    tol = Tolerance()
    parser.add_argument(
        "--max-top1-drop",
        type=float,
        default=tol.max_top1_drop_pp,
        help=f"int8 --check: largest top-1 drop, pp (default {tol.max_top1_drop_pp:g})",
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=tol.min_agreement,
        help=f"int8 --check: least top-1 agreement with fp32 (default {tol.min_agreement:g})",
    )
    parser.add_argument(
        "--min-sqnr",
        type=float,
        default=tol.min_sqnr_db,
        help=f"int8 --check: least output SQNR, dB (default {tol.min_sqnr_db:g})",
    )
    parser.add_argument("--mean", type=_floats, help="override the recorded mean (comma-separated, per channel)")
    parser.add_argument("--std", type=_floats, help="override the recorded std")
    parser.add_argument("--threads", type=int, default=0, help="runtime threads for the check (0: default)")
    parser.add_argument("--check", action="store_true", help=f"check before writing: {_tolerance_text()}")
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


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1 (the example batch that is exported), got {args.batch_size}")
    check_writable(args.out, "--out")
    exporters_for(args.exporter, args.opset)  # an opset no exporter writes fails before the model is built
    source = load_source(args.name, args.pretrained, args.img_size, args.mean, args.std)
    reference = source.model
    if not args.no_fuse and callable(getattr(reference, "fuse", None)):
        reference.fuse()
    batch = max(2, args.batch_size) if args.dynamic_batch else args.batch_size
    if args.format != "onnx" or args.precision == "int8":
        return _export_artifact(args, source, batch)
    model = copy.deepcopy(reference).to(PRECISIONS[args.precision])
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
    details = f"{result.dtype}, {result.exporter} exporter, opset {result.opset}"
    _say_exported(args, batch, details, shape[1:], result.path)
    if args.check:
        console.print(
            f"check: onnxruntime matches PyTorch fp32: max|diff| = {result.max_abs_diff:.2e} "
            f"(tolerance: {result.tolerance})"
        )
    _write_record(args, source)
    return 0


def _say_exported(args: argparse.Namespace, batch: int, details: str, chw: tuple, path: Path) -> None:
    size_mb = path.stat().st_size / 2**20
    dims = "dynamic batch" if args.dynamic_batch else f"batch {batch}"
    shape = "x".join(map(str, chw))
    console.print(f"exported {args.name} ({details}, {dims}, input {shape}) -> {path} ({size_mb:.1f} MB)")


def _write_record(args: argparse.Namespace, source: Source) -> None:
    from ..export.artifact import Artifact

    artifact = Artifact(source.name, "onnx", args.precision, "onnxruntime", args.out.name, source.spec, source.labels)
    console.print(f"preprocessing and labels -> {write_artifact(artifact, args.out)}")


def _export_artifact(args: argparse.Namespace, source: Source, batch: int) -> int:
    """Every format but fp32/fp16 ONNX (which keeps the exporter and opset choices above)."""
    tol = Tolerance(args.max_top1_drop, args.min_agreement, args.min_sqnr)
    request = ExportRequest(
        args.format, args.precision, batch, args.dynamic_batch, args.calib, args.calib_count, args.check_count,
        args.check, tol, args.threads,
    )  # fmt: skip
    try:
        outcome = export_artifact(source.model, args.out, source.spec, source.labels, source.name, request)
    except ExportError as e:
        console.print(f"[red]error: {e}[/red]\nNothing was written to {args.out}.")
        return 1
    _say_exported(args, batch, f"{args.format}, {args.precision}", (source.spec.channels, *source.spec.input_size),
                  outcome.path)  # fmt: skip
    if args.precision == "int8":
        console.print(f"int8: convolutions and linear layers; kept in float: {', '.join(FLOAT_LAYERS)}")
    if outcome.score is not None and args.precision == "int8":
        console.print(f"check against fp32 PyTorch: {outcome.score.text()} (limits: {tol.text()})")
    elif outcome.max_abs_diff is not None:
        atol, rtol = FLOAT_TOLERANCE[args.precision]
        console.print(
            f"check: matches PyTorch fp32: max|diff| = {outcome.max_abs_diff:.2e} (tolerance: max|diff| <= "
            f"{atol:.0e} + {rtol:.0e} * max|output|)"
        )
    console.print(f"preprocessing and labels -> {outcome.record}")
    return 0
