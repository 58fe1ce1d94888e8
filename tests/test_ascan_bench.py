"""The AsCAN measurement scripts run end to end on tiny settings and write the promised schema."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(script: str):
    spec = importlib.util.spec_from_file_location(script, BENCHMARKS / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ascan_speed_rows_and_peak_fraction(tmp_path, caplog):
    out = tmp_path / "cpu-ascan.json"
    args = ["--models", "ascan_nano,nosuchmodel_*", "--batch-sizes", "1,2", "--min-seconds", "0.02"]
    args += ["--peak-seconds", "0.1", "--out", str(out)]
    with caplog.at_level(logging.WARNING):
        load("ascan_speed").main(args)
    assert "skipping 'nosuchmodel_*'" in caplog.text
    data = json.loads(out.read_text())
    assert data["environment"]["torch"].startswith("2.") and data["gemm_peak_gflops"]["before"] > 1
    (row,) = data["rows"]
    assert row["model"] == "ascan_nano" and row["img_size"] == 32 and row["memory_format"] == "channels_last"
    for mode in ("eager", "fused"):
        for bs in (1, 2):
            assert row[f"{mode}_b{bs}_img_s"] > 0 and row[f"{mode}_b{bs}_peak_frac"] > 0


def test_ascan_gpu_script_runs_on_cpu_without_timm(tmp_path):
    out = tmp_path / "gpu.json"
    args = ["--device", "cpu", "--dtype", "float32", "--no-compile", "--batch-sizes", "1", "--ours", "ascan_test"]
    args += ["--timm", "", "--img-size", "64", "--warmup", "1", "--warmup-s", "0", "--iters", "2"]
    load("ascan_gpu").main([*args, "--out", str(out)])
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"ascan_test", "ascan_test+fused"}
    assert rows["ascan_test"]["b1_vs_ascan_test"] == 1.0 and rows["ascan_test+fused"]["b1_img_s"] > 0
