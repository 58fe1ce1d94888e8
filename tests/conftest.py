"""Shared fixtures: deterministic seeds, restored global state, the reference-fixture folder, the real timm."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

_DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
REFERENCE_DIR = Path(os.environ.get("HYBRIDVISION_REFERENCE", _DEFAULT_REFERENCE))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(dtype)


@pytest.fixture
def reference_dir() -> Path:
    if not (REFERENCE_DIR / "manifest.json").is_file():
        pytest.skip(f"reference fixtures not found at {REFERENCE_DIR} (set HYBRIDVISION_REFERENCE to their folder)")
    return REFERENCE_DIR


def _randomize_batchnorms(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(-1.3, 1.3)
                m.bias.normal_(0, 0.1)


@pytest.fixture
def randomize_batchnorms():
    """Give every BatchNorm non-trivial statistics and affine parameters, so BN folding is really exercised."""
    return _randomize_batchnorms


@pytest.fixture(scope="session")
def timm():
    """The real timm (torchvision completed by ``hybridvision.vision_ops`` where needed); skips when not installed."""
    from hybridvision.bench.jobs import import_timm

    module, reason = import_timm()
    if module is None:
        pytest.skip(f"timm is not importable ({reason}); install '.[compare]'")
    return module
