"""How well the frozen text encoder itself tells the classes apart on a prompt set: the ceiling of conditioning
through meaning.

A denoiser that learns classes from the training prompts can carry them to unseen prompts only as far as the
encoder places those prompts near their class. This measures that directly, with no denoiser: each prompt's pooled
vector (``adapter.pooled_tokens``, the encoder's sentence embedding) is assigned to the nearest class centroid
(cosine) of the training prompts. The share it gets right is reported beside the conditional accuracy of every
text-to-image evaluation, so a low accuracy can be told apart from prompts the encoder cannot place.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.adapter import pooled_tokens
from .cache import EmbeddingCache
from .prompts import PromptSet


def unit_vectors(cache: EmbeddingCache, prompts: PromptSet) -> Tensor:
    """Each prompt's pooled vector (the encoder's sentence embedding), L2-normalised: (P, D)."""
    return F.normalize(pooled_tokens(*cache.lookup(prompts.prompts)), dim=-1)


def encoder_agreement(cache: EmbeddingCache, reference: PromptSet, prompts: PromptSet) -> dict[str, Any]:
    """% of ``prompts`` whose pooled vector is nearest the centroid of their own class in ``reference``, per class
    too, and the prompts it places elsewhere (with the class it places them in)."""
    ref = unit_vectors(cache, reference)  # (R, D)
    ref_labels = torch.tensor(reference.labels)
    centroids = torch.stack([ref[ref_labels == k].mean(0) for k in range(reference.num_classes)])  # (K, D)
    nearest = (unit_vectors(cache, prompts) @ F.normalize(centroids, dim=-1).T).argmax(1)  # (P,)
    labels = torch.tensor(prompts.labels)
    right = nearest == labels
    per_class = [100.0 * float(right[labels == k].float().mean()) for k in range(prompts.num_classes)]
    wrong = {prompts.prompts[i]: int(nearest[i]) for i in torch.where(~right)[0].tolist()}
    return {
        "pct": round(100.0 * float(right.float().mean()), 2),
        "per_class": [round(p, 2) for p in per_class],
        "placed_elsewhere": wrong,
    }


def nearest_prompts(cache: EmbeddingCache, reference: PromptSet, prompts: PromptSet) -> Tensor:
    """For each of ``prompts``, the index in ``reference`` of the prompt whose pooled vector lies nearest (cosine):
    (P,). Its class agreeing with the prompt's is the one-nearest-neighbour counterpart of ``encoder_agreement``."""
    return (unit_vectors(cache, prompts) @ unit_vectors(cache, reference).T).argmax(1)  # (P, R) -> (P,)
