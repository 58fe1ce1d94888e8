"""Commit-ready results of segmentation runs (``benchmarks/run_seg_results.sh``): a folder per run with its summary,
curves, per-class IoU, config and logs, overlay examples, and one table of mIoU against measured throughput."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..engine.report import export_record
from ..engine.rundir import RunDir
from ..fileio import save_json, save_text
from .config import PredictConfig
from .evaluate import eval_defaults, evaluate_run
from .predict import predict_scenes


def _pct(v: float) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f}"


def iou_markdown(results: dict[str, dict[str, Any]]) -> str:
    """Per-class IoU of each evaluated weight set as a markdown table, with the means below."""
    kinds = list(results)
    lines = ["| class | " + " | ".join(f"{k} IoU %" for k in kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for name in results[kinds[0]]["iou"]:
        lines.append(f"| {name} | " + " | ".join(_pct(results[k]["iou"][name]) for k in kinds) + " |")
    for key, label in (("miou", "**mIoU**"), ("aacc", "pixel accuracy"), ("macc", "mean accuracy")):
        lines.append(f"| {label} | " + " | ".join(_pct(results[k][key]) for k in kinds) + " |")
    return "\n".join(lines) + "\n"


def export_run(run_dir: str | Path, out: str | Path, recipe: str = "", overlays: int = 0) -> dict[str, Any]:
    """Write ``out/``: per_class_iou.{json,md}, ``overlays/scene_NNN.png`` for the first ``overlays`` evaluation
    images, the run's config and logs, curves.png and, last, summary.json (+ per-class IoU). Returns the summary."""
    run_dir, out = Path(run_dir), Path(out)
    results = evaluate_run(run_dir, eval_defaults(run_dir))
    save_json(results, out / "per_class_iou.json")
    save_text(iou_markdown(results), out / "per_class_iou.md")
    if overlays:
        predict_scenes(run_dir, PredictConfig(scenes=overlays, out=str(out / "overlays")))
    label = RunDir(run_dir).read_summary().get("segmentor", run_dir.name)
    return export_record(run_dir, out, recipe=recipe, label=label, extra={"per_class_iou": results})


def _speed(bench_json: str | Path | None) -> dict[str, dict[str, dict[str, Any]]]:
    """{model: {"latency": batch-1 row, "throughput": the largest batch's row}} from a bench result document."""
    if not bench_json:
        return {}
    rows = [r for r in json.loads(Path(bench_json).read_text())["rows"] if r.get("status") == "ok"]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        entry = out.setdefault(row["model"], {})
        if row["batch_size"] == 1:
            entry["latency"] = row
        if row["batch_size"] >= entry.get("throughput", {}).get("batch_size", 0):
            entry["throughput"] = row
    return out


def results_table(result_dirs: Sequence[str | Path], bench_json: str | Path | None = None) -> str:
    """Markdown: mIoU (model, EMA), training img/s, and inference latency / throughput of the same models."""
    speed = _speed(bench_json)
    head = (
        "| model | params | mIoU % | EMA mIoU % | aAcc % | train img/s | latency p50 ms (b1) | img/s (batch) | MMACs |"
    )
    lines = [head, "|---" * 9 + "|"]
    for folder in map(Path, result_dirs):
        s = RunDir(folder).read_summary()  # an exported run: the same file names
        name = s.get("segmentor", folder.name)
        lat, thr = speed.get(name, {}).get("latency", {}), speed.get(name, {}).get("throughput", {})
        cells = [
            name,
            f"{s['params'] / 1e6:.2f}M",
            _pct(s.get("miou")),
            _pct(s.get("ema_miou")),
            _pct(s.get("aacc")),
            f"{s['train_img_s']:.0f}",
            f"{lat['latency_p50_ms']:.1f}" if lat else "-",
            f"{thr['throughput_img_s']:.0f} ({thr['batch_size']})" if thr else "-",
            f"{thr['macs'] / 1e6:.0f}" if thr else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
