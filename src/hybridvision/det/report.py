"""Commit-ready results of detection runs (``benchmarks/run_det_results.sh``): a folder per run with its summary,
curves, config and logs, the test split scored once (``test.json``) with the weights it scored (``weights/``, a
folder ``det eval`` and ``det predict`` read), and one table of the families side by side.

The test split is scored once per final recipe: ``score_test`` refuses to write over an existing ``test.json``,
so a second scoring (after changing a setting, say) is a deliberate act (delete the file), not an accident.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..engine.report import export_record, export_weights
from ..engine.rundir import RunDir
from ..env import environment
from ..fileio import save_json
from .evaluate import eval_defaults, evaluate_run

TEST_FILE = "test.json"
WEIGHTS_DIR = "weights"  # beside test.json: the weights it scored, as a save_pretrained folder
TEST_SPLIT = "test2017"  # the scenes' test split: scenes of the Fashion-MNIST test items
STATS = ("ap", "ap50", "ap75", "aps", "apm", "apl", "ar100")


def export_run(run_dir: str | Path, out: str | Path, recipe: str = "") -> dict[str, Any]:
    """Write ``out/``: the run's config, logs, curves.png and summary.json (its validation scores). Returns it."""
    label = RunDir(run_dir).read_summary().get("detector", Path(run_dir).name)
    return export_record(run_dir, out, recipe=recipe, label=label)


def chosen_weights(summary: dict[str, Any]) -> str:
    """The weights a run reports: its EMA ("ema") where that scored a higher validation box AP, else "model"."""
    return "ema" if summary.get("ema_box_ap", -math.inf) > summary.get("box_ap", -math.inf) else "model"


def score_test(run_dir: str | Path, out: str | Path, weights: str = "model") -> dict[str, Any]:
    """Score ``weights`` of a finished run on the test split, once: ``out/test.json`` with ``split``, ``model``,
    ``box_ap``, ``mask_ap`` (%), ``total_train_s`` and COCO's full statistics, and those weights in ``out/weights``.
    Refuses an existing file."""
    run_dir, path = Path(run_dir), Path(out) / TEST_FILE
    if path.exists():
        raise FileExistsError(f"{path} exists: the test split is scored once per recipe; delete it to score again")
    summary = RunDir(run_dir).read_summary()
    base = eval_defaults(run_dir)
    cfg = replace(base, weights=weights, data=replace(base.data, eval_split=TEST_SPLIT))
    scores = evaluate_run(run_dir, cfg)[weights]
    record = {
        "split": "test",
        "coco_split": TEST_SPLIT,
        "model": summary.get("model", ""),
        "detector": summary.get("detector", ""),
        "weights": weights,
        "box_ap": scores["box"]["ap"],
        "mask_ap": scores["mask"]["ap"],
        "total_train_s": summary["train_s"],
        "train_img_s": summary.get("train_img_s"),
        "precision": summary.get("precision", ""),  # what it trained in (fp32, or bf16 autocast)
        "scored_in": scores["precision"],  # what it ran in here: the run's own precision (det eval --amp)
        "params": summary.get("params"),
        "box": {k: scores["box"][k] for k in STATS},
        "mask": {k: scores["mask"][k] for k in STATS},
        "per_class": {kind: scores[kind].get("per_class", {}) for kind in ("box", "mask")},
        "detections": scores["detections"],
        "run": str(run_dir),
        "weights_dir": WEIGHTS_DIR,
        "environment": environment(),
    }
    export_weights(RunDir(run_dir).weights_dir(), Path(out) / WEIGHTS_DIR, ema=weights == "ema")
    save_json(record, path)
    return record


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _precision(folder: Path, test: dict[str, Any]) -> str:
    """What a result trained in: its test record's ``precision``, else its summary's (records from before)."""
    if test.get("precision"):
        return test["precision"]
    summary = folder / "summary.json"
    return json.loads(summary.read_text()).get("precision", "-") if summary.is_file() else "-"


def results_table(result_dirs: Sequence[str | Path], latency_json: str | Path | None = None) -> str:
    """Markdown: training and scoring precision, params, MACs, test box and mask AP, training img/s and time, and
    batch-1 latency per result (a detector's latency is its architecture's: measured in fp32, whatever it trained
    in)."""
    latency = {}
    if latency_json and Path(latency_json).is_file():
        latency = {r["model"]: r for r in json.loads(Path(latency_json).read_text())["rows"]}
    cols = [
        "detector",
        "trained in",
        "scored in",
        "params",
        "GMACs",
        "box AP %",
        "mask AP %",
        "box AP50 %",
        "train img/s",
        "train min",
    ]
    lines = ["| " + " | ".join([*cols, "latency b1 ms"]) + " |", "|---" * (len(cols) + 1) + "|"]
    for folder in map(Path, result_dirs):
        test = json.loads((folder / TEST_FILE).read_text())
        row = latency.get(test["detector"], {})
        cells = [
            test["detector"],
            _precision(folder, test),
            test.get("scored_in", "fp32"),  # records from before scored_in was written were all scored in fp32
            f"{test['params'] / 1e6:.2f}M" if test.get("params") else "-",
            _num(row.get("gmacs"), ".2f"),
            f"{test['box_ap']:.2f}",
            f"{test['mask_ap']:.2f}",
            f"{test['box']['ap50']:.2f}",
            _num(test.get("train_img_s"), ".1f"),
            f"{test['total_train_s'] / 60:.1f}",
            _num(row.get("latency_p50_ms"), ".1f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
