"""Every number in README.md and docs/ comes from a committed result file (scripts/doc_sources.py).

A number with a unit either sits in a generated block, or carries a source marker whose expression over
``results/`` files prints as the number, or is one of the few quoted numbers on the allow-list. Changing any
cited value makes the check fail, on disk in a copy of results/ and value by value in memory.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import doc_sources as ds  # noqa: E402


@pytest.fixture(scope="module")
def numbers():
    return ds.all_numbers(ROOT)


def sourced(numbers):
    """(number, expression, printed) for every number with a marker."""
    found = [n for ns in numbers.values() for n in ns if n.source not in ("", "allowed")]
    return [(n, e, v) for n in found for e, v in zip(n.exprs, n.values)]


def test_every_number_in_the_docs_has_a_source():
    assert ds.check(ROOT) == []


def test_the_allow_list_is_short_and_names_where_each_number_comes_from(numbers):
    assert 0 < len(ds.ALLOWED) <= ds.MAX_ALLOWED
    assert all(why.strip() for _, _, why in ds.ALLOWED)
    assert ds.check_allowed(ROOT, numbers) == []
    assert len(sourced(numbers)) > 900  # the docs' numbers are sourced, not allowed


def test_the_readme_speed_tables_are_what_the_results_give():
    """The README's speed tables are generated from results/speed/*.csv: rewriting them changes nothing."""
    from hybridvision.bench.report import result_files, results_markdown, update_section

    text = (ROOT / "README.md").read_text()
    assert update_section(text, results_markdown(result_files(ROOT / "results" / "speed"))) == text


@pytest.mark.slow
def test_generated_tables_are_up_to_date():
    """The README's speed and size tables and the model cards' size tables are what the script writes now (the
    sizes count every registered model's MACs: about half a minute)."""
    script = ROOT / "scripts" / "update_readme_tables.py"
    assert subprocess.run([sys.executable, str(script), "--check"], capture_output=True).returncode == 0


UP, DOWN = (lambda v: v * 2 + 10), (lambda v: v / 2 - 10)  # changes large enough to cross any printed rounding


def moves(expr: str, printed: str, file: str, keypath: str, cache: dict, element: int | None = None) -> bool:
    """Whether changing the value(s) at ``file#keypath`` (up or down) changes what ``expr`` prints."""
    for change in (UP, DOWN):
        changed = {**cache, file: ds.perturbed(cache[file], keypath, change, element)}
        try:
            if not ds.printed_as(ds.evaluate(expr, ROOT / "results", changed), printed):
                return True
        except ds.SourceError:  # the changed value breaks the expression (a square root of a negative): it fails
            return True
    return False


def test_every_cited_value_moves_its_number(numbers):
    """Each value a marker reads (each element of a list it reads), changed, changes what the marker prints."""
    cache: dict = {}
    inert = []
    for n, expr, printed in sourced(numbers):
        ds.evaluate(expr, ROOT / "results", cache)  # loads the files
        for file, keypath in ds.references(expr):
            value = ds.lookup(cache[file], keypath)
            elements = range(len(value)) if isinstance(value, list) else [None]
            inert += [
                f"{n.doc}:{n.line} {file}#{keypath}[{i}]"
                for i in elements
                if not moves(expr, printed, file, keypath, cache, i)
            ]
    assert inert == []


def _write_changed(path: Path, keypath: str, change) -> None:
    """Rewrite a results file with the cited value(s) at ``keypath`` changed."""
    data = ds.perturbed(ds.load(path), keypath, change)
    if path.suffix == ".json":
        path.write_text(json.dumps(data))
    elif path.suffix == ".yaml":
        path.write_text(yaml.safe_dump(data))
    else:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(data[0]))
            writer.writeheader()
            writer.writerows(data)


def test_changing_a_cited_value_in_a_copy_of_results_fails_the_check(numbers, tmp_path):
    """A copy of results/ checks clean; in every cited file, changing a cited value on disk fails the numbers
    that cite it (the value-by-value test above covers every cited value in memory)."""
    copy = tmp_path / "results"
    shutil.copytree(ROOT / "results", copy)
    assert ds.check(ROOT, copy) == []
    cited: dict[str, dict[str, list[ds.Number]]] = {}
    for n, expr, _ in sourced(numbers):
        for file, keypath in ds.references(expr):
            cited.setdefault(file, {}).setdefault(keypath, []).append(n)
    assert len(cited) > 60
    still_passing = []
    for file, keypaths in cited.items():
        keypath, citing = next(iter(keypaths.items()))
        original = (copy.parent / file).read_bytes()
        for change in (UP, DOWN):  # a value inside a min() may need to go down to show
            _write_changed(copy.parent / file, keypath, change)
            citing = [n for n in citing if not ds.check_number(n, copy, {})]
            (copy.parent / file).write_bytes(original)
        still_passing += [f"{n.doc}:{n.line} {file}#{keypath}" for n in citing]
    assert still_passing == []
    assert ds.check(ROOT, copy) == []  # restored: clean again


