"""Interleaved A/B timing in one process: alternatives take turns, round after round, on the bench's timing loops.

On a shared or throttling CPU, absolute times drift; the per-round ratio of two alternatives timed back to back
does not. Each round reverses the order, so neither alternative always runs first.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping

import torch

from .timing import Timing, time_fn


def interleaved(
    candidates: Mapping[str, Callable[[], object]],
    batch_size: int,
    *,
    rounds: int,
    min_s: float,
    min_iters: int = 5,
    warmup_iters: int = 2,
    warmup_s: float = 0.1,
    before: Mapping[str, Callable[[], object]] | None = None,
) -> dict[str, list[Timing]]:
    """Time every candidate once per round (order reversed every other round); returns each one's timings.

    ``before[name]()`` runs, untimed, right before each of that candidate's turns (e.g. to switch an allocator
    policy that the alternatives differ in).
    """
    names = list(candidates)
    out: dict[str, list[Timing]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            if before and name in before:
                before[name]()
            timing = time_fn(
                candidates[name],
                batch_size,
                warmup_iters=warmup_iters,
                warmup_s=warmup_s,
                min_iters=min_iters,
                min_s=min_s,
            )
            out[name].append(timing)
    return out


def summarize(timings: Mapping[str, list[Timing]], baseline: str) -> dict[str, dict[str, float]]:
    """Median p50 (ms) per candidate over rounds, and its per-round p50 ratio to ``baseline`` (median/min/max)."""
    base = [t.p50_ms for t in timings[baseline]]
    out = {}
    for name, runs in timings.items():
        p50 = [t.p50_ms for t in runs]
        ratios = [a / b for a, b in zip(p50, base)]
        out[name] = {
            "p50_ms_median": round(statistics.median(p50), 3),
            f"ratio_to_{baseline}_median": round(statistics.median(ratios), 4),
            f"ratio_to_{baseline}_min": round(min(ratios), 4),
            f"ratio_to_{baseline}_max": round(max(ratios), 4),
            "iters_per_round": round(statistics.mean(len(t.times) for t in runs), 1),
        }
    return out


def inference(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """A no-argument eval-mode, inference-mode forward of ``model`` on ``x`` (a candidate for ``interleaved``)."""
    model.eval()

    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return run
