"""Semantic segmentation: UperNet or Semantic FPN (+ auxiliary FCN head) on any backbone, as a task of the engine.

- ``SegModel(SegModelConfig(backbone="ascan_t", num_classes=150))``: the model (``seg.model``, ``seg.heads``);
- ``train(SegTrainConfig(...))``: a training run (``seg.task``); defaults train ascan_nano on Fashion-MNIST scenes;
- ``evaluate_run``, ``predict_files``: ``hybridvision seg eval`` / ``seg predict`` (``seg.evaluate``,
  ``seg.predict``), which read a run without importing the training task;
- ``upernet_<backbone>`` names (for ``create_model`` and ``bench``) are registered with the backbones
  (``hybridvision.models.zoo``).

``Segmentation`` and ``train`` load when first asked for.
"""

from importlib import import_module
from typing import Any

from ..data.scenes import SCENE_CLASSES, SceneConfig
from .config import InferConfig, PredictConfig, SegAugConfig, SegDataConfig, SegEvalConfig, SegTrainConfig
from .heads import FCNHead, UperNetHead
from .metrics import confusion_matrix, iou_per_class, scores
from .model import HeadConfig, SegModel, SegModelConfig, load_weights

__all__ = [
    "FCNHead",
    "HeadConfig",
    "InferConfig",
    "PredictConfig",
    "SCENE_CLASSES",
    "SceneConfig",
    "SegAugConfig",
    "SegDataConfig",
    "SegEvalConfig",
    "SegModel",
    "SegModelConfig",
    "SegTrainConfig",
    "Segmentation",
    "UperNetHead",
    "confusion_matrix",
    "iou_per_class",
    "load_weights",
    "scores",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in ("Segmentation", "train"):
        return getattr(import_module(".task", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
