"""The end-to-end demo: train a model on Fashion-MNIST, evaluate it, benchmark it beside its peers, report.

Writes into the run directory: ``report.md``, ``curves.png`` (loss and accuracy), ``table.png`` (the
comparison) and ``bench.json`` (the numbers with their environment), next to the run's own logs and weights.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..bench.tables import markdown
from ..bench.timing import time_forward
from ..classify import OptimConfig, TrainConfig
from ..config import at_least, check
from ..engine.report import plot_curves
from ..engine.rundir import RunDir
from ..env import environment
from ..factory import create_model
from ..fileio import atomic_write, save_json
from ..macs import model_cost
from ..registry import list_models
from .report import plot_table

log = logging.getLogger(__name__)


def _demo_train() -> TrainConfig:
    """The default recipe, time-boxed to 4 minutes of training (the schedule completes within them)."""
    optim = OptimConfig(warmup_epochs=0.2)
    return TrainConfig(epochs=3, budget_minutes=4.0, eval_every=1, log_every=10, optim=optim)


@dataclass(frozen=True)
class DemoConfig:
    """``hybridvision demo``: a few minutes on 2 CPU cores by default; ``quick`` finishes in seconds (tests)."""

    train: TrainConfig = field(default_factory=_demo_train)
    compare: tuple[str, ...] = ("coatnet_nano", "efficientmod_nano")  # benchmarked beside ``train.model``
    bench_batch: int = 64  # throughput batch (latency is always batch 1)
    bench_seconds: float = 1.0  # timed seconds per setting
    quick: bool = False  # tiny subset, one short epoch, short timings

    def __post_init__(self) -> None:
        at_least(self, 1, "bench_batch")
        check(self.bench_seconds > 0, f"bench_seconds must be > 0, got {self.bench_seconds}")


def quick_config(cfg: DemoConfig) -> DemoConfig:
    """The demo shrunk to seconds: 512 training images, 500 test images, one epoch, short timings."""
    data = dataclasses.replace(cfg.train.data, train_subset=512, eval_subset=500)
    t = dataclasses.replace(cfg.train, epochs=1, budget_minutes=0.0, batch_size=64, data=data)
    return dataclasses.replace(cfg, train=t, bench_seconds=0.05, bench_batch=16)


# ---- Benchmark


def bench_row(name: str, cfg: DemoConfig, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Params, MACs, batch-1 latency and batch-N throughput of one model at the demo's input (eval, fp32)."""
    t = cfg.train
    kw = {**kwargs, "num_classes": 10 if t.data.dataset == "fashion_mnist" else kwargs.get("num_classes", 10)}
    kw.update(in_chans=t.data.channels, img_size=t.img_size)
    cost = model_cost(name, **kw)
    torch.manual_seed(0)
    model = create_model(name, **kw).eval().to(memory_format=torch.channels_last)
    row = {"model": name, "params": cost.params, "macs": cost.macs}
    for bs, key in ((1, "b1"), (cfg.bench_batch, "bN")):
        x = torch.randn(bs, *cost.input_shape[1:])
        timing = time_forward(model, x, min_s=cfg.bench_seconds, min_iters=3, warmup_iters=2, warmup_s=0.1)
        row[f"{key}_ms"] = timing.p50_ms
        row[f"{key}_img_s"] = timing.img_per_s
    return row


def benchmark(cfg: DemoConfig) -> list[dict[str, Any]]:
    names = [cfg.train.model, *(n for n in cfg.compare if n != cfg.train.model)]
    registered = set(list_models())
    rows = []
    for name in names:
        if name not in registered:
            log.warning("demo: %s is not registered in this install; its benchmark row is left out", name)
            rows.append({"model": name, "missing": True})
            continue
        kwargs = dict(cfg.train.model_kwargs) if name == cfg.train.model else {}
        rows.append(bench_row(name, cfg, kwargs))
    return rows


# ---- Report


def _bench_table(rows: list[dict[str, Any]], batch: int) -> tuple[list[str], list[list[str]]]:
    cols = ["model", "params", "MMACs", "latency b1 (ms)", f"img/s b{batch}"]
    out = []
    for r in rows:
        if r.get("missing"):
            out.append([r["model"], "not installed", "", "", ""])
            continue
        out.append(
            [
                r["model"],
                f"{r['params'] / 1e6:.2f}M",
                f"{r['macs'] / 1e6:.1f}",
                f"{r['b1_ms']:.2f}",
                f"{r['bN_img_s']:.0f}",
            ]
        )
    return cols, out


def write_report(run_dir: Path, cfg: DemoConfig, summary: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    t, run = cfg.train, RunDir(run_dir)
    plot_curves([run_dir], run_dir / "curves.png", labels=[t.model])
    cols, table = _bench_table(rows, cfg.bench_batch)
    plot_table(cols, table, run_dir / "table.png", title=f"{t.img_size}x{t.img_size} input, fp32, eval mode")
    env = summary["environment"]
    ema = f" (EMA weights: **{summary['ema_top1']:.2f}%**)" if "ema_top1" in summary else ""
    text = f"""# hybridvision demo: {t.model} on Fashion-MNIST

Trained **{t.model}** ({summary["params"] / 1e6:.2f}M params) for {summary["epochs"]} epochs
({summary["steps"]} steps of {t.batch_size} images, {summary["train_s"]:.0f} s of training,
{summary["train_img_s"]:.0f} img/s) at {t.img_size}x{t.img_size}.

**Test top-1: {summary["top1"]:.2f}%**{ema}, top-5 {summary["top5"]:.2f}%
on {"a 500-image subset of " if t.data.eval_subset else ""}the {t.data.eval_split} split.

![curves](curves.png)

## Speed beside similar-size models

{markdown((cols, table))}

Measured now, in one process, on {env["device"]} with {env["threads"]} threads (load average
{env["load_avg_1m"]}); on a shared machine compare the ratios, not the absolute numbers.

![table](table.png)

## Reproduce

```bash
hybridvision demo{" --quick" if cfg.quick else ""}        # all of it again; or step by step:
hybridvision train --config {run.config_file} --run_name again
hybridvision eval {run_dir}
hybridvision plot-run {run_dir}
```

torch {env["torch"]}, git {env["git_sha"]}. Config: `{run.CONFIG}`; model: `{run.MODEL}`; logs: `{run.TRAIN_LOG}`,
`{run.EVAL_LOG}`; weights: `{run.FINAL}/`.
"""
    path = run_dir / "report.md"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path


def run_demo(cfg: DemoConfig) -> Path:
    """Train, evaluate, benchmark and report; returns the report's path."""
    from ..classify import train  # the training task loads when the demo trains, not with the CLI

    if cfg.quick:
        cfg = quick_config(cfg)
    result = train(cfg.train)
    rows = benchmark(cfg)
    save_json({"environment": environment(), "rows": rows}, result.run_dir / "bench.json")
    return write_report(result.run_dir, cfg, result.summary, rows)
