"""Run a training recipe and commit-ready results: ``results/classify/<recipe>/`` with the summary, curves and config
(committed: ``results/classify/fmnist_ascan_nano_{30min,2h}/``).

    python benchmarks/run_recipe.py configs/train/fmnist_ascan_nano_30min.yaml
    python benchmarks/run_recipe.py configs/train/fmnist_ascan_nano_2h.yaml --threads 2

Extra ``--key value`` flags override the recipe (as with ``hybridvision train``). Writes
``results/classify/<recipe>/summary.json`` (wall time, epochs, train img/s, top-1/top-5 of the weights and their EMA,
environment), ``config.yaml`` (resolved), ``curves.png``, ``train_log.csv`` and ``eval_log.csv``. The run itself
stays in ``runs/recipes/<recipe>``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from hybridvision.classify import TrainConfig, train
from hybridvision.config import parse_overrides, resolve
from hybridvision.engine.logs import EVAL_CSV, TRAIN_CSV
from hybridvision.engine.report import plot_curves
from hybridvision.fileio import save_json


def main(recipe: str, *flags: str) -> Path:
    name = Path(recipe).stem
    overrides = {"out_dir": "runs/recipes", "run_name": name, **parse_overrides(list(flags))}
    cfg = resolve(TrainConfig, recipe, overrides)
    result = train(cfg)
    out = Path("results/classify") / name
    out.mkdir(parents=True, exist_ok=True)
    summary = {"recipe": recipe, "target_note": _target(recipe), **result.summary}
    save_json(summary, out / "summary.json")
    for file in ("config.yaml", TRAIN_CSV, EVAL_CSV):
        shutil.copyfile(result.run_dir / file, out / file)
    plot_curves([result.run_dir], out / "curves.png", labels=[cfg.model])
    print(f"wrote {out}: top-1 {summary.get('top1')}, EMA {summary.get('ema_top1')}, {summary['train_s']} s")
    return out


def _target(recipe: str) -> str:
    first = Path(recipe).read_text().splitlines()[0]
    return first.lstrip("# ").strip()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], *sys.argv[2:])
