"""Measuring models: MACs and parameters (``macs``), and the latency/throughput harness behind
``hybridvision bench`` (``BenchConfig`` -> ``run_bench`` -> rows; ``measure`` is the timing core)."""

from ..env import environment
from ..macs import ModelCost, count_macs, count_params, model_cost
from .config import BenchConfig
from .measure import Bounds, measure
from .results import ROW_FIELDS, read_rows, write_csv, write_json
from .runner import BenchResult, run_bench
from .timing import Timing, gemm_peak_flops, time_fn, time_forward

__all__ = [
    "ROW_FIELDS",
    "BenchConfig",
    "BenchResult",
    "Bounds",
    "ModelCost",
    "Timing",
    "count_macs",
    "count_params",
    "environment",
    "gemm_peak_flops",
    "measure",
    "model_cost",
    "read_rows",
    "run_bench",
    "time_fn",
    "time_forward",
    "write_csv",
    "write_json",
]
