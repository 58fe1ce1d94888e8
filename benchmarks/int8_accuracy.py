"""int8 against fp32 on the full Fashion-MNIST test set, for committed weights: one results file per model.

For each weights folder (a ``save_pretrained`` folder such as ``assets/fmnist_ascan_nano``), exports static int8
through onnxruntime's QDQ tooling and through PT2E (``--format pt2``), both calibrated on 256 training images, and
scores each with ``--check`` on all 10,000 test images (none used for calibration) against the fp32 PyTorch model.
Writes ``results/deploy/int8_fmnist_<model>.json``: per flow the check record (top-1 of int8 and fp32, agreement,
SQNR, the stated tolerance), the command that produced it, its wall time, and the environment.

    python benchmarks/int8_accuracy.py assets/fmnist_ascan_nano
    python benchmarks/int8_accuracy.py results/classify/fmnist_coatnet_nano_30min/weights --out results/deploy
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hybridvision.env import environment
from hybridvision.fileio import save_json

FLOWS = {  # flow -> export flags (PT2E runs the check in batches of 64 through a dynamic batch)
    "onnx": ["--format", "onnx"],
    "pt2e": ["--format", "pt2", "--dynamic-batch", "--batch-size", "64"],
}
COMMON = ["--precision", "int8", "--calib", "fashion-mnist", "--calib-count", "256", "--check-count", "10000"]


def run_flow(weights: str, flow: str, folder: Path) -> dict:
    """Export ``weights`` in int8 by ``flow`` with the check; its record, command and seconds."""
    out = folder / ("model.onnx" if flow == "onnx" else "model.pt2")
    cmd = [sys.executable, "-m", "hybridvision", "export", weights, "--out", str(out), *FLOWS[flow], *COMMON, "--check"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{flow} export of {weights} failed:\n{done.stderr[-2000:]}")
    record = json.loads(Path(f"{out}.json").read_text())
    shown = ["hybridvision", "export", weights, "--out", out.name, *cmd[7:]]  # the command as a user types it
    return {**record["check"], "command": shlex.join(shown), "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="save_pretrained folders of Fashion-MNIST classifiers")
    parser.add_argument("--out", default="results/deploy", help="folder for int8_fmnist_<model>.json")
    args = parser.parse_args(argv)
    for weights in args.weights:
        model = json.loads((Path(weights) / "config.json").read_text())["model"]
        with tempfile.TemporaryDirectory() as tmp:
            flows = {flow: run_flow(weights, flow, Path(tmp)) for flow in FLOWS}
        result = {"model": model, "weights": weights, "split": "t10k", **flows, "environment": environment()}
        path = Path(args.out) / f"int8_fmnist_{model}.json"
        save_json(result, path)
        drops = ", ".join(f"{f} {r['top1'] - r['top1_fp32']:+.2f} pp" for f, r in flows.items())
        print(f"{path}: {model} int8 top-1 vs fp32: {drops}")


if __name__ == "__main__":
    main()
