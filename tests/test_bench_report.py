"""Reading result files back: `hybridvision plot` and the README-table script (idempotent, from the files)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from hybridvision.bench.config import BenchConfig
from hybridvision.bench.plot import card_top1
from hybridvision.bench.report import BEGIN, END, NO_RESULTS
from hybridvision.bench.results import new_row, payload, read_rows, with_environment, write_csv, write_json
from hybridvision.cli.main import main

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "update_readme_tables.py"
ENV = {"device": "Test CPU 9000", "torch": "2.13.0+cpu", "threads": 2, "git_sha": "abc1234", "timestamp": "2026-11-22"}


def fake_rows() -> list[dict]:
    """Rows as the harness writes them, with made-up numbers (these tests read files, they measure nothing)."""
    rows = []
    for model, params, macs, tput in (
        ("coatnet_0", 25.0e6, 4.1e9, 20.5),
        ("coatnet_nano_rw_224", 15.1e6, 2.4e9, 41.25),
    ):
        for batch, scale in ((1, 1.0), (16, 1.5)):
            row = new_row(
                model=model, family="coatnet", impl="hybridvision", backend="torch", device="cpu", precision="fp32",
                amp=False, layout="nhwc", compiled=False, fused=True, img_size=224, batch_size=batch,
                params=int(params), macs=int(macs), throughput_img_s=tput * scale, peak_fraction=0.25, repeats=3,
                latency_p50_ms=1e3 / tput if batch == 1 else None, latency_p99_ms=1.2e3 / tput if batch == 1 else None,
                status="ok",
            )  # fmt: skip
            rows.append(with_environment(row, ENV))
    return rows


def test_csv_and_json_round_trip(tmp_path):
    rows = fake_rows()
    write_csv(rows, tmp_path / "r.csv")
    write_json(payload(BenchConfig(), ENV, rows, [], None), tmp_path / "r.json")
    assert read_rows(tmp_path / "r.json") == rows
    from_csv = read_rows(tmp_path / "r.csv")  # floats are written with 6 significant digits
    for got, want in zip(from_csv, rows, strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert got[key] == (pytest.approx(value, rel=1e-5) if isinstance(value, float) else value), key
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a `hybridvision bench` CSV"):
        read_rows(tmp_path / "other.csv")


def test_plot_writes_a_png(tmp_path, capsys):
    write_csv(fake_rows(), tmp_path / "r.csv")
    assert card_top1("coatnet_0") == 81.6 and card_top1("coatnet_nano_rw_224") == 81.7 and card_top1("nope") is None
    for y in ("auto", "macs"):
        out = tmp_path / f"{y}.png"
        assert main(["plot", str(tmp_path / "r.csv"), "--out", str(out), "--y", y]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert main(["plot", str(tmp_path / "r.csv"), "--out", str(tmp_path / "x.png"), "--batch", "4"]) == 2
    assert "no rows at batch size 4" in capsys.readouterr().err


def run_script(*args: str) -> int:
    argv = sys.argv
    sys.argv = [str(SCRIPT), *args]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        sys.argv = argv
    return 0


def test_readme_table_script_is_idempotent_and_reflects_the_files(tmp_path):
    readme, results = tmp_path / "README.md", tmp_path / "results"
    results.mkdir()
    readme.write_text(f"# title\n\nbefore\n\n{BEGIN}\nstale text\n{END}\n\nafter\n")
    assert run_script("--readme", str(readme), "--results", str(results)) == 0
    assert NO_RESULTS in readme.read_text() and "stale text" not in readme.read_text()

    write_csv(fake_rows(), results / "cpu-fp32-nhwc-eager-pt213.csv")
    (results / "notes.csv").write_text("a,b\n1,2\n")  # not a bench file: ignored
    assert run_script("--readme", str(readme), "--results", str(results), "--check") == 1
    assert run_script("--readme", str(readme), "--results", str(results)) == 0
    first = readme.read_text()
    assert run_script("--readme", str(readme), "--results", str(results)) == 0
    assert readme.read_text() == first  # idempotent
    assert run_script("--readme", str(readme), "--results", str(results), "--check") == 0
    assert first.startswith("# title\n\nbefore\n\n") and first.endswith(f"{END}\n\nafter\n")
    assert "`cpu-fp32-nhwc-eager-pt213.csv`" in first and "Test CPU 9000" in first and "notes.csv" not in first
    line = next(ln for ln in first.splitlines() if ln.startswith("| coatnet_nano_rw_224 "))
    assert "| 41.2 |" in line and "| 61.9 |" in line and "| 24.2 |" in line  # img/s @1, @16; b1 p50 ms


def test_readme_script_needs_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="markers not found"):
        run_script("--readme", str(readme), "--results", str(tmp_path))


def test_ratio_table_keeps_small_ratios_readable():
    from hybridvision.bench.tables import ratio_table

    base = {"model": "m", "batch_size": 1, "throughput_img_s": 1000.0, "parity_max_abs_diff": None}
    ours = {**base, "impl": "hybridvision", "backend": "torch", "rel_throughput": 1.0, "rel_latency_p50": 1.0}
    slow = {**base, "impl": "other", "backend": "torch", "throughput_img_s": 4.12}
    slow |= {"rel_throughput": 0.00412, "rel_latency_p50": 242.7, "parity_max_abs_diff": 3e-7}
    (row,) = ratio_table([ours, slow])[1]
    assert row[1] == "other" and row[5] == "0.00412x" and row[6] == "243x" and row[7] == "3.0e-07"
