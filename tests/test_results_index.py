"""results/ explains itself: one folder per task, an index generated from the files, no dangling citations, and
producers under benchmarks/ that name their files and command (scripts/results_index.py)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import results_index as ri  # noqa: E402


def test_results_are_kept_by_task():
    folders = {p.name for p in (ROOT / "results").iterdir() if p.is_dir()}
    assert folders <= set(ri.TASKS) and {"classify", "seg", "diffusion", "study", "speed"} <= folders
    assert [p.name for p in (ROOT / "results").iterdir() if p.is_file()] == ["README.md"]


def test_the_index_is_what_the_files_give():
    assert (ROOT / "results" / "README.md").read_text() == ri.index(ROOT)


def test_every_entry_says_what_made_it_and_where():
    text = ri.index(ROOT)
    entries = [p for task in (ROOT / "results").iterdir() if task.is_dir() for p in task.iterdir()]
    assert len(entries) > 50
    for entry in entries:
        block = text.split(f"### `{entry.name}{'/' if entry.is_dir() else ''}`\n", 1)[1].split("\n### ")[0]
        assert "- holds: " in block and "- made by: " in block and "- made: " in block, entry
    assert "made: commit " in text and "no environment block" in text  # recorded ones, and a plain "none"


def _fake_root(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "results", tmp_path / "results")
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    return tmp_path


def test_the_index_changes_with_the_tree(tmp_path):
    """An entry added or removed shows in the index, so the committed README.md no longer matches."""
    root = _fake_root(tmp_path)
    committed = (ROOT / "results" / "README.md").read_text()
    assert ri.index(root) == committed
    env = {"git_sha": "abc1234", "timestamp": "2030-01-02T03:04:05", "cpu": "Test CPU", "cpu_capability": "AVX2"}
    (root / "results" / "speed" / "new.json").write_text(json.dumps({"value": 1, "environment": env}))
    added = ri.index(root)
    assert "### `new.json`" in added and "commit abc1234, 2030-01-02, Test CPU (AVX2)" in added
    assert "- made by: not recorded" in added.split("### `new.json`")[1]
    (root / "results" / "speed" / "new.json").unlink()
    shutil.rmtree(root / "results" / "seg" / "seg_fmnist_coatnet_nano")
    assert ri.index(root) != committed and "seg_fmnist_coatnet_nano/`" not in ri.index(root)


def test_every_cited_results_path_exists():
    cited = ri.cited_paths(ROOT)
    assert {"README.md", "configs/study/ascan_layouts.yaml", "docs/segmentation.md"} <= set(cited)
    assert any(path.startswith("results/study/study_ascan_layouts/table.json") for path in cited)
    assert ri.dangling(ROOT) == []


def test_a_dangling_citation_is_reported(tmp_path):
    root = _fake_root(tmp_path)
    (root / "docs").mkdir()
    (root / "README.md").write_text("See `results/speed/cpu-ascan.json` and `results/speed/gone.json`.\n")
    (root / "docs" / "a.md").write_text(
        "Runs in results/seg/seg_fmnist_{ascan_nano,missing_nano}/ and results/study/study_<name>/.\n"
    )
    assert ri.dangling(root) == [
        "README.md: results/speed/gone.json does not exist",
        "docs/a.md: results/seg/seg_fmnist_{ascan_nano,missing_nano}/ does not exist",
    ]


def test_producers_name_their_files_and_command():
    """Every script under benchmarks/ (but the shared helper) names the results it writes and how to run it; the
    committed results each come from one of them or record their own making."""
    scripts = {p.script: p for p in ri.producers(ROOT)}
    expected = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "benchmarks").rglob("*")
        if p.suffix in (".py", ".sh") and not p.name.startswith("_")
    }
    assert expected <= set(scripts)
    assert all(p.usages and p.script in p.usages[0] for p in scripts.values())
    assert ri.made_by("results/seg/seg_recognition_ceiling.json", list(scripts.values()))[0].script.startswith(
        "benchmarks/analysis/"
    )
    assert "fmnist_ascan_nano_2h" in ri.made_by("results/classify/fmnist_ascan_nano_2h/", list(scripts.values()))[1]
