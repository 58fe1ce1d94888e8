"""Interleaved A/B timing for the benchmark scripts: alternatives take turns within one process, round after round.

On a shared or throttling CPU, absolute times drift; the per-round ratio of two alternatives timed back to back
does not. Each round reverses the order, so neither alternative always runs first.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch

from hybridvision.bench.timing import Timing, time_fn
from hybridvision.env import environment
from hybridvision.fileio import save_json

EFFICIENTMOD = ("efficientmod_xxs", "efficientmod_xs", "efficientmod_s", "efficientmod_s_conv")


def interleaved(
    candidates: dict[str, Callable[[], object]],
    batch_size: int,
    *,
    rounds: int,
    min_s: float,
    min_iters: int = 5,
    warmup_iters: int = 2,
    warmup_s: float = 0.1,
) -> dict[str, list[Timing]]:
    """Time every candidate once per round (order reversed every other round); returns each one's timings."""
    names = list(candidates)
    out: dict[str, list[Timing]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            out[name].append(
                time_fn(
                    candidates[name],
                    batch_size,
                    warmup_iters=warmup_iters,
                    warmup_s=warmup_s,
                    min_iters=min_iters,
                    min_s=min_s,
                )
            )
    return out


def summarize(timings: dict[str, list[Timing]], baseline: str) -> dict[str, dict[str, float]]:
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
    """A no-argument eval-mode forward for ``interleaved``."""
    model.eval()

    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return run


def parser(doc: str, out: str, rounds: int = 7) -> argparse.ArgumentParser:
    """The options every EfficientMod benchmark takes; scripts add their own."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(EFFICIENTMOD), help="comma-separated names")
    p.add_argument("--rounds", type=int, default=rounds, help=f"interleaved rounds per setting (default: {rounds})")
    p.add_argument("--min-seconds", type=float, default=1.0, help="timed seconds per candidate and round")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads (default: 2)")
    p.add_argument("--out", default=out, help=f"result file (default: {out})")
    return p


def write_result(args: argparse.Namespace, what: str, mode: str, rows: list[dict]) -> None:
    """The JSON result: what was compared, how, the environment, the rows (written atomically)."""
    result = {
        "what": what,
        "precision": "fp32",
        "mode": mode,
        "rounds": args.rounds,
        "min_seconds_per_round": args.min_seconds,
        "environment": environment(),
        "rows": rows,
    }
    save_json(result, args.out)
    print(f"wrote {args.out}")
