"""One diffusion training run: the class-, prompt- or caption-conditioned task (chosen by ``conditioning`` and
``data.dataset``), run by the engine."""

from __future__ import annotations

from ..engine import RunResult, run
from .captions import CaptionDiffusion
from .config import DiffusionTrainConfig
from .task import ClassDiffusion
from .text_task import TextDiffusion


def train(cfg: DiffusionTrainConfig) -> RunResult:
    """Train (or resume) one diffusion run (class-, prompt- or caption-conditioned); returns its directory and
    summary."""
    if cfg.data.dataset == "captions":
        task = CaptionDiffusion(cfg)
    else:
        task = TextDiffusion(cfg) if cfg.conditioning == "text" else ClassDiffusion(cfg)
    return run(task)
