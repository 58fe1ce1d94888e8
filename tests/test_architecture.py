"""The house rules, read from the source: imports point down the floors, no file imports itself back through
others, and no task package imports another (what two tasks share moves down a floor).

Every ``import`` counts, including those inside functions. Floors, bottom to top:
config/registry -> models (blocks -> contract -> families) -> services -> engine -> tasks -> apps -> cli.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "hybridvision"

# Top-level name under hybridvision -> floor. A new module must be placed here (and so, consciously, on a floor).
FLOORS: dict[str, int] = {
    "config": 0,
    "registry": 0,
    "models": 1,
    "fileio": 2,
    "figures": 2,
    "env": 2,
    "macs": 2,
    "checkpoint": 2,
    "factory": 2,
    "export": 2,
    "data": 2,
    "timm": 2,
    "hub": 2,
    "vision_ops": 2,
    "engine": 3,
    "publish": 3,  # a run's folder to the Hub: reads runs through the engine's rundir
    "classify": 4,
    "bench": 4,
    "seg": 4,
    "diffusion": 4,
    "det": 4,
    "apps": 5,
    "study": 5,
    "cli": 6,
    "__main__": 6,
}
TASKS = ("classify", "bench", "seg", "diffusion", "det")
# Inside models/: blocks never reach up to the contract or a family; the contract never to a family.
MODEL_FLOORS = {"blocks": 0, "contract": 1}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str) -> Path | None:
    """The file of a dotted module name: a module, a package's __init__, or the nearest module above it."""
    parts = name.split(".")
    while parts:
        base = SRC.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        parts = parts[:-1]
    return None


def imports_of(path: Path) -> set[Path]:
    """Files of this package that ``path`` imports, anywhere in the file (function-level imports too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            if target.split(".")[0] != PACKAGE:
                continue
            file = module_file(target)
            if file is not None and file != path:
                found.add(file)
    return found


def graph() -> dict[Path, set[Path]]:
    return {p: imports_of(p) for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def cycles(edges: dict[Path, set[Path]]) -> list[list[Path]]:
    """Strongly connected components with more than one file (Tarjan)."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    found: list[list[Path]] = []

    def visit(v: Path) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in edges:
        if v not in index:
            visit(v)
    return found


def top(path: Path) -> str:
    parts = module_name(path).split(".")
    return parts[1] if len(parts) > 1 else ""


def rel(path: Path) -> str:
    return str(path.relative_to(SRC))


def test_no_import_cycles_between_files():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(sorted(rel(p) for p in c)) for c in found)


def test_every_module_stands_on_a_floor():
    unplaced = sorted({top(p) for p in graph() if top(p) and top(p) not in FLOORS})
    assert not unplaced, f"modules without a floor in tests/test_architecture.py: {unplaced}"


def test_imports_point_down():
    bad = []
    for src, targets in graph().items():
        if not top(src):  # the package face re-exports the public API
            continue
        for dst in targets:
            if top(dst) and FLOORS[top(dst)] > FLOORS[top(src)]:
                bad.append(f"{rel(src)} -> {rel(dst)}")
    assert not bad, "imports that point up a floor: " + ", ".join(bad)


def test_no_task_imports_another_task():
    bad = [
        f"{rel(src)} -> {rel(dst)}"
        for src, targets in graph().items()
        for dst in targets
        if top(src) in TASKS and top(dst) in TASKS and top(src) != top(dst)
    ]
    assert not bad, "task packages importing each other (move what both need down a floor): " + ", ".join(bad)


def _model_floor(path: Path) -> int | None:
    parts = module_name(path).split(".")
    if len(parts) < 3 or parts[1] != "models":
        return None
    return MODEL_FLOORS.get(parts[2], 2)


def test_models_floors():
    bad = []
    for src, targets in graph().items():
        here = _model_floor(src)
        if here is None or src.name == "__init__.py" and here == 2:
            continue
        for dst in targets:
            there = _model_floor(dst)
            if there is not None and there > here and not (dst.name == "__init__.py" and there == 2):
                bad.append(f"{rel(src)} -> {rel(dst)}")
    assert not bad, "model files importing up (blocks -> contract -> families): " + ", ".join(bad)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from .a import b\n", {"hybridvision.pkg.a"}),
        ("def f():\n    from ..x import y\n", {"hybridvision.x"}),
    ],
)
def test_the_reader_sees_relative_and_function_level_imports(tmp_path, monkeypatch, source, expected):
    pkg = tmp_path / PACKAGE / "pkg"
    pkg.mkdir(parents=True)
    for name in ("__init__.py", "a.py", "m.py"):
        (pkg / name).write_text("")
    (tmp_path / PACKAGE / "__init__.py").write_text("")
    (tmp_path / PACKAGE / "x.py").write_text("")
    (pkg / "m.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    assert {module_name(p) for p in imports_of(pkg / "m.py")} == expected


def test_cycle_finder_finds_a_loop_through_three_files():
    a, b, c, d = (Path(x) for x in "abcd")
    assert [sorted(map(str, found)) for found in cycles({a: {b}, b: {c}, c: {a, d}, d: set()})] == [["a", "b", "c"]]
