"""``hybridvision <command>``: each command module exposes ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..checkpoint import CheckpointError
from ..config import ConfigError
from ..engine.signals import Interrupted
from ..env import memory_error
from ..models.contract import InputError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("hybridvision.cli.models", "list registered models with params and MACs"),
    "info": ("hybridvision.cli.info", "params, MACs and feature levels of one model"),
    "summary": ("hybridvision.cli.summary", "params / MACs / CPU throughput table of a family"),
    "bench": ("hybridvision.cli.bench", "latency, throughput, memory: reproducible, against timm / onnxruntime"),
    "export": ("hybridvision.cli.export", "export to ONNX and check the file in onnxruntime"),
    "predict": ("hybridvision.cli.predict", "classify images with an exported model and its preprocessing record"),
    "plot": ("hybridvision.cli.plot", "throughput vs MACs (or accuracy) figure from bench results"),
    "train": ("hybridvision.cli.train", "train a classifier (typed config, resumable, torchrun-ready)"),
    "eval": ("hybridvision.cli.eval", "top-1/top-5 of a run's weights on its evaluation split"),
    "seg": ("hybridvision.cli.seg", "semantic segmentation (UperNet or Semantic FPN on any backbone)"),
    "det": ("hybridvision.cli.det", "detection and instance segmentation (Mask R-CNN on any backbone)"),
    "plot-run": ("hybridvision.cli.plot_run", "draw a run's loss and accuracy curves to PNG"),
    "demo": ("hybridvision.cli.demo", "train, evaluate and benchmark ascan_nano on Fashion-MNIST; write a report"),
    "study": ("hybridvision.cli.study", "a grid of training runs (points x seeds) -> accuracy/cost table and plot"),
    "diffusion": ("hybridvision.cli.diffusion", "train / evaluate class-conditional diffusion (AsCAN UNet)"),
    "generate": ("hybridvision.cli.generate", "sample a PNG grid from a trained diffusion run"),
}

# Errors a user can cause and fix: one line on stderr, exit code 2 (-v shows the traceback). OSError covers a
# missing file, a permission, a directory where a file was expected, a full disk.
USER_ERRORS = (ConfigError, InputError, CheckpointError, KeyError, ValueError, OSError)
# What to make smaller when memory runs out; a command module may say it better with its own MEMORY_HINT.
MEMORY_HINT = "use a smaller batch or smaller images (e.g. --batch_size, --eval_batch_size, --img_size) and run again"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridvision", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log details; show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    if extra and not getattr(module, "ACCEPTS_OVERRIDES", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(module.run(args) or 0)
    except Interrupted as e:  # SIGINT/SIGTERM: a checkpoint was written; say how to continue
        print(f"hybridvision: {e}", file=sys.stderr)
        return e.exit_code
    except USER_ERRORS as e:
        if args.verbose:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else _one_line(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # an allocation that cannot fit: say what to make smaller
        if args.verbose or not memory_error(e):
            raise
        print(f"error: {memory_error(e)}; {getattr(module, 'MEMORY_HINT', MEMORY_HINT)}", file=sys.stderr)
        return 2


def _one_line(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:  # "disk full: /runs/x/model.safetensors" rather than a repr
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e)


if __name__ == "__main__":
    sys.exit(main())
