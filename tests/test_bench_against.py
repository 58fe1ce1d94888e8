"""`--against`: timm (through a stand-in `timm` package, so the path is tested where timm is absent, and the real
timm when it imports) and onnxruntime, on the same weights, with parity checked before any timing."""

from __future__ import annotations

import dataclasses
import os
import sys
import textwrap

import pytest
import torch

from hybridvision.bench.against import plan_jobs
from hybridvision.bench.config import quick
from hybridvision.bench.jobs import import_timm, timm_name
from hybridvision.bench.runner import run_bench

# A stand-in for timm: `create_model` returns a model with timm's calling convention. "coatnet_test_timm" is our
# coatnet_test without fuse() (its keys need no conversion); "coatnet_test_off" computes something else.
FAKE_TIMM = """
    import hybridvision as hv

    __version__ = "0.0-test"

    class _Timm(type(hv.create_model("coatnet_test"))):
        fuse = None  # like timm's models: no fuse()

    class _Off(_Timm):
        def forward(self, x):
            return super().forward(x) + 1.0

    def create_model(name, pretrained=False, **kwargs):
        assert not pretrained, "the harness must never download weights"
        if name == "coatnet_test_timm":
            return _Timm(hv.get_config("coatnet_test", **kwargs))
        if name == "coatnet_test_off":
            return _Off(hv.get_config("coatnet_test", **kwargs))
        raise RuntimeError(f"Unknown model ({name})")
"""

FAST = dict(threads=1, roofline=False, batch_sizes=(1, 2))
CHW = (3, 64, 64)


@pytest.fixture
def fake_timm(tmp_path, monkeypatch):
    pkg = tmp_path / "timm"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(FAKE_TIMM))
    monkeypatch.delitem(sys.modules, "timm", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    yield
    sys.modules.pop("timm", None)


def test_against_timm_times_both_on_the_same_weights(fake_timm):
    config = dataclasses.replace(
        quick(), models=("coatnet_test",), against=("timm",), timm_names=("coatnet_test=coatnet_test_timm",), **FAST
    )
    result = run_bench(config)
    assert result.notes == []
    ours = [r for r in result.rows if r["impl"] == "hybridvision"]
    theirs = [r for r in result.rows if r["impl"] == "timm"]
    assert [r["batch_size"] for r in ours] == [r["batch_size"] for r in theirs] == [1, 2]
    for a, b in zip(ours, theirs):
        assert a["status"] == b["status"] == "ok"
        assert b["parity_max_abs_diff"] == 0.0  # same architecture, same weights, same input
        assert b["rel_throughput"] == pytest.approx(b["throughput_img_s"] / a["throughput_img_s"])
        assert b["macs"] == a["macs"] and b["fused"] is False and a["fused"] is True  # timm has no fuse()
        assert set(a["pids"].split(";")).isdisjoint(b["pids"].split(";"))


def test_against_the_real_timm_in_fresh_processes(timm):
    """Every measuring process imports the real timm itself (torchvision completed there too), with no plugin."""
    config = dataclasses.replace(quick(), models=("coatnet_nano_rw_224",), against=("timm",), img_size=64, **FAST)
    result = run_bench(config)
    assert result.notes == []
    ours = [r for r in result.rows if r["impl"] == "hybridvision"]
    theirs = [r for r in result.rows if r["impl"] == "timm"]
    assert [r["batch_size"] for r in ours] == [r["batch_size"] for r in theirs] == [1, 2]
    for a, b in zip(ours, theirs):
        assert a["status"] == b["status"] == "ok", (a["status"], b["status"])
        assert b["parity_max_abs_diff"] <= config.atol and b["macs"] == a["macs"]
        assert b["rel_throughput"] == pytest.approx(b["throughput_img_s"] / a["throughput_img_s"])


def test_timm_weights_are_converted_and_checked_before_timing(fake_timm, tmp_path):
    config = dataclasses.replace(quick(), against=("timm",), timm_names=("coatnet_test=coatnet_test_timm",))
    plan = plan_jobs("coatnet_test", CHW, config, tmp_path)
    assert [(j.impl, j.backend) for j in plan.jobs] == [("hybridvision", "torch"), ("timm", "torch")]
    ours, theirs = _load(plan.jobs[0].weights), _load(plan.jobs[1].weights)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert plan.parity[("timm", "torch")] == 0.0


def _load(path):
    from safetensors.torch import load_file

    return load_file(path)


def test_parity_failure_skips_the_comparison(fake_timm, tmp_path):
    config = dataclasses.replace(quick(), against=("timm",), timm_names=("coatnet_test=coatnet_test_off",))
    plan = plan_jobs("coatnet_test", CHW, config, tmp_path)
    assert [j.impl for j in plan.jobs] == ["hybridvision"]
    assert "outputs differ by 1 on the same weights" in plan.notes[0]


def test_timm_missing_is_a_note_not_a_failure(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    assert import_timm()[0] is None
    plan = plan_jobs("coatnet_test", CHW, dataclasses.replace(quick(), against=("timm",)), tmp_path)
    assert [j.impl for j in plan.jobs] == ["hybridvision"]
    assert "timm is not importable" in plan.notes[0] and "install timm" in plan.notes[0]


def test_model_without_a_timm_equivalent_is_a_note(fake_timm, tmp_path):
    plan = plan_jobs("coatnet_test", CHW, dataclasses.replace(quick(), against=("timm",)), tmp_path)
    assert [j.impl for j in plan.jobs] == ["hybridvision"]
    assert "no timm model shares its weights (add --timm-name)" in plan.notes[0]


def test_timm_twins_come_from_model_cards():
    import hybridvision as hv

    twins = {n: hv.get_entry(n).card["timm_twin"] for n in hv.list_models() if "timm_twin" in hv.get_entry(n).card}
    assert twins == {"coatnet_0_rw_224": "coatnet_0_rw_224", "coatnet_nano_rw_224": "coatnet_nano_rw_224"}
    assert timm_name("coatnet_0_rw_224", quick()) == "coatnet_0_rw_224"
    assert timm_name("coatnet_0", quick()) is None
    config = dataclasses.replace(quick(), timm_names=("coatnet_0=coatnet_0_224",))
    assert timm_name("coatnet_0", config) == "coatnet_0_224"


def test_onnxruntime_backend_is_the_primary_measurement():
    config = dataclasses.replace(quick(), models=("coatnet_test",), backend="onnxruntime", isolate=False, **FAST)
    rows = run_bench(config).rows
    assert [(r["backend"], r["batch_size"], r["status"]) for r in rows] == [
        ("onnxruntime", 1, "ok"),
        ("onnxruntime", 2, "ok"),
    ]
    assert rows[0]["parity_max_abs_diff"] < 1e-4 and rows[0]["rel_throughput"] == 1.0


def test_onnxruntime_comparison_needs_fp32(tmp_path):
    config = dataclasses.replace(quick(), against=("onnxruntime",), precision="bf16")
    plan = plan_jobs("coatnet_test", CHW, config, tmp_path)
    assert [j.backend for j in plan.jobs] == ["torch"] and "timed in fp32" in plan.notes[0]
