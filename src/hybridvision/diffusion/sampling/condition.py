"""What a denoiser is conditioned on, with its null for classifier-free guidance: class labels or text tokens.

A condition gives the keyword inputs of one denoiser call for its B samples (``guided=False``) or for the batched
conditional + unconditional call of guidance, 2B rows with the null in the second half (``guided=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.adapter import masked_mean


class Condition(Protocol):
    def inputs(self, guided: bool) -> dict[str, Tensor]: ...

    def to(self, device: torch.device | str) -> Condition: ...


@dataclass(frozen=True)
class ClassCondition:
    """Class labels (B,); the null is the model's learned null label."""

    labels: Tensor
    null_class: int

    def inputs(self, guided: bool) -> dict[str, Tensor]:
        if not guided:
            return {"class_labels": self.labels}
        null = torch.full_like(self.labels, self.null_class)
        return {"class_labels": torch.cat([self.labels, null])}  # (2B,)

    def to(self, device: torch.device | str) -> ClassCondition:
        return ClassCondition(self.labels.to(device), self.null_class)


def pad_tokens(states: Tensor, mask: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """Right-pad (B, L, D) tokens and their (B, L) mask to ``length`` with zeros / False."""
    extra = length - states.shape[1]
    return F.pad(states, (0, 0, 0, extra)), F.pad(mask, (0, extra), value=False)  # (B, length, D), (B, length)


def sentence_form(states: Tensor, mask: Tensor, rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Prompts as one token each, the masked mean of their tokens (the sentence vector, before the normalisation
    that the UNet's pooled path applies, which therefore sees the same vector in either form); only the prompts
    where ``rows`` (B,) is True when it is given: (B, L, D), (B, L) -> same shapes, padding after the first token."""
    real = mask.bool()
    one = torch.zeros_like(states)
    one[:, 0] = masked_mean(states, real)  # (B, L, D): the sentence vector, then padding
    one_mask = torch.zeros_like(real)
    one_mask[:, 0] = True  # (B, L)
    if rows is None:
        return one, one_mask.to(mask.dtype)
    rows = rows.to(states.device)
    return torch.where(rows[:, None, None], one, states), torch.where(rows[:, None], one_mask, real).to(mask.dtype)


def in_form(states: Tensor, mask: Tensor, form: str) -> tuple[Tensor, Tensor]:
    """Prompts' tokens and masks with the null prompt's last, in ``form``: "tokens" as they are, "sentence" every
    prompt as its sentence vector, the null as it was trained (tokens): (P + 1, L, D), (P + 1, L) -> same."""
    if form != "sentence":
        return states, mask
    return sentence_form(states, mask, torch.arange(len(states)) < len(states) - 1)


@dataclass(frozen=True)
class TextCondition:
    """Prompt tokens (B, L, D) and mask (B, L); the null is the empty prompt's tokens (1, L0, D) and mask (1, L0)."""

    states: Tensor
    mask: Tensor
    null_states: Tensor
    null_mask: Tensor

    def inputs(self, guided: bool) -> dict[str, Tensor]:
        if not guided:
            return {"encoder_hidden_states": self.states, "encoder_attention_mask": self.mask}
        B, length = len(self.states), max(self.states.shape[1], self.null_states.shape[1])
        states, mask = pad_tokens(self.states, self.mask, length)  # (B, L', D), (B, L')
        null, null_mask = pad_tokens(self.null_states, self.null_mask, length)  # (1, L', D), (1, L')
        return {
            "encoder_hidden_states": torch.cat([states, null.expand(B, -1, -1)]),  # (2B, L', D)
            "encoder_attention_mask": torch.cat([mask, null_mask.expand(B, -1)]),  # (2B, L')
        }

    def to(self, device: torch.device | str) -> TextCondition:
        return TextCondition(*(t.to(device) for t in (self.states, self.mask, self.null_states, self.null_mask)))


def as_condition(model: nn.Module, cond: Condition | Tensor) -> Condition:
    """A condition as it is, or class labels (B,) as a ``ClassCondition`` on the model's null label."""
    return ClassCondition(cond, model.null_class) if isinstance(cond, Tensor) else cond
