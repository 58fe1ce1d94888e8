"""Token embeddings of prompts, computed once per encoder and kept in a safetensors file.

The training prompts of a data set are few (Fashion-MNIST: 231) and the encoder is frozen, so their embeddings are
computed once and every training step looks them up (research note generation.md §4 recommends it: it also keeps
the encoder out of the trained model). One file per encoder (its weights' digest in the name); each prompt is
stored unpadded (its real tokens only) under a hash of its text, so any set of prompts pads to its own longest.
A lookup of cached prompts never loads the encoder; new prompts are encoded, added and the file is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ...fileio import save_tensors
from ..sampling.condition import pad_tokens
from .encoders import encoder_name, load_encoder

log = logging.getLogger(__name__)


def prompt_key(prompt: str) -> str:
    return hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:20]


class EmbeddingCache:
    """Prompt -> (L, D) token embeddings of one encoder (``"minilm"`` or a transformers folder), on disk."""

    def __init__(self, encoder: str, folder: str | Path, *, max_length: int = 0, write: bool = True) -> None:
        self.encoder, self.max_length, self.write = encoder, max_length, write
        self.name = encoder_name(encoder) + (f"-max{max_length}" if max_length else "")
        self.path = Path(folder).expanduser() / f"text_{self.name}.safetensors"
        self.entries: dict[str, Tensor] = self._read()
        self.hits = self.misses = 0

    def _read(self) -> dict[str, Tensor]:
        if not self.path.is_file():
            return {}
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(self.path)))
        except Exception as e:  # a damaged cache is recomputed, never trusted
            log.warning("text embedding cache %s is unreadable (%s); recomputing it", self.path, e)
            return {}

    def lookup(self, prompts: Sequence[str], batch_size: int = 64) -> tuple[Tensor, Tensor]:
        """Token embeddings (N, L, D) and mask (N, L) of ``prompts``, padded to the longest; encodes what is new."""
        keys = [prompt_key(p) for p in prompts]
        new = list(dict.fromkeys(p for p, k in zip(prompts, keys) if k not in self.entries))
        self.misses += len(new)
        self.hits += len(prompts) - len(new)
        if new:
            self._encode(new, batch_size)
        rows = [self.entries[k] for k in keys]
        length = max(len(r) for r in rows)
        padded = [pad_tokens(r[None], torch.ones(1, len(r), dtype=torch.bool), length) for r in rows]
        return torch.cat([s for s, _ in padded]), torch.cat([m for _, m in padded])  # (N, L, D), (N, L)

    def _encode(self, prompts: list[str], batch_size: int) -> None:
        encoder = load_encoder(self.encoder, self.max_length)
        log.info("encoding %d new prompts with %s", len(prompts), self.name)
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i : i + batch_size]
            states, mask = encoder.encode(chunk)
            for p, s, m in zip(chunk, states, mask):
                self.entries[prompt_key(p)] = s[m].clone()  # (L_real, D)
        if self.write:
            meta = {"encoder": self.name, "count": str(len(self.entries)), "new": json.dumps(prompts[:1000])}
            save_tensors(self.entries, self.path, metadata=meta)
