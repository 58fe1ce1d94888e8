"""``hybridvision diffusion train|eval|info``: class-conditional diffusion (AsCAN UNet or the diffusers baseline).

hybridvision diffusion train --config configs/diffusion/fmnist_ascan_unet_60min.yaml
hybridvision diffusion train --resume runs/000-ascan_unet_fmnist          # continue where it stopped
hybridvision diffusion eval runs/000-ascan_unet_fmnist --n 1000 --sample.sampler heun --sample.cfg sampled
hybridvision diffusion info ascan_unet_c2i                                 # params, MACs (like `hybridvision info`)

``hybridvision.diffusion`` is imported only when a diffusion command runs: importing it registers the denoisers
in the model registry, which the other commands do not list.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ..config import add_config_args, describe_fields, dump_yaml, resolve
from . import info as info_command
from .common import config_overrides, console, resolve_run_config, table

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
    import hybridvision.diffusion  # noqa: F401  (registers the denoisers)

    if args.action == "info":
        return info_command.run(args)
    if args.action == "eval":
        return _evaluate(args)
    return _train(args)


def _train(args: argparse.Namespace) -> int:
    from ..diffusion.config import DiffusionTrainConfig
    from ..diffusion.training import train

    cfg = resolve_run_config(DiffusionTrainConfig, args.config, config_overrides(args.overrides))
    if args.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    result = train(cfg)
    s = result.summary
    if result.is_main:
        score = f"conditional accuracy {s['cond_acc']:.1f}%, FID {s['fid']:.2f}" if "cond_acc" in s else ""
        ema = f" (EMA {s['ema_cond_acc']:.1f}%, {s['ema_fid']:.2f})" if "ema_cond_acc" in s else ""
        loss = f"validation loss {s['val_loss']:.4f}"
        console.print(
            f"{result.run_dir}: {score or loss}{ema} after {s['epochs']} epochs, "
            f"{s['train_s']:.0f} s training, {s['train_img_s']:.0f} img/s"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ..diffusion.config import DiffusionEvalConfig
    from ..diffusion.evaluate import evaluate_run

    run_dir = Path(args.run)
    if not run_dir.exists():
        raise FileNotFoundError(f"{run_dir} does not exist; pass a run directory such as runs/000-ascan_unet_fmnist")
    cfg = resolve(DiffusionEvalConfig, args.config, config_overrides(args.overrides))
    if args.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    r = evaluate_run(run_dir, cfg)
    rows = [
        ["conditional accuracy", f"{r['cond_acc']:.2f}%"],
        ["FID", f"{r['fid']:.3f}  ({r['fid_kind']})"],
        ["classifier on real images", f"{r['classifier_real_top1']:.2f}%"],
        ["samples/s", f"{r['samples_per_s']:.2f} ({r['evals_per_sample']} denoiser evaluations each)"],
        ["written", r["out"] + (f", {r['grid']}" if "grid" in r else "")],
    ]
    console.print(table(f"{run_dir} ({cfg.weights} weights, {cfg.sample.sampler}-{cfg.sample.steps})", ["", ""], rows))
    return 0
