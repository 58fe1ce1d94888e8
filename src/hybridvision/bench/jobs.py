"""What a measuring process is asked to do (``Job``), and which timm model stands for one of ours.

Shared by the planner (``against``), the runner and the measuring process (``worker``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from ..registry import get_entry
from .config import BenchConfig


@dataclass(frozen=True)
class Job:
    """One model under one implementation and backend, measured once at every batch size."""

    model: str  # our registered name (timm jobs time the timm model that matches it)
    input_chw: tuple[int, int, int]
    impl: str = "hybridvision"  # "hybridvision" or "timm"
    backend: str = "torch"  # "torch", "onnxruntime", "openvino" or "executorch"
    weights: str | None = None  # safetensors file shared with the other implementations (None: seeded init)
    timm_name: str | None = None
    onnx_path: str | None = None
    repeat: int = 0
    precision: str = ""  # this job's precision ("": the config's)
    model_file: str | None = None  # an exported file timed through its runtime (.onnx/.xml/.pte/.pt2)

    def precision_of(self, config: BenchConfig) -> str:
        return self.precision or config.precision

    @property
    def key(self) -> tuple[str, ...]:
        """What a parity result is recorded under: (impl, backend), with the precision when the job has its own."""
        return (self.impl, self.backend, self.precision) if self.precision else (self.impl, self.backend)


def import_timm() -> tuple[ModuleType | None, str]:
    """(timm, '') or (None, why not); torchvision is completed first where its C extension is missing."""
    try:
        from ..vision_ops import import_torchvision

        import_torchvision()
        import timm
    except Exception as e:  # noqa: BLE001 - ImportError, or torchvision's RuntimeError on CPU-only machines
        return None, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return timm, ""


def timm_name(name: str, config: BenchConfig) -> str | None:
    """The timm model sharing ``name``'s weights: ``--timm-name ours=theirs``, else the model card's ``timm_twin``."""
    return config.timm_name_map().get(name) or get_entry(name).card.get("timm_twin")
