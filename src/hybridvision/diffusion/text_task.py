"""Text-to-image diffusion as a task of the engine: a classification data set turned into prompts (AsCAN §3.3.2).

Each training image gets, every time it is seen, a random prompt naming its class ("a photo of a jumper", "a
pair of slacks, product photo": ``prompts.py``), drawn from the engine's seeded generator, so resume repeats it.
The prompts' token embeddings come from a frozen encoder (``text.encoder``: all-MiniLM-L6-v2 by default), are
computed once at set-up and looked up from then on (``text_cache.EmbeddingCache``); the UNet adapts them with its
text adapter and reads them through cross-attention. ``label_dropout`` of the prompts become the empty prompt
"", the null of classifier-free guidance.

Evaluation asks for the held-out prompts (names and templates never used in training): the conditional accuracy
is the share of samples our classifier assigns to the class the prompt names, so it measures whether the
conditioning goes through meaning. The validation loss uses the same held-out prompts, fixed per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..engine import Runtime
from .config import cache_dir, text_info
from .sampling.condition import TextCondition, sentence_form
from .task import ClassDiffusion
from .text.agreement import encoder_agreement
from .text.cache import EmbeddingCache
from .text.prompts import fmnist_prompts


def perturb_tokens(states: Tensor, mask: Tensor, keep: Tensor, scale: float, gen: torch.Generator) -> Tensor:
    """Conditioning augmentation (StackGAN's, on token embeddings): each prompt's real tokens plus Gaussian noise
    of a per-prompt level drawn uniformly in [0, ``scale``] times each token's RMS; rows where ``keep`` is False
    (the null prompt of guidance) and padding stay exact. The denoiser then learns a neighbourhood of every
    training prompt, not 231 points, so an unseen prompt near them is no longer off its map: (B, L, D) -> same."""
    B = states.shape[0]
    level = scale * torch.rand(B, 1, 1, generator=gen)  # (B, 1, 1)
    noise = torch.randn(states.shape, generator=gen) * level  # (B, L, D)
    rms = states.pow(2).mean(-1, keepdim=True).sqrt()  # (B, L, 1)
    where = (mask & keep[:, None]).to(states.dtype)[..., None]  # (B, L, 1)
    return states + noise.to(states.device) * rms * where


def drop_tokens(mask: Tensor, keep: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """Word dropout on the prompt: every real token but the first (BERT's [CLS]) leaves the mask with probability
    ``p``, so the adapter, the cross-attention and the pooled vector all do without it. Held-out prompts fail on
    their class *names*, not their templates (docs/generation.md): a denoiser that often misses the name's own
    tokens has to read the class from the rest of the sentence, which the encoder's attention has filled with the
    name's meaning. Rows where ``keep`` is False (the null prompt) keep every token: (B, L) -> (B, L)."""
    out = torch.rand(mask.shape, generator=gen) < p  # (B, L) candidates to drop
    out[:, 0] = False
    out &= keep.cpu()[:, None]
    return mask & ~out.to(mask.device)


def trim(states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Drop the padding columns no row of the batch uses: (B, L, D), (B, L) -> (B, L', D), (B, L')."""
    length = int(mask.sum(1).max()) if len(mask) else 1
    return states[:, :length], mask[:, :length]


class TextDiffusion(ClassDiffusion):
    """Prompt-conditioned denoising diffusion, evaluated on held-out prompts by our classifier."""

    def setup(self, rt: Runtime) -> None:
        super().setup(rt)
        cfg = self.cfg
        self.cache = EmbeddingCache(
            cfg.text.encoder, cache_dir(cfg, "text"), max_length=cfg.text.max_length, write=rt.dist.is_main
        )
        self.load_prompts(rt)

    def load_prompts(self, rt: Runtime) -> None:
        """The prompt table: every prompt's tokens, looked up (or encoded once) through the embedding cache."""
        cfg = self.cfg
        self.train_prompts = fmnist_prompts("train", cfg.text.train_names)
        self.eval_prompts = fmnist_prompts(cfg.text.eval_prompts)
        # One table: training prompts, then evaluation prompts, then the null prompt "" (its last row).
        every = [*self.train_prompts.prompts, *self.eval_prompts.prompts, ""]
        states, mask = self.cache.lookup(every)  # (P, L, D), (P, L)
        self.states, self.mask = states.to(rt.device), mask.to(rt.device)
        self.eval_offset, self.null_index = len(self.train_prompts.prompts), len(every) - 1

    @property
    def text_dim(self) -> int:
        return self.states.shape[-1]

    def model_kwargs(self) -> dict[str, Any]:
        return {"num_classes": 0, "context": "text", "context_dim": self.text_dim}

    def prompt_rows(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Tokens (B, L, D) and mask (B, L) of prompt table rows ``rows`` (B,)."""
        rows = rows.to(self.states.device)
        return self.states[rows], self.mask[rows]

    def _tokens(self, rows: Tensor, form: str = "tokens") -> dict[str, Tensor]:
        states, mask = self.prompt_rows(rows)  # (B, L, D), (B, L)
        if form == "sentence":
            states, mask = sentence_form(states, mask)
        states, mask = trim(states, mask)  # (B, L', D), (B, L')
        return {"encoder_hidden_states": states, "encoder_attention_mask": mask}

    def _eval_rows(self, labels: Tensor, idx: Sequence[int]) -> Tensor:
        return self.eval_offset + self.eval_prompts.cycle(labels, idx)

    def train_rows(self, labels: Tensor, gen: torch.Generator) -> Tensor:
        """The prompt table rows of a training batch: a random training prompt of each sample's class, (B,)."""
        return self.train_prompts.draw(labels, gen)

    def train_inputs(self, labels: Tensor, drop: Tensor, gen: torch.Generator) -> dict[str, Tensor]:
        rows = self.train_rows(labels, gen)  # (B,)
        tokens = self._tokens(rows.masked_fill(drop.cpu(), self.null_index))
        text = self.cfg.text
        if text.sentence_token > 0:  # some prompts as their sentence vector alone (the null prompt never)
            one = (torch.rand(len(rows), generator=gen) < text.sentence_token) & ~drop.cpu()  # (B,)
            states, mask = sentence_form(tokens["encoder_hidden_states"], tokens["encoder_attention_mask"], one)
            tokens = {"encoder_hidden_states": states, "encoder_attention_mask": mask}
        if text.noise > 0:
            states, mask = tokens["encoder_hidden_states"], tokens["encoder_attention_mask"]
            tokens["encoder_hidden_states"] = perturb_tokens(states, mask, ~drop, text.noise, gen)
        if text.token_dropout > 0:
            tokens["encoder_attention_mask"] = drop_tokens(
                tokens["encoder_attention_mask"], ~drop, text.token_dropout, gen
            )
        return tokens

    def val_inputs(self, idx: Sequence[int]) -> dict[str, Tensor]:
        return self._tokens(self._eval_rows(self.val_labels[list(idx)], idx), self.cfg.text.form)

    def sample_condition(self, idx: list[int], labels: Tensor) -> TextCondition:
        cond = self._tokens(self._eval_rows(labels, idx), self.cfg.text.form)
        null = self._tokens(torch.tensor([self.null_index]))
        return TextCondition(*cond.values(), *null.values())

    def run_info(self) -> dict[str, Any]:
        prompts = {"encoder": self.cache.name, "dim": self.text_dim, "train": len(self.train_prompts.prompts)}
        prompts |= {self.cfg.text.eval_prompts: len(self.eval_prompts.prompts), "cache": str(self.cache.path)}
        agreement = encoder_agreement(self.cache, self.train_prompts, self.eval_prompts)["pct"]
        prompts |= {"encoder_agreement": agreement}  # the encoder's own ceiling on the evaluation prompts
        return super().run_info() | {"prompts": prompts}

    def space_info(self) -> dict[str, Any]:
        return super().space_info() | {"text": text_info(self.cfg) | {"dim": self.text_dim}}
