"""`hybridvision bench`: the result schema, fresh-process repeats, telling a slower model apart, the timing core
(per-iteration sync, memory meters, precision) and clear errors for bad settings.

No test asserts an absolute time: only schema, structure, and differences the harness must resolve.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import textwrap

import pytest
import torch
from torch import nn

from hybridvision import registry
from hybridvision.bench.config import BenchConfig, expand_models, quick
from hybridvision.bench.measure import Bounds, make_input, measure, prepare_model, torch_runner
from hybridvision.bench.memory import MemoryMeter, peak_rss_mb
from hybridvision.bench.results import ROW_FIELDS, SCHEMA, gpu_slug, read_rows, result_stem
from hybridvision.bench.runner import run_bench
from hybridvision.bench.timing import device_sync, timed_loop
from hybridvision.bench.worker import setup_process
from hybridvision.cli.main import main
from hybridvision.config import ConfigError

# Quick bounds, one thread: on a shared 2-core machine 2-thread timings swing 3-10x (research/env.md §7).
FAST = dict(threads=1, roofline=False)


def test_cli_quick_end_to_end_schema_and_fresh_processes(tmp_path, capsys):
    """--quick through the CLI on coatnet_test: JSON and CSV schema, ratios vs onnxruntime, one PID per repeat."""
    js, cs, png = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.png"
    argv = ["bench", "coatnet_test", "--quick", "--threads", "1", "--batch-sizes", "1,2", "--repeats", "2"]
    argv += ["--against", "onnxruntime", "--json", str(js), "--csv", str(cs), "--plot", str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "coatnet_test" in out and "other / ours" in out and "GEMM peak" in out

    doc = json.loads(js.read_text())
    assert doc["schema"] == SCHEMA and doc["config"]["repeats"] == 2 and doc["gemm_peak_gflops"] > 0
    assert doc["environment"]["torch"] == torch.__version__
    rows = doc["rows"]
    assert all(tuple(r) == ROW_FIELDS for r in rows)
    assert [(r["backend"], r["batch_size"]) for r in rows] == [
        ("torch", 1),
        ("torch", 2),
        ("onnxruntime", 1),
        ("onnxruntime", 2),
    ]
    for r in rows:
        assert r["status"] == "ok" and r["repeats"] == 2 and r["throughput_img_s"] > 0
        assert r["throughput_min_img_s"] <= r["throughput_img_s"] <= r["throughput_max_img_s"]
        assert r["peak_mem_mb"] > 0 and r["mem_kind"] == "cpu_peak_rss"
        # MAC/s over the GEMM peak's MAC/s, both measured in this run (a ratio of timings, so no bound on it here)
        peak_macs = r["gemm_peak_gflops"] * 1e9 / 2
        assert r["peak_fraction"] == pytest.approx(r["macs"] * r["throughput_img_s"] / peak_macs, rel=1e-3)
        assert (
            r["env_torch"] == torch.__version__ and r["env_threads"] == "1" and r["env_git_sha"] not in ("", "unknown")
        )  # the code measured
        # latency lives at batch 1 only, in its own columns
        assert (r["latency_p50_ms"] is not None) == (r["batch_size"] == 1)
        pids = r["pids"].split(";")
        assert len(set(pids)) == 2 and str(os.getpid()) not in pids, "each repeat must run in a fresh process"
    b1 = rows[0]
    assert b1["latency_p50_min_ms"] <= b1["latency_p50_ms"] <= b1["latency_p50_max_ms"]
    assert b1["latency_p50_ms"] <= b1["latency_p90_ms"] <= b1["latency_p99_ms"]
    ort = rows[2]
    assert ort["parity_max_abs_diff"] < 1e-4 and ort["layout"] == "nchw"
    assert ort["rel_throughput"] == pytest.approx(ort["throughput_img_s"] / rows[0]["throughput_img_s"])
    assert rows[0]["rel_throughput"] == 1.0

    with open(cs, newline="") as f:
        assert tuple(csv.DictReader(f).fieldnames) == ROW_FIELDS
    tput = [r["throughput_img_s"] for r in rows]
    assert [r["throughput_img_s"] for r in read_rows(cs)] == pytest.approx(tput, rel=1e-5)  # 6 digits in CSV
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SLOW_PLUGIN = """
    import time

    import hybridvision as hv
    from hybridvision.models.coatnet import CoAtNet

    class Slowed(CoAtNet):
        # coatnet_test plus a fixed 50 ms sleep per forward
        def forward(self, x):
            time.sleep(0.05)
            return super().forward(x)

    hv.register("slowed_coatnet", Slowed, hv.get_config("coatnet_test"), family="coatnet")
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A module (importable here and in the measuring processes) that registers a deliberately slowed model."""
    (tmp_path / "hv_slow_plugin.py").write_text(textwrap.dedent(SLOW_PLUGIN))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    yield "hv_slow_plugin"
    sys.modules.pop("hv_slow_plugin", None)


def test_harness_measures_a_slowed_model_slower(plugin):
    config = dataclasses.replace(
        quick(), models=("coatnet_test", "slowed_coatnet"), batch_sizes=(1,), plugins=(plugin,), iters=8, **FAST
    )
    rows = {r["model"]: r for r in run_bench(config).rows}
    fast, slow = rows["coatnet_test"], rows["slowed_coatnet"]
    assert fast["status"] == slow["status"] == "ok"
    assert slow["latency_p50_ms"] >= 50 and slow["latency_p50_ms"] > fast["latency_p50_ms"]  # it sleeps 50 ms
    assert slow["throughput_img_s"] < fast["throughput_img_s"]
    assert fast["macs"] == slow["macs"]  # same network: only the time differs


def test_worker_failure_is_reported_not_raised(plugin, monkeypatch):
    # the plugin is not importable in the measuring process without PYTHONPATH: the row says why
    config = dataclasses.replace(quick(), models=("slowed_coatnet",), batch_sizes=(1,), plugins=(plugin,), **FAST)
    monkeypatch.setenv("PYTHONPATH", "")
    (row,) = run_bench(config).rows
    assert row["status"].startswith("error: ModuleNotFoundError") and "hv_slow_plugin" in row["status"]
    assert row["throughput_img_s"] is None


# ---- The timing core


def test_latency_syncs_every_iteration_and_throughput_every_block():
    calls, syncs = [], []
    times = timed_loop(lambda: calls.append(1), lambda: syncs.append(1), min_iters=6, min_s=0, max_s=10)
    assert len(times) == len(calls) == len(syncs) == 6
    calls.clear(), syncs.clear()
    times = timed_loop(lambda: calls.append(1), lambda: syncs.append(1), min_iters=12, min_s=0, max_s=10, block=4)
    assert len(times) == len(syncs) == 3 and len(calls) == 12


def test_cuda_paths_use_the_cuda_apis(monkeypatch):
    """Without a GPU: per-iteration sync and peak memory go through torch.cuda with the right device."""
    seen = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: seen.append(("sync", str(d))))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d=None: seen.append(("reset", str(d))))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: seen.append(("peak", str(d))) or 2**21)
    meter = MemoryMeter("cuda:1")
    out = measure(
        lambda x: x * 2,
        torch.ones(3),
        batch_size=3,
        latency=True,
        bounds=Bounds(warmup_iters=2, warmup_s=0, iters=4, min_s=0, max_s=5),
        sync=device_sync("cuda:1"),
        memory=meter,
    )
    assert seen[0] == ("reset", "cuda:1") and seen[-1] == ("peak", "cuda:1") and out["peak_mem_mb"] == 2.0
    syncs = [s for s in seen if s[0] == "sync"]
    assert all(d == "cuda:1" for _, d in syncs) and len(syncs) >= 1 + 2 + 4 + 1  # first, warm-up, latency, blocks
    assert meter.kind == "cuda_max_allocated" and MemoryMeter("cpu").kind == "cpu_peak_rss"


def test_measuring_process_setup_for_cuda(monkeypatch):
    devices = []
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.cuda, "set_device", devices.append)
    setup_process(BenchConfig(device="cuda:1"))
    assert devices == [1] and torch.backends.cudnn.benchmark is True  # fixed shapes: autotuned kernels


def test_cpu_peak_rss_sees_an_allocation():
    meter = MemoryMeter("cpu")
    meter.reset()
    before = meter.peak_mb()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    assert meter.peak_mb() - before > 48 and peak_rss_mb() > 0
    del block


def test_precision_layout_and_compile_preparation():
    lin = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).eval()
    cfg = dataclasses.replace(BenchConfig(), precision="bf16")
    x = make_input(2, (3, 4, 4), cfg)
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    model, fused = prepare_model(lin, cfg)
    assert not fused  # nn.Sequential has no fuse(); the row says so
    assert torch_runner(model, cfg)(x).dtype == torch.bfloat16  # autocast
    cast = dataclasses.replace(cfg, amp=False, channels_last=False)
    model, _ = prepare_model(nn.Conv2d(3, 4, 1), cast)
    x = make_input(2, (3, 4, 4), cast)
    assert x.dtype == next(model.parameters()).dtype == torch.bfloat16 and x.is_contiguous()
    compiled = dataclasses.replace(BenchConfig(), compile=True, compile_backend="eager")
    model = nn.Conv2d(3, 4, 1).eval()
    x = make_input(2, (3, 4, 4), compiled)
    torch.testing.assert_close(torch_runner(model, compiled)(x), model(x))


def test_compile_time_is_reported_apart():
    """compile_s comes from the first call after torch.compile; the eager backend keeps this test fast."""
    threads = torch.get_num_threads()
    config = dataclasses.replace(
        quick(),
        models=("coatnet_test",),
        batch_sizes=(1,),
        compile=True,
        compile_backend="eager",
        isolate=False,
        **FAST,
    )
    (row,) = run_bench(config).rows
    assert row["status"] == "ok" and row["compiled"] and row["compile_s"] > 0 and row["latency_p50_ms"] > 0
    assert torch.get_num_threads() == threads  # an in-process run leaves the caller's thread count alone


def test_fused_model_is_measured_fused():
    from hybridvision import create_model

    model = create_model("coatnet_test")
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    model, fused = prepare_model(model, BenchConfig())
    assert fused and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


# ---- Settings and errors


def test_config_rejects_bad_settings_with_the_fix():
    bad = {
        "precision": ("fp8", "precision must be one of fp32, bf16, fp16"),
        "device": ("gpu", "device must be cpu, cuda or cuda:N, got 'gpu'"),
        "batch_sizes": ((0, 16), "batch_sizes must be positive"),
        "max_s": (0.5, "max_s"),
        "timm_names": (("coatnet_0",), "ours=theirs"),
        "against": (("tensorrt",), "against must be one of timm, onnxruntime"),
    }
    for key, (value, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            BenchConfig(**{key: value})
    with pytest.raises(ConfigError, match="--compile applies to the torch backend"):
        BenchConfig(backend="onnxruntime", compile=True)
    with pytest.raises(ConfigError, match="timed in fp32"):
        BenchConfig(backend="onnxruntime", precision="fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_asked_for_but_absent_is_a_clear_error(capsys):
    assert main(["bench", "coatnet_test", "--device", "cuda", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "torch.cuda.is_available() is False" in err and "--device cpu" in err and "Traceback" not in err


def test_cli_errors_are_one_line(capsys):
    assert main(["bench", "coatnet0", "--quick"]) == 2
    assert "unknown model 'coatnet0'" in capsys.readouterr().err
    assert main(["bench", "--quick"]) == 2
    assert "name at least one model" in capsys.readouterr().err
    assert main(["bench", "coatnet_test", "--quick", "--img-size", "65"]) == 2
    assert "Nearest valid sizes" in capsys.readouterr().err
    assert main(["bench", "coatnet_test", "--batch-sizes", "one"]) == 2
    assert "batch_sizes: expected int, got 'one'" in capsys.readouterr().err
    assert main(["bench", "coatnet_test", "--batchsizes", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown option 'batchsizes'" in err and "Did you mean 'batch_sizes'" in err


def test_flags_come_from_bench_config(capsys):
    """Every BenchConfig field is a flag; names may stand anywhere; singular repeatable aliases join."""
    argv = ["bench", "--compile", "coatnet_test", "--timm-name", "a=b", "--timm-name", "c=d", "--no-roofline"]
    assert main([*argv, "--import", "math", "--against", "timm", "ascan_test", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "- coatnet_test\n- ascan_test" in out and "compile: true" in out and "roofline: false" in out
    assert "- a=b\n- c=d" in out and "- math" in out and "- timm" in out
    help_text = build_parser_help()
    for field in ("--batch_sizes", "--compile_mode", "--timeout_s", "--roofline"):
        assert field in help_text


def build_parser_help() -> str:
    from hybridvision.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices["bench"].format_help()


def test_settings_precedence_and_dry_run(tmp_path, capsys):
    """defaults < --quick < --config file < flags."""
    cfg = tmp_path / "bench.yaml"
    cfg.write_text("repeats: 5\nbatch_sizes: [1, 8]\nmodels: [coatnet_test]\n")
    assert main(["bench", "--quick", "--config", str(cfg), "--repeats", "4", "--no-fused", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "repeats: 4" in out and "warmup_iters: 2" in out and "- 8" in out and "fused: false" in out
    assert main(["bench", "coatnet_test", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "repeats: 3" in out and "warmup_iters: 50" in out and "- 64" in out and "fused: true" in out


def test_globs_skip_test_variants_unless_asked():
    names = expand_models(("coatnet_*",))
    assert "coatnet_0" in names and "coatnet_test" not in names
    assert expand_models(("*_test",)) == registry.list_models("*_test")
    assert expand_models(("coatnet_0", "coatnet_?")) == [
        "coatnet_0",
        "coatnet_1",
        "coatnet_2",
        "coatnet_3",
        "coatnet_4",
    ]


def test_file_names_encode_the_setting():
    env = {"torch": "2.13.0+cu128", "cuda": "12.8", "device": "NVIDIA H100 80GB HBM3"}
    gpu = BenchConfig(device="cuda", precision="bf16", compile=True)
    assert result_stem(gpu, env) == "h100-bf16-amp-nhwc-compiled-pt213-cu128"
    cpu = BenchConfig(channels_last=False, fused=False)
    assert result_stem(cpu, {"torch": "2.13.0+cpu"}) == "cpu-fp32-nchw-eager-unfused-pt213"
    assert gpu_slug("NVIDIA GeForce RTX 4090") == "rtx4090" and gpu_slug("NVIDIA H200") == "h200"
