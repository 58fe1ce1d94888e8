"""What the EfficientMod benchmark scripts share: their options and their result file.

The timing itself is the bench package's (``hybridvision.bench.interleave``): alternatives take turns within
one process, round after round.
"""

from __future__ import annotations

import argparse

from hybridvision.env import environment
from hybridvision.fileio import save_json

EFFICIENTMOD = ("efficientmod_xxs", "efficientmod_xs", "efficientmod_s", "efficientmod_s_conv")


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
