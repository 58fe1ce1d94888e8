"""Token embeddings of prompts, computed once per encoder and kept in a safetensors file.

The training prompts of a data set are few (Fashion-MNIST: 231) and the encoder is frozen, so their embeddings are
computed once and every training step looks them up (research note generation.md §4 recommends it: it also keeps
the encoder out of the trained model). One file per encoder (its weights' digest in the name); each prompt is
stored unpadded (its real tokens only) under a hash of its text, so any set of prompts pads to its own longest.
A lookup of cached prompts never loads the encoder; new prompts are encoded in batches (sorted by length, so a
batch pads little), added, and the file is rewritten once per lookup. Captioned data has a distinct prompt per
image: ``packed`` gives their tokens end to end (``PackedTokens``), and a batch is padded only to its own longest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ...fileio import save_tensors
from ..sampling.condition import pad_tokens
from .encoders import encoder_name, load_encoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackedTokens:
    """The real tokens of P prompts end to end: prompt i is ``tokens[starts[i] : starts[i] + lengths[i]]``."""

    tokens: Tensor  # (T, D) float32, T = the prompts' real tokens in all
    starts: Tensor  # (P,) int64
    lengths: Tensor  # (P,) int64, each >= 1

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def dim(self) -> int:
        return self.tokens.shape[-1]

    def to(self, device: torch.device | str) -> PackedTokens:
        return PackedTokens(self.tokens.to(device), self.starts.to(device), self.lengths.to(device))

    def rows(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Prompts ``rows`` (B,) padded to the longest of them: tokens (B, L, D) and mask (B, L)."""
        rows = rows.to(self.lengths.device)
        lengths = self.lengths[rows]  # (B,)
        steps = torch.arange(int(lengths.max()) if len(rows) else 1, device=rows.device)  # (L,)
        mask = steps[None] < lengths[:, None]  # (B, L)
        index = (self.starts[rows][:, None] + steps[None]).clamp_max(len(self.tokens) - 1)  # (B, L)
        return self.tokens[index] * mask[..., None], mask  # (B, L, D), (B, L)


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
        rows = self._rows(prompts, batch_size)
        length = max(len(r) for r in rows)
        padded = [pad_tokens(r[None], torch.ones(1, len(r), dtype=torch.bool), length) for r in rows]
        return torch.cat([s for s, _ in padded]), torch.cat([m for _, m in padded])  # (N, L, D), (N, L)

    def packed(self, prompts: Sequence[str], batch_size: int = 64) -> PackedTokens:
        """The real tokens of ``prompts`` end to end, unpadded and each distinct prompt once (many captions: no
        (N, L_max, D) table); encodes what is new."""
        self._rows(prompts, batch_size)  # encode what is new
        where = {k: i for i, k in enumerate(dict.fromkeys(prompt_key(p) for p in prompts))}  # key -> distinct row
        rows = [self.entries[k] for k in where]
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (U,)
        index = torch.tensor([where[prompt_key(p)] for p in prompts], dtype=torch.long)  # (P,)
        starts = torch.cumsum(lengths, 0) - lengths
        return PackedTokens(torch.cat(rows), starts[index], lengths[index])

    def _rows(self, prompts: Sequence[str], batch_size: int) -> list[Tensor]:
        """Each prompt's (L_real, D) tokens, encoding the distinct new ones once, in batches."""
        keys = [prompt_key(p) for p in prompts]
        new = list(dict.fromkeys(p for p, k in zip(prompts, keys) if k not in self.entries))
        self.misses += len(new)
        self.hits += len(prompts) - len(new)
        if new:
            self._encode(new, batch_size)
        return [self.entries[k] for k in keys]

    def _encode(self, prompts: list[str], batch_size: int) -> None:
        """Encode ``prompts`` in batches of similar length (little padding) and write the file once."""
        encoder = load_encoder(self.encoder, self.max_length)
        log.info("encoding %d new prompts with %s", len(prompts), self.name)
        prompts = sorted(prompts, key=len)
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i : i + batch_size]
            states, mask = encoder.encode(chunk)
            for p, s, m in zip(chunk, states, mask):
                self.entries[prompt_key(p)] = s[m].clone()  # (L_real, D)
        if self.write:
            meta = {"encoder": self.name, "count": str(len(self.entries)), "new": json.dumps(prompts[:1000])}
            save_tensors(self.entries, self.path, metadata=meta)
