"""Result rows: one flat dict per model x implementation x setting x batch size, with a fixed schema.

Latency (batch 1 only) and throughput (every batch) live in separate columns and are never mixed. Every row
carries the environment (``env_*`` columns), so a row copied out of its file still says where it came from.
Files are written atomically; their names encode device, precision, layout and mode like timm's result files
(``cpu-fp32-nhwc-eager-pt213.csv``, ``h100-bf16-amp-nhwc-compiled-pt213-cu128.csv``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..config import to_dict
from ..env import ENV_FIELDS
from ..fileio import atomic_write, read_json, save_json
from .config import BenchConfig

SCHEMA = "hybridvision.bench/1"

# name -> type; the order is the CSV column order.
_MEASURED: dict[str, type] = {
    "model": str,
    "family": str,
    "impl": str,  # "hybridvision" or "timm"
    "backend": str,  # "torch", "onnxruntime", "openvino" or "executorch"
    "device": str,
    "precision": str,  # "fp32", "bf16", "fp16" or "int8" (static int8 weights and activations)
    "amp": bool,
    "layout": str,  # "nhwc" or "nchw"
    "compiled": bool,
    "compile_mode": str,
    "fused": bool,
    "img_size": int,
    "batch_size": int,
    "params": int,
    "macs": int,  # per image, same counter for every implementation
    "latency_p50_ms": float,  # batch 1 only: median over repeats of each repeat's percentile
    "latency_p90_ms": float,
    "latency_p99_ms": float,
    "latency_p50_min_ms": float,  # spread of the repeats' p50
    "latency_p50_max_ms": float,
    "throughput_img_s": float,  # median over repeats
    "throughput_min_img_s": float,
    "throughput_max_img_s": float,
    "peak_mem_mb": float,
    "mem_kind": str,  # "cuda_max_allocated" or "cpu_peak_rss"
    "compile_s": float,  # first call after torch.compile at this batch size (compile + one run)
    "gemm_peak_gflops": float,  # device GEMM peak measured in the same run
    "peak_fraction": float,  # achieved MAC/s over peak MAC/s (the roofline)
    "rel_throughput": float,  # throughput / our torch row's at the same batch (1.0 for ours)
    "rel_latency_p50": float,
    "parity_max_abs_diff": float,  # vs our model on the same weights, checked before timing
    "repeats": int,  # repeats that succeeded
    "iters": int,  # timed iterations per repeat (median)
    "warmup_iters": int,
    "pids": str,  # ";"-separated ids of the measuring processes
    "status": str,  # "ok" or what went wrong
}
ROW_TYPES: dict[str, type] = _MEASURED | {f"env_{k}": str for k in ENV_FIELDS}
ROW_FIELDS = tuple(ROW_TYPES)


def new_row(**values: Any) -> dict[str, Any]:
    """A row with every field present ('' for text, None for numbers that do not apply); unknown fields raise."""
    unknown = set(values) - set(ROW_TYPES)
    if unknown:
        raise KeyError(f"unknown result fields {sorted(unknown)}")
    return {k: values.get(k, "" if kind is str else None) for k, kind in ROW_TYPES.items()}


def with_environment(row: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    return row | {f"env_{k}": str(env.get(k, "")) for k in ENV_FIELDS}


# ---- Files


def result_stem(config: BenchConfig, env: dict[str, Any]) -> str:
    """File name stem encoding device, precision, layout, mode and versions."""
    device = "cpu" if config.device == "cpu" else gpu_slug(str(env.get("device", "gpu")))
    precision = config.precision + ("-amp" if config.amp and config.precision != "fp32" else "")
    mode = "ort" if config.backend == "onnxruntime" else ("compiled" if config.compile else "eager")
    torch_tag = "pt" + "".join(str(env.get("torch", "")).split("+")[0].split(".")[:2])
    cuda = f"-cu{str(env['cuda']).replace('.', '')}" if env.get("cuda") else ""
    unfused = "" if config.fused else "-unfused"
    return f"{device}-{precision}-{config.layout}-{mode}{unfused}-{torch_tag}{cuda}"


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100'; 'NVIDIA GeForce RTX 4090' -> 'rtx4090'."""
    words = [w for w in re.split(r"[\s\-_]+", name) if w.lower() not in ("nvidia", "tesla", "geforce", "")]
    if not words:
        return "gpu"
    take = words[:2] if words[0].lower() in ("rtx", "gtx", "titan") else words[:1]
    return re.sub(r"[^a-z0-9]", "", "".join(take).lower()) or "gpu"


def write_csv(rows: Iterable[dict[str, Any]], path: str | Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in ROW_FIELDS})
    atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def payload(config: BenchConfig, env: dict[str, Any], rows: list[dict], notes: list[str], peak: float | None) -> dict:
    """The JSON document: config, environment, GEMM peak, notes (skipped comparisons) and rows."""
    return {
        "schema": SCHEMA,
        "config": to_dict(config),
        "environment": env,
        "gemm_peak_gflops": None if peak is None else peak / 1e9,
        "notes": notes,
        "rows": rows,
    }


def write_json(document: dict[str, Any], path: str | Path) -> None:
    save_json(document, path)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a bench CSV or JSON file, typed; raises ValueError for files of another kind."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"result file {str(path)!r} is a directory; pass the .json or .csv files bench wrote")
    if not path.is_file():
        raise FileNotFoundError(f"result file {str(path)!r} does not exist")
    if path.suffix == ".json":
        data = read_json(path, "pass a result file `hybridvision bench` wrote")
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"{path} is not a `hybridvision bench` JSON file (no schema {SCHEMA!r})")
        return [new_row(**row) for row in data["rows"]]
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != ROW_FIELDS:
            raise ValueError(f"{path} is not a `hybridvision bench` CSV file (its columns differ)")
        return [{k: _parse(v, ROW_TYPES[k]) for k, v in row.items()} for row in reader]


def _parse(value: str, kind: type) -> Any:
    if kind is str:
        return value
    if value == "":
        return None
    if kind is bool:
        return value == "True"
    return kind(value) if kind in (int, float) else value