# ---- The rules, on small documents


def make_docs(tmp_path: Path, text: str, values: dict) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# t\n")
    (tmp_path / "docs" / "page.md").write_text(text)
    (tmp_path / "results" / "speed").mkdir(parents=True)
    (tmp_path / "results" / "speed" / "r.json").write_text(json.dumps(values))
    return tmp_path


@pytest.fixture
def no_allowed(monkeypatch):
    monkeypatch.setattr(ds, "ALLOWED", ())


def problems(root: Path) -> list[str]:
    return ds.check(root)


def test_a_number_needs_a_marker_that_prints_as_it(tmp_path, no_allowed):
    values = {"acc": 93.61, "rows": [{"model": "a", "ms": 12.34}, {"model": "b", "ms": 3.0}]}
    text = (
        "Top-1 93.6%<!-- src: results/speed/r.json#acc --> and 12 ms<!-- src: #rows[model=a].ms -->.\n\n"
        "Unsourced: 4.2x faster. In code it does not count: `93.6%`.\n\n"
        "Wrong: 93.7%<!-- src: results/speed/r.json#acc -->;\n"
        "a ratio 4.3x<!-- src: #rows[model=a].ms / #rows[model=b].ms -->.\n"
    )
    found = problems(make_docs(tmp_path, text, values))
    assert len(found) == 3
    assert "'4.2x' has no source" in found[0]
    assert "93.7 printed, but results/speed/r.json#acc is 93.61" in found[1]
    assert (
        "4.3 printed, but results/speed/r.json#rows[model=a].ms / results/speed/r.json#rows[model=b].ms is 4.11333"
        in found[2]
    )
    assert ds.printed_as(12.34 / 3.0, "4.1") and ds.printed_as(3610.4, "3,610") and not ds.printed_as(0.96, "0.9")


def test_relative_references_stay_inside_their_paragraph(tmp_path, no_allowed):
    text = "A 1.0 s<!-- src: results/speed/r.json#a -->.\n\nB 2.0 s<!-- src: #b -->.\n"
    found = problems(make_docs(tmp_path, text, {"a": 1.0, "b": 2.0}))
    assert found == ["docs/page.md:3: '2.0 s': #b names no file and no earlier reference in its paragraph does"]


def test_ranges_tables_spreads_and_groups_need_every_number(tmp_path, no_allowed):
    values = {"lo": 1.62, "hi": 1.78, "m": 90.94, "s": 0.032, "rows": [{"k": "x", "v": 7.0}, {"k": "y", "v": 9.0}]}
    text = (
        "Speed 1.6–1.8x<!-- src: results/speed/r.json#lo ; #hi --> and 90.94 ± 0.03<!-- src: #m ; #s -->.\n"
        "Range over rows 7–9 ms<!-- src: min(#rows[*k=x].v, #rows[*k=y].v) ; max(#rows[*k=x].v, #rows[*k=y].v) -->.\n\n"
        "| model | img/s | note |\n| --- | ---: | --- |\n| x | 7 | batch 16 |\n\n"
        "FID is 0.91 here.\n"
    )
    found = problems(make_docs(tmp_path, text, values))
    assert [f.split(" (add")[0] for f in found] == [
        "docs/page.md:6: '7' has no source",
        "docs/page.md:8: '0.91' has no source",
    ]


def test_include_blocks_must_equal_their_results_file(tmp_path, no_allowed):
    root = make_docs(
        tmp_path, "x\n\n<!-- include: results/speed/t.md#table -->\n| a |\n| --- |\n| 1 |\n<!-- include:end -->\n", {}
    )
    (root / "results" / "speed" / "t.md").write_text("# title\n\n| a |\n| --- |\n| 1 |\n\nnote 5%\n")
    assert problems(root) == []
    (root / "results" / "speed" / "t.md").write_text("| a |\n| --- |\n| 2 |\n")
    assert problems(root) == [
        "docs/page.md: include of results/speed/t.md is out of date (run scripts/doc_sources.py --write)"
    ]
    assert ds.write_includes(root) == [root / "docs" / "page.md"] and problems(root) == []


def test_expressions_are_arithmetic_only(tmp_path):
    with pytest.raises(ds.SourceError, match="only arithmetic"):
        ds.evaluate("__import__('os').getcwd()", tmp_path, {})
