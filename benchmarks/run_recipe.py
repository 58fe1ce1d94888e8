"""Run a training recipe and commit-ready results: ``results/classify/<recipe>/`` with the summary, curves and config
(committed: ``results/classify/fmnist_ascan_nano_{30min,2h}/``).

    python benchmarks/run_recipe.py configs/train/fmnist_ascan_nano_30min.yaml
    python benchmarks/run_recipe.py configs/train/fmnist_ascan_nano_2h.yaml --threads 2

Extra ``--key value`` flags override the recipe (as with ``hybridvision train``). Writes
``results/classify/<recipe>/summary.json`` (wall time, epochs, train img/s, top-1/top-5 of the weights and their EMA,
environment), the resolved config, the model description, ``curves.png`` and the training and evaluation logs.
The run itself stays in ``runs/recipes/<recipe>``: run again, the script continues it where it stopped (a
finished run is exported again, not retrained).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hybridvision.classify import TrainConfig, train
from hybridvision.config import parse_overrides, resolve
from hybridvision.engine.report import export_record, export_weights


def main(recipe: str, *flags: str) -> Path:
    name = Path(recipe).stem
    overrides = {"out_dir": "runs/recipes", "run_name": name, "resume": "auto", **parse_overrides(list(flags))}
    cfg = resolve(TrainConfig, recipe, overrides)
    result = train(cfg)
    out = Path("results/classify") / name
    summary = export_record(result.run_dir, out, recipe=recipe, label=cfg.model)
    export_weights(Path(result.run_dir) / "final", out / "weights")
    print(f"wrote {out}: top-1 {summary.get('top1')}, EMA {summary.get('ema_top1')}, {summary['train_s']} s")
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], *sys.argv[2:])
