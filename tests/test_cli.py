"""The command line: tables, JSON, and clean errors (exit code 2, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

from hybridvision.cli.main import main


def test_models_table(capsys):
    assert main(["models", "coatnet_*", "--no-cost"]) == 0
    out = capsys.readouterr().out
    assert "coatnet_0_rw_224" in out and "coatnet_test" in out


def test_info_json(capsys):
    assert main(["info", "coatnet_0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 25_036_820 and abs(data["macs"] / 4.2e9 - 1) < 0.03
    assert data["config"]["layout"] == ["CC", "CCC", "TTTTT", "TT"]


def test_errors_are_one_line():
    proc = subprocess.run([sys.executable, "-m", "hybridvision", "info", "coatnet0"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown model 'coatnet0'" in proc.stderr and "Traceback" not in proc.stderr


def test_summary_measures(tmp_path, capsys):
    out = tmp_path / "s.json"
    code = main(
        ["summary", "--pattern", "coatnet_test*", "--batch-sizes", "1", "--min-seconds", "0.05", "--json", str(out)]
    )
    # the family filter leaves test variants out, so pick a real one cheaply instead
    assert code == 2 and "no model matches pattern 'coatnet_test*'" in capsys.readouterr().err
    cheap = ["--batch-sizes", "1", "--min-seconds", "0.05", "--json", str(out)]
    assert main(["summary", "--pattern", "coatnet_nano_rw*", *cheap]) == 0  # coatnet_nano* also has coatnet_nano
    data = json.loads(out.read_text())
    row = data["rows"][0]
    assert row["model"] == "coatnet_nano_rw_224" and row["b1_img_s"] > 0 and 0 < row["b1_peak_frac"] < 1.5
    assert data["environment"]["torch"].startswith("2.") and data["gemm_peak_gflops"] > 1


def test_task_commands_word_their_results_alike():
    from hybridvision.cli import det, diffusion, seg, train

    facts = {"epochs": 3, "train_s": 12.3, "train_img_s": 456.7}
    assert train.describe({"top1": 71.2, "ema_top1": 72.05, **facts}) == (
        "top-1 71.20%, EMA 72.05% after 3 epochs, 12 s training, 457 img/s"
    )
    assert seg.describe({"miou": 60.1, "aacc": 90.0, **facts}) == (
        "mIoU 60.10%, pixel accuracy 90.00% after 3 epochs, 12 s training, 457 img/s"
    )
    scored = {"cond_acc": 80.0, "fid": 3.21, "ema_cond_acc": 81.0, "ema_fid": 3.0, **facts}
    assert diffusion.describe(scored).startswith("conditional accuracy 80.0%, FID 3.21 (EMA 81.0%, 3.00) after 3")
    assert diffusion.describe({"val_loss": 0.1, **facts}).startswith("validation loss 0.1000 after 3 epochs")
    assert det.describe({"box_ap": 41.2, "mask_ap": 38.05, **facts}) == (
        "box AP 41.20%, mask AP 38.05% after 3 epochs, 12 s training, 457 img/s"
    )
    assert train.describe(facts) == seg.describe(facts) == det.describe(facts) == ""  # never evaluated: no line
