"""How close an exported (quantized) model is to the fp32 PyTorch model, on held-out real images.

- top-1 agreement: the share of images whose predicted class is the fp32 model's;
- accuracy delta: fp32 top-1 minus the exported model's, in percentage points (only with true labels);
- SQNR: 10 log10(sum ref² / sum (ref - got)²) over the logits, in dB (higher is closer; 20 dB = the error's
  energy is 1% of the signal's).

``Tolerance`` holds the limits ``--check`` applies; ``Score.problems`` names each one missed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """Limits an exported model must meet against fp32 on the check images."""

    max_top1_drop_pp: float = 0.5  # accuracy may fall at most this much (percentage points), with labels
    min_agreement: float = 0.97  # share of top-1 predictions equal to fp32's, always applied
    min_sqnr_db: float = 15.0  # output SQNR against fp32, always applied

    @classmethod
    def sqnr_only(cls, min_sqnr_db: float = 15.0) -> Tolerance:
        """Limits for random weights, whose top-1 means nothing: the SQNR alone."""
        return cls(max_top1_drop_pp=100.0, min_agreement=0.0, min_sqnr_db=min_sqnr_db)

    def text(self) -> str:
        return (
            f"top-1 drop <= {self.max_top1_drop_pp:g} pp (with labels), agreement >= {self.min_agreement:.0%}, "
            f"SQNR >= {self.min_sqnr_db:g} dB"
        )


@dataclass(frozen=True)
class Score:
    """The exported model against fp32 on ``count`` check images."""

    count: int  # check images
    agreement: float  # share of top-1 predictions equal to fp32's
    sqnr_db: float  # of the logits
    top1_fp32: float | None  # % (None without labels)
    top1: float | None  # %, the exported model's

    @property
    def top1_drop_pp(self) -> float | None:
        return None if self.top1 is None or self.top1_fp32 is None else self.top1_fp32 - self.top1

    def problems(self, tol: Tolerance) -> list[str]:
        out = []
        drop = self.top1_drop_pp
        if drop is not None and drop > tol.max_top1_drop_pp:
            out.append(f"top-1 fell {drop:.2f} pp (limit {tol.max_top1_drop_pp:g})")
        if self.agreement < tol.min_agreement:
            out.append(f"top-1 agreement {self.agreement:.1%} (limit {tol.min_agreement:.0%})")
        if not self.sqnr_db >= tol.min_sqnr_db:
            out.append(f"SQNR {self.sqnr_db:.1f} dB (limit {tol.min_sqnr_db:g})")
        return out

    def text(self) -> str:
        acc = ""
        if self.top1 is not None:
            acc = f", top-1 {self.top1:.2f}% vs fp32 {self.top1_fp32:.2f}% ({-self.top1_drop_pp:+.2f} pp)"
        return f"{self.count} held-out images: agreement {self.agreement:.2%}, SQNR {self.sqnr_db:.1f} dB{acc}"

    def as_dict(self) -> dict:
        return {
            "images": self.count,
            "agreement": self.agreement,
            "sqnr_db": self.sqnr_db,
            "top1_fp32": self.top1_fp32,
            "top1": self.top1,
        }


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """10 log10(|ref|² / |ref - got|²); inf when identical."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    noise = float(((ref - got) ** 2).sum())
    signal = float((ref**2).sum())
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-300) / noise)


def score(ref: np.ndarray, got: np.ndarray, labels: np.ndarray | None = None) -> Score:
    """Compare (N, K) logits of the exported model (``got``) with fp32's (``ref``)."""
    if ref.shape != got.shape:
        raise ValueError(f"output shapes differ: fp32 {ref.shape}, exported {got.shape}")
    a, b = ref.argmax(1), got.argmax(1)
    acc = (lambda pred: float((pred == labels).mean() * 100)) if labels is not None else (lambda pred: None)
    return Score(len(ref), float((a == b).mean()), sqnr_db(ref, got), acc(a), acc(b))
