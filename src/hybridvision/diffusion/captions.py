"""Text-to-image diffusion on captioned images (``data.dataset: captions``): each image is trained with its caption.

The data (``data.root``) is an image folder with ``metadata.jsonl`` or WebDataset tar shards
(``hybridvision.data.captions``), decoded once at ``img_size`` with ``data.channels`` channels. Held-out images
come from ``data.eval_root``; without one, the first ``val_images`` training images serve (the validation loss
then monitors the training data; it is not a held-out measure).

Every distinct caption is encoded once by the frozen encoder, in batches, and kept in the run's embedding cache
keyed by its text (``text/cache.py``), so a resumed run or a second run on the same data encodes nothing. The
table stays unpadded (``PackedTokens``): a batch is padded only to its own longest caption. ``label_dropout`` of
the captions become the empty caption "", the null of classifier-free guidance; the text augmentations
(``text.noise``, ``token_dropout``, ``sentence_token``) apply as with prompts.

Evaluation: the validation loss on the held-out images with their captions, and, with ``eval_samples > 0``,
samples conditioned on the held-out captions in turn (sample i on caption i mod M), whose FID is measured under
``classifier`` against the held-out images. Free captions name no class, so the reported metric is then FID;
where the data gives each image a class (``label`` / ``.cls``), the conditional accuracy is measured too (the
share of samples the classifier assigns to the class of their caption's image) and is the reported metric.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..data.captions import CaptionedImages, CaptionError, read_captions
from ..engine import Runtime
from .eval.captions import check_judge
from .eval.judge import DEFAULT_CLASSIFIER
from .eval.score import Reference, real_reference
from .text_task import TextDiffusion

log = logging.getLogger(__name__)


class CaptionDiffusion(TextDiffusion):
    """Caption-conditioned denoising diffusion, evaluated by FID (and conditional accuracy where data has classes)."""

    def load_data(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The captioned images; their "labels" are their rows in the caption table (each image: its caption)."""
        cfg, data = self.cfg, self.cfg.data
        read = dict(size=cfg.img_size, channels=data.channels, column=data.caption_column)
        train = read_captions(data.root, limit=data.train_subset, **read)
        val_n = min(cfg.val_images, data.eval_subset) if data.eval_subset else cfg.val_images
        held = read_captions(data.eval_root, limit=val_n, **read) if data.eval_root else _head(train, val_n)
        self.train_data, self.val_data = train, held
        self.classes = self._classes()
        if cfg.eval_samples and not self.classes:
            self.metric, self.higher_is_better = "fid", False
        return train.images, torch.arange(len(train)), held.images, torch.arange(len(held))

    def _classes(self) -> list[str]:
        """Class names "0".."K-1" when the held-out data gives classes, else none (free captions)."""
        labels = self.val_data.labels
        return [str(k) for k in range(int(labels.max()) + 1)] if labels is not None else []

    def fid_reference(self, val_images: Tensor) -> Reference | None:
        """The held-out images' statistics under the classifier (or the ``fid_stats`` file when one is given).

        None, with a warning, when the classifier is the default Fashion-MNIST one and cannot judge these images
        (colour, or other classes): the run is then evaluated by its validation loss, as with ``eval_samples: 0``.
        A classifier that was asked for and does not fit is an error."""
        cfg = self.cfg
        try:
            check_judge(self.probe, cfg.classifier, cfg.data.channels, len(self.classes))
        except CaptionError as e:
            if cfg.classifier != DEFAULT_CLASSIFIER:
                raise
            log.warning("no FID during training: %s", e)
            self.metric, self.higher_is_better, self.probe = "val_loss", False, None
            return None
        if len(val_images) < 2:
            raise CaptionError(f"FID needs at least 2 held-out images, {self.val_data.source} gives {len(val_images)}")
        if cfg.fid_stats:
            return super().fid_reference(val_images)
        labels, source = self.val_data.labels, self.val_data.source
        return real_reference(self.probe, val_images, labels, cfg.eval_batch_size, source)

    def load_prompts(self, rt: Runtime) -> None:
        # One table: training captions, then held-out captions, then the null caption "" (its last row).
        every = [*self.train_data.captions, *self.val_data.captions, ""]
        self.table = self.cache.packed(every).to(rt.device)
        self.eval_offset, self.null_index = len(self.train_data), len(every) - 1

    @property
    def text_dim(self) -> int:
        return self.table.dim

    def prompt_rows(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        return self.table.rows(rows)  # (B, L, D), (B, L): padded to the batch's longest caption

    def train_rows(self, labels: Tensor, gen: torch.Generator) -> Tensor:
        return labels.cpu()  # each image's own caption

    def _eval_rows(self, labels: Tensor, idx: Sequence[int]) -> Tensor:
        return self.eval_offset + torch.as_tensor(list(idx)) % len(self.val_data)  # held-out caption i mod M

    def sample_labels(self, n: int) -> Tensor | None:
        labels = self.val_data.labels  # sample i asks for the class of held-out image i mod M
        return labels[torch.arange(n) % len(labels)] if labels is not None else None

    def model_config(self, model: nn.Module) -> dict[str, Any]:
        data = self.cfg.data  # where `diffusion eval` finds the held-out captions
        keys = ("root", "eval_root", "caption_column", "channels")
        return super().model_config(model) | {"caption_data": {k: getattr(data, k) for k in keys}}

    def run_info(self) -> dict[str, Any]:
        captions = {"encoder": self.cache.name, "dim": self.text_dim, "train": len(self.train_data)}
        captions |= {"held_out": len(self.val_data), "cache": str(self.cache.path), "source": self.train_data.source}
        return super(TextDiffusion, self).run_info() | {"captions": captions}


def _head(data: CaptionedImages, n: int) -> CaptionedImages:
    """The first ``n`` of ``data`` (all when ``n`` is 0)."""
    n = n or len(data)
    labels = data.labels[:n] if data.labels is not None else None
    return CaptionedImages(data.images[:n], data.captions[:n], labels, data.source)
