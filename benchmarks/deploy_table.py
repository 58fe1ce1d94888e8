"""The side-by-side deployment table from the per-model bench files of ``benchmarks/run_deploy_table.sh``.

Reads ``results/deploy/table_<model>.json`` (one bench run per model: every backend and precision interleaved) and
writes ``results/deploy/deploy_table.md`` (b1 latency and b16 throughput per backend and precision, each over
onnxruntime fp32 of the same run) and ``results/deploy/deploy_table.json`` (the same numbers, and per model the
int8-over-fp32 onnxruntime speed-up at batch 1 that docs/deploy.md's target is stated in).

    python benchmarks/deploy_table.py [--dir results/deploy]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hybridvision.bench.tables import num

RATIO = "{:.2f}x"
NOISY = 1.25  # repeats whose batch-1 medians differ by more than this factor are marked: the median of two is unsure
REFERENCE = ("onnxruntime", "fp32")
TORCH = {"fp32": "torch fp32 (eager)", "int8": "torch int8 (PT2E, compiled)"}
ORDER = list(TORCH.values()) + ["onnxruntime fp32", "onnxruntime int8", "openvino fp32", "openvino int8"]
ORDER += ["executorch fp32", "executorch int8"]


def _label(row: dict) -> str:
    if row["backend"] == "torch" and not (row["precision"] == "fp32" and row.get("compiled")):
        return TORCH[row["precision"]]
    return f"{row['backend']} {row['precision']}" + (" (compiled)" if row.get("compiled") else "")


def model_rows(doc: dict) -> dict[str, dict[int, dict]]:
    """Backend label -> batch size -> row, for the rows that were measured."""
    out: dict[str, dict[int, dict]] = {}
    for row in doc["rows"]:
        if row["status"] == "ok":
            out.setdefault(_label(row), {})[row["batch_size"]] = row
    return out


def summarize(doc: dict) -> dict:
    """Per backend: b1 p50 latency, b16 throughput, and both over onnxruntime fp32 (ratios > 1: faster)."""
    rows = model_rows(doc)
    ref = rows.get(" ".join(REFERENCE), {})
    ref_ms = ref.get(1, {}).get("latency_p50_ms")
    ref_tp = ref.get(16, {}).get("throughput_img_s")
    backends = {}
    for label in sorted(rows, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER)):
        b1, b16 = rows[label].get(1, {}), rows[label].get(16, {})
        ms, tp = b1.get("latency_p50_ms"), b16.get("throughput_img_s")
        low, high = b1.get("latency_p50_min_ms"), b1.get("latency_p50_max_ms")
        backends[label] = {
            "b1_p50_ms": ms,
            "b1_p50_min_ms": low,
            "b1_p50_max_ms": high,
            "b1_noisy": bool(low and high and high / low > NOISY),
            "b16_img_s": tp,
            "b1_speedup_vs_ort_fp32": ref_ms / ms if ref_ms and ms else None,
            "b16_speedup_vs_ort_fp32": tp / ref_tp if ref_tp and tp else None,
        }
    int8 = backends.get("onnxruntime int8", {}).get("b1_speedup_vs_ort_fp32")
    first = doc["rows"][0]
    return {
        "model": first["model"],
        "img_size": first["img_size"],
        "params": first["params"],
        "macs": first["macs"],
        "backends": backends,
        "ort_int8_b1_speedup": int8,
        "notes": doc.get("notes", []),
    }


def markdown(summaries: list[dict], cpu: str) -> str:
    lines = [
        "| model | backend | b1 p50 (ms) | b1 repeats (ms) | b1 vs ORT fp32 | b16 (img/s) | b16 vs ORT fp32 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summaries:
        for label, b in s["backends"].items():
            repeats = f"{num(b['b1_p50_min_ms'], '{:.1f}')}-{num(b['b1_p50_max_ms'], '{:.1f}')}"
            lines.append(
                f"| `{s['model']}` ({s['img_size']}px) | {label} | {num(b['b1_p50_ms'], '{:.2f}')} | "
                f"{repeats}{' (!)' if b['b1_noisy'] else ''} | {num(b['b1_speedup_vs_ort_fp32'], RATIO)} | "
                f"{num(b['b16_img_s'])} | "
                f"{num(b['b16_speedup_vs_ort_fp32'], RATIO)} |"
            )
    note = (
        f"\n2 threads for every runtime; {cpu}. Ratios above 1 are faster than onnxruntime fp32 in the same run. "
        f"b1 p50 is the median of the repeats' medians; (!): the repeats differ by more than {NOISY}x, so that "
        "cell and the ratios built on it are unsure.\n"
    )
    return "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="results/deploy")
    args = ap.parse_args(argv)
    folder = Path(args.dir)
    files = sorted(folder.glob("table_*.json"))
    if not files:
        raise SystemExit(f"no table_<model>.json in {folder}: run benchmarks/run_deploy_table.sh first")
    docs = [json.loads(f.read_text()) for f in files]
    summaries = [summarize(d) for d in docs]
    env = docs[0].get("environment", {})
    cpu = env.get("cpu") or "this CPU"
    out = {"sources": [str(f) for f in files], "environment": env, "noisy_factor": NOISY}
    out["models"] = {s["model"]: s for s in summaries}
    (folder / "deploy_table.json").write_text(json.dumps(out, indent=2) + "\n")
    (folder / "deploy_table.md").write_text(markdown(summaries, cpu))
    print((folder / "deploy_table.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
