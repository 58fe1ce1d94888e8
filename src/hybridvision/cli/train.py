"""``hybridvision train``: train a classifier from a typed config (defaults: Fashion-MNIST ``ascan_nano``).

hybridvision train                                   # the default recipe
hybridvision train --config configs/train/fmnist_ascan_nano_30min.yaml --optim.lr 1e-3
hybridvision train --resume runs/003-ascan_nano      # continue a run where it stopped
hybridvision train --init-from runs/003-ascan_nano --img-size 64   # next stage of a multi-stage recipe
torchrun --nproc_per_node=2 -m hybridvision train ... # the same command on 2 processes (DDP)
"""

from __future__ import annotations

import argparse

from ..classify.config import TrainConfig
from ..config import dump_yaml
from .common import add_typed_config, config_overrides, console, resolve_run_config

ACCEPTS_OVERRIDES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_typed_config(parser, TrainConfig)


def resolve_train_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults < --config file < flags. ``--resume RUN`` starts from RUN/config.yaml instead of the defaults."""
    return resolve_run_config(TrainConfig, args.config, config_overrides(args.overrides))


def run(args: argparse.Namespace) -> int:
    cfg = resolve_train_config(args)
    if args.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    from ..classify import train

    result = train(cfg)
    s = result.summary
    if result.is_main and "top1" in s:
        ema = f", EMA {s['ema_top1']:.2f}%" if "ema_top1" in s else ""
        console.print(
            f"{result.run_dir}: top-1 {s['top1']:.2f}%{ema} after {s['epochs']} epochs, "
            f"{s['train_s']:.0f} s training, {s['train_img_s']:.0f} img/s"
        )
    return 0
