"""Shared fixtures: deterministic seeds, restored global state, the reference-fixture folder."""

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
