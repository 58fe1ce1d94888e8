"""Measuring models: MACs and parameters (``macs``); latency and throughput come with ``hybridvision bench``."""

from .macs import ModelCost, count_macs, count_params, model_cost

__all__ = ["ModelCost", "count_macs", "count_params", "model_cost"]
