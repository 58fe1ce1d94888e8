"""Judging a model trained on captioned images: whether the classifier fits the images, and, for ``diffusion eval``,
where a run's held-out captions are and how samples are conditioned on them.

Kept apart from the training task (``diffusion/captions.py``) so that evaluating a run imports no training code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ...config import from_dict
from ...data.captions import CaptionedImages, CaptionError, read_captions
from ...engine.rundir import open_model
from ..config import TASK, DiffusionDataConfig
from ..generate import Denoiser, prompt_tokens
from ..old_runs import describe_old_run
from ..sampling.condition import TextCondition
from .judge import ClassifierProbe


def first_conv_channels(model: nn.Module) -> int:
    """The input channels of a model's first convolution (0 when it has none)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 0


def check_judge(probe: ClassifierProbe, classifier: str, channels: int, num_classes: int) -> None:
    """The classifier can judge the captioned images: their ``channels``, and their ``num_classes`` (0: none)."""
    takes = first_conv_channels(probe.model)
    if takes and takes != channels:
        raise CaptionError(
            f"classifier {classifier} takes {takes}-channel images, the captioned images are read with {channels} "
            f"(data.channels): pass --classifier of {channels}-channel images, --data.channels {takes}, or "
            "--eval_samples 0 (validation loss only)"
        )
    knows = getattr(probe.model, "num_classes", 0)
    if num_classes > knows:
        raise CaptionError(
            f"the captioned data has class {num_classes - 1}, classifier {classifier} knows 0..{knows - 1}: pass a "
            "classifier of the data's classes, or drop the classes from the data"
        )


def run_caption_data(run: str | Path, data: DiffusionDataConfig) -> DiffusionDataConfig | None:
    """Where a run's held-out captions are: ``data`` when it names captioned data, else the data the run recorded
    (``caption_data`` of its model description); None for a run not trained on captions."""
    if data.dataset == "captions":
        return data
    recorded = open_model(run, task=TASK, legacy=describe_old_run).info.get("caption_data")
    return from_dict(DiffusionDataConfig, {"dataset": "captions", **recorded}) if recorded else None


def held_out_captions(data: DiffusionDataConfig, size: int, n: int) -> CaptionedImages:
    """The first ``data.eval_subset`` (else ``n``) captioned images of ``data.eval_root`` (else of ``root``)."""
    read = dict(size=size, channels=data.channels, column=data.caption_column, limit=data.eval_subset or n)
    return read_captions(data.eval_root or data.root, **read)


def caption_condition(
    denoiser: Denoiser, captions: Sequence[str], form: str = ""
) -> Callable[[list[int], Tensor], TextCondition]:
    """Evaluation conditioning on captions: sample i gets caption i mod len(captions), in ``form``."""
    states, mask = prompt_tokens(denoiser, list(captions), form)  # the last row: the null caption

    def condition(idx: list[int], labels: Tensor) -> TextCondition:
        rows = torch.as_tensor(idx) % len(captions)
        return TextCondition(states[rows], mask[rows], states[-1:], mask[-1:])

    return condition
