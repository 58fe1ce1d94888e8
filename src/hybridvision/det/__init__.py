"""Detection and instance segmentation: torchvision's Mask R-CNN on any hybridvision backbone, a task of the engine.

- ``build_detector(DetModelConfig(backbone="ascan_t", num_classes=81))``: the model (``det.model``);
- ``train(DetTrainConfig(...))``: a training run (``det.task``); defaults train ascan_nano on Fashion-MNIST scenes
  written as a COCO folder (``det.scenes``), read like any COCO folder (``det.data``);
- ``evaluate_run``, ``predict_files``: ``hybridvision det eval`` / ``det predict`` (COCO's own AP, ``det.metrics``).

torchvision and pycocotools come with the ``det`` extra; torchvision is imported through ``hybridvision.vision_ops``.
"""

from .config import DetDataConfig, DetEvalConfig, DetPredictConfig, DetTrainConfig
from .model import DetectorConfig, DetModelConfig, build_detector, load_weights
from .scenes import ScenesConfig, write_scenes
from .task import Detection, train

__all__ = [
    "DetDataConfig",
    "DetEvalConfig",
    "DetModelConfig",
    "DetPredictConfig",
    "DetTrainConfig",
    "Detection",
    "DetectorConfig",
    "ScenesConfig",
    "build_detector",
    "load_weights",
    "train",
    "write_scenes",
]
