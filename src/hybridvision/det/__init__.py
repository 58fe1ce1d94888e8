"""Detection and instance segmentation: torchvision's Mask R-CNN on any hybridvision backbone, a task of the engine.

- ``DetModel(DetModelConfig(backbone="ascan_t", num_classes=81))``: the model (``det.model``);
- ``train(DetTrainConfig(...))``: a training run (``det.task``); defaults train ascan_nano on Fashion-MNIST scenes
  written as a COCO folder (``det.scenes``), read like any COCO folder (``det.data``);
- ``evaluate_run``, ``predict_files``: ``hybridvision det eval`` / ``det predict`` (COCO's own AP, ``det.metrics``),
  which read a run without importing the training task;
- ``maskrcnn_<backbone>`` names (for ``create_model``) are registered with the backbones (``hybridvision.models.zoo``).

torchvision and pycocotools come with the ``det`` extra; torchvision is imported through ``hybridvision.vision_ops``
when a detector is first built. ``Detection`` and ``train`` load when first asked for.
"""

from importlib import import_module
from typing import Any

from .config import DetDataConfig, DetEvalConfig, DetPredictConfig, DetTrainConfig
from .model import DetectorConfig, DetModel, DetModelConfig, load_weights
from .scenes import ScenesConfig, write_scenes

__all__ = [
    "DetDataConfig",
    "DetEvalConfig",
    "DetModel",
    "DetModelConfig",
    "DetPredictConfig",
    "DetTrainConfig",
    "Detection",
    "DetectorConfig",
    "ScenesConfig",
    "load_weights",
    "train",
    "write_scenes",
]


def __getattr__(name: str) -> Any:
    if name in ("Detection", "train"):
        return getattr(import_module(".task", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
