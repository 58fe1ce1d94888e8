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
from .common import add_typed_config, score_line, train_command, training_facts

ACCEPTS_OVERRIDES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_typed_config(parser, TrainConfig)


def run(args: argparse.Namespace) -> int:
    from ..classify import train

    return train_command(args, TrainConfig, "train", train, describe)


def describe(summary: dict) -> str:
    """A finished classification run in one line ("" when it was never evaluated)."""
    score = score_line(summary, "top1", "top-1")
    return score and f"{score} {training_facts(summary)}"
