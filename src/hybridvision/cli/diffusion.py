"""``hybridvision diffusion train|eval|info``: class-conditional diffusion (AsCAN UNet or the diffusers baseline).

hybridvision diffusion train --config configs/diffusion/fmnist_ascan_unet_60min.yaml
hybridvision diffusion train --resume runs/000-ascan_unet_fmnist          # continue where it stopped
hybridvision diffusion eval runs/000-ascan_unet_fmnist --n 1000 --sample.sampler heun --sample.cfg sampled
hybridvision diffusion info ascan_unet_c2i                                 # params, MACs (like `hybridvision info`)

``hybridvision.diffusion`` is imported only when a diffusion command runs (``--help`` lists the config keys by
importing just the config classes).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..config import add_config_args, describe_fields
from . import info as info_command
from .common import command_flags, console, existing_run, no_words, resolved, table, train_command, training_facts

ACCEPTS_OVERRIDES = True


class _KeysParser(argparse.ArgumentParser):
    """Lists a config class's keys in ``--help``, importing the class only then (see the module docstring)."""

    config_class: Callable[[], type] | None = None

    def format_help(self) -> str:
        if self.config_class is not None:
            self.epilog = "config keys (set with --key value):\n" + "\n".join(describe_fields(self.config_class()))
        return super().format_help()


def _train_config() -> type:
    from ..diffusion.config import DiffusionTrainConfig

    return DiffusionTrainConfig


def _eval_config() -> type:
    from ..diffusion.config import DiffusionEvalConfig

    return DiffusionEvalConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_KeysParser)
    train = sub.add_parser("train", help="train a denoiser (typed config, resumable, torchrun-ready)")
    train.config_class = _train_config
    evaluate = sub.add_parser("eval", help="conditional accuracy and FID of a run's samples, with a grid")
    evaluate.add_argument("run", help="training run directory (or its final/ folder)")
    evaluate.config_class = _eval_config
    for p in (train, evaluate):
        add_config_args(p)
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    info = sub.add_parser("info", help="params, MACs and config of a registered denoiser")
    info.add_argument("name", help="registered denoiser name (ascan_unet_*, diffusers_unet_*)")
    info.add_argument("--img-size", type=int, help="input size (default: the model's)")
    info.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    if args.action == "info":
        return info_command.run(args)
    if args.action == "eval":
        return _evaluate(args)
    return _train(args)


def _train(args: argparse.Namespace) -> int:
    from ..diffusion.training import train

    return train_command(args, _train_config(), "diffusion train", train, describe)


def describe(summary: dict) -> str:
    """A finished diffusion run in one line: its scores, or its validation loss when it was not scored."""
    if "cond_acc" in summary:
        score = f"conditional accuracy {summary['cond_acc']:.1f}%, FID {summary['fid']:.2f}"
    elif "fid" in summary:  # captions that name no class
        score = f"FID {summary['fid']:.2f}, validation loss {summary['val_loss']:.4f}"
    else:
        score = f"validation loss {summary['val_loss']:.4f}"
    ema = f" (EMA {summary['ema_cond_acc']:.1f}%, {summary['ema_fid']:.2f})" if "ema_cond_acc" in summary else ""
    return f"{score}{ema} {training_facts(summary)}"


def _evaluate(args: argparse.Namespace) -> int:
    from ..diffusion.evaluate import evaluate_run

    run_dir = existing_run(args.run, "runs/000-ascan_unet_fmnist")
    words, flags = command_flags(args, _eval_config())
    no_words(words, "diffusion eval RUN")
    cfg = resolved(args, _eval_config(), flags)
    if cfg is None:
        return 0
    r = evaluate_run(run_dir, cfg)
    rows = [
        *([["conditional accuracy", f"{r['cond_acc']:.2f}%"]] if "cond_acc" in r else []),  # not for free captions
        ["FID", f"{r['fid']:.3f}  ({r['fid_kind']})"],
        *([["classifier on real images", f"{r['classifier_real_top1']:.2f}%"]] if "cond_acc" in r else []),
        ["samples/s", f"{r['samples_per_s']:.2f} ({r['evals_per_sample']} denoiser evaluations each)"],
        ["written", r["out"] + (f", {r['grid']}" if "grid" in r else "")],
    ]
    console.print(table(f"{run_dir} ({cfg.weights} weights, {cfg.sample.sampler}-{cfg.sample.steps})", ["", ""], rows))
    return 0
