"""One diffusion training run: the class- or text-conditioned task, chosen by ``conditioning``, run by the engine."""

from __future__ import annotations

from ..engine import RunResult, run
from .config import DiffusionTrainConfig
from .task import ClassDiffusion
from .text_task import TextDiffusion


def train(cfg: DiffusionTrainConfig) -> RunResult:
    """Train (or resume) one diffusion run (class- or text-conditioned); returns its directory and summary."""
    task = TextDiffusion(cfg) if cfg.conditioning == "text" else ClassDiffusion(cfg)
    return run(task)
