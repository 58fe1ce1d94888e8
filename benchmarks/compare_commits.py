"""Did a change slow training down or change what it computes? Train with two commits, interleaved, and compare.

Runs ``hybridvision train`` from a checkout of BASE (a git worktree) and from this tree, alternating which goes
first, ``--rounds`` times, each run a fresh process for ``--max_steps`` steps; then compares the final weights of
the first pair (bit-exact when the change is a pure refactoring) and the training img/s of every pair:

    python benchmarks/compare_commits.py 12cd3ac --config configs/train/fmnist_ascan_nano_30min.yaml \\
        --rounds 3 --max_steps 150 --budget_minutes 0 --out results/speed/engine-vs-12cd3ac-train-speed.json

Extra ``--key value`` flags go to both runs. A run with a time budget follows the clock (its learning rate
depends on the time spent), so give ``--budget_minutes 0`` when the weights should be compared bit for bit.
Writes the per-round img/s, their ratio (this tree / BASE, median and range), whether the weights are
identical, and the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from hybridvision.checkpoint import WEIGHTS_NAME
from hybridvision.engine.rundir import RunDir
from hybridvision.env import environment
from hybridvision.fileio import save_json

ROOT = Path(__file__).resolve().parents[1]


def worktree(base: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), base], check=True)
    return into


def train(src: Path, argv: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(src / "src")}
    subprocess.run([sys.executable, "-m", "hybridvision", "train", *argv], env=env, check=True, cwd=src)


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = (load_file(str(RunDir(run).final / WEIGHTS_NAME)) for run in (a, b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", help="the commit to compare with (e.g. HEAD~1)")
    p.add_argument("--config", required=True, help="training recipe for both")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max_steps", type=int, default=150)
    p.add_argument("--out", default="results/speed/compare-commits.json")
    args, extra = p.parse_known_args()
    work = Path(tempfile.mkdtemp(prefix="hv-compare-"))
    trees = {"base": worktree(args.base, work / "base"), "head": ROOT}
    common = ["--config", str(Path(args.config).resolve()), "--max_steps", str(args.max_steps), "--progress", "false"]
    common += ["--tensorboard", "false", "--eval_every", "1000", "--data.eval_subset", "1000", *extra]
    img_s: dict[str, list[float]] = {"base": [], "head": []}
    try:
        for r in range(args.rounds):
            for label in ("base", "head") if r % 2 == 0 else ("head", "base"):
                run = work / "runs" / f"{label}-{r}"
                train(trees[label], [*common, "--out_dir", str(run.parent), "--run_name", run.name])
                img_s[label].append(RunDir(run).read_summary()["train_img_s"])
                print(f"round {r + 1} {label}: {img_s[label][-1]} img/s", flush=True)
        identical = same_weights(work / "runs" / "base-0", work / "runs" / "head-0")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees["base"])], check=False)
    ratios = [h / b for h, b in zip(img_s["head"], img_s["base"])]
    result = {
        "base": args.base,
        "head": environment()["git_sha"],
        "recipe": args.config,
        "max_steps": args.max_steps,
        "extra_flags": extra,
        "train_img_s": img_s,
        "head_over_base": {"median": round(statistics.median(ratios), 4), "min": min(ratios), "max": max(ratios)},
        "final_weights_identical": identical,
        "environment": environment(),
    }
    save_json(result, args.out)
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: result[k] for k in ("head_over_base", "final_weights_identical")}), f"-> {args.out}")


if __name__ == "__main__":
    main()
