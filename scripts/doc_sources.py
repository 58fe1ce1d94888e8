#!/usr/bin/env python
"""Every number in the docs comes from a committed result file: find the numbers, resolve their sources, check.

A number with a unit (%, pp, ms, s, FPS, img/s, samples/s, x or ×, MB, GB, M, G, GMACs, GFLOP/s), a mean and
its spread ("90.94 ± 0.03", "±0.20"), a decimal number after "FID", a number in a table column whose header names
a measure, or any number followed by a source marker, in README.md or docs/, must

- sit in a generated block: the README's speed and size tables and the model cards' size tables
  (``scripts/update_readme_tables.py``), or a copy of a results file between ``<!-- include: results/FILE.md -->``
  (``results/FILE.md#table``: its first table only) and ``<!-- include:end -->`` (``--write`` copies them);
- or be followed by a source marker ``<!-- src: EXPR -->``. EXPR is arithmetic (``+ - * / **`` and ``min``,
  ``max``, ``mean``, ``std`` (sample), ``sum``, ``len``, ``abs``, ``sqrt``) over references ``results/FILE#key.path``
  into a JSON, YAML or CSV file (a CSV reads as a list of rows). A key path is dot-separated names and list
  indices, ``["odd key"]``, and row selectors ``[model=ascan_t,batch_size=1]`` that must match exactly one row
  (``[*kind=op]``: every matching row, the rest of the path read from each, for ``min``/``max``/``mean``).
  ``#key.path`` alone reads the file the previous reference of the same paragraph or table named. Numbers written
  together ("1.6–1.8x", "98 vs 89 img/s") share one marker, one expression each, separated by ``;``, in order. The
  expression's value, printed at the number's precision, must be the number;
- or be listed in ``ALLOWED`` (numbers no run measures: the papers' and the recipes' targets; at most 30).

Code (inline and fenced), link targets and HTML comments are not read for numbers.

    python scripts/doc_sources.py            # check: one line per problem, exit 1 if any
    python scripts/doc_sources.py --write    # rewrite the include blocks from their results files
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import json
import math
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hybridvision.bench.report import BEGIN, CARD_BEGIN, CARD_END, END, SIZES_BEGIN, SIZES_END  # noqa: E402

MAX_ALLOWED = 30
# Numbers no run of ours measures: quoted from the papers, or the targets a recipe sets before it runs.
# (document, the number as printed, where it comes from); an entry covers every unmarked copy in that document.
ALLOWED: tuple[tuple[str, str, str], ...] = (
    ("README.md", "75%", "target: configs/seg/fmnist_scenes_ascan_nano_30min.yaml"),
    ("README.md", "80%", "target: configs/diffusion/fmnist_t2i_stage1_32.yaml"),
    ("docs/generation.md", "85%", "target: configs/diffusion/fmnist_ascan_unet_60min.yaml"),
    ("docs/generation.md", "90%", "stretch target: configs/diffusion/fmnist_ascan_unet_60min.yaml"),
    ("docs/generation.md", "80%", "target: configs/diffusion/fmnist_t2i_stage1_32.yaml"),
    ("docs/segmentation.md", "75%", "target: configs/seg/fmnist_scenes_ascan_nano_30min.yaml"),
    ("docs/segmentation.md", "85%", "stretch target: configs/seg/fmnist_scenes_ascan_nano_30min.yaml"),
    ("docs/training.md", "93.5%", "target: configs/train/fmnist_ascan_nano_30min.yaml"),
    ("docs/training.md", "94%", "target: configs/train/fmnist_ascan_nano_2h.yaml"),
    ("docs/training.md", "95%", "stretch target: configs/train/fmnist_ascan_nano_2h.yaml"),
    ("docs/training.md", "83.4%", "AsCAN paper: AsCAN-T ImageNet top-1"),
    ("docs/models/ascan.md", "3224 img/s", "AsCAN paper: AsCAN-T throughput on an A100"),
    ("docs/models/ascan.md", "2×", "AsCAN paper: AsCAN-T against MaxViT-T and CoAtNet-0 on a GPU"),
    ("docs/deploy.md", "1.5x", "target: benchmarks/run_deploy_table.sh"),
    ("docs/study.md", "93-96%", "published CNN results on Fashion-MNIST (the range its literature reports)"),
)

INCLUDE = re.compile(r"(<!-- include: (results/\S+\.md)(#table)? -->\n)(.*?)(<!-- include:end -->)", re.S)
GENERATED = ((BEGIN, END), (SIZES_BEGIN, SIZES_END))  # and the model-card blocks (CARD_BEGIN ... CARD_END)
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_UNIT = (
    r"(?:\s?%|\s?pp\b|\s?ms\b|\s?s\b(?![-'])|\s?FPS\b|\s?img/s\b|\s?samples/s\b|\s?GFLOP/s|\s?[MG]MACs\b"
    r"|[x×](?![\w\d])|\s?MB\b|\s?GB\b|[MG]\b(?![-+]))"
)
_JOIN = r"(?:\s?[–/→-]\s?|,\s|\s(?:and|or|vs\.?|against|to)\s)"
GROUP = re.compile(rf"(?<![\w.,/#^×²-])[-+−]?(?:{_NUM}{_JOIN})*{_NUM}{_UNIT}")
SPREAD = re.compile(  # a mean ± its spread, or a decimal spread alone ("±0.20"); not a range ("±32")
    rf"(?<![\w.,/#^-])(?:[-+−]?{_NUM}\s?±\s?{_NUM}|±\s?\d+\.\d+)(?![/\d])(?:\s?%|\s?pp\b)?"
)
COUNT_BEFORE = re.compile(
    r"\b(?:batch|batches|stage|step|steps|epoch|epochs|seed|seeds|round|rounds|study|studies|N =)\s$", re.I
)
FID = re.compile(r"\bFID\b")
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")
CELL_NUMBER = re.compile(rf"(?<![\w.,/#×-])[-+−]?{_NUM}(?![\w.,×/-]|\s?[x×]\s?\d)")
SEPARATOR = re.compile(r"\s*\|[\s:|-]+\|\s*$")
MEASURE = re.compile(  # a table header naming a measure (its cells then need sources without a unit of their own)
    r"%|\bpp\b|\bms\b|(?<![\w'’])s\b|FPS|img/s|samples/s|FID|[Aa]cc|IoU|top-1|params|MACs|GFLOP|×|\bx\b|\bGB\b|\bMB\b"
    r"|[Ll]atency|[Tt]hroughput|[Ss]peed"
)
MARKER = re.compile(r"[*_)\]]*\s?<!-- src: (.*?) -->")
MARKED = re.compile(rf"(?<![\w.,/#^-])([-+−]?{_NUM})(?=[*_)\]]*\s?<!-- src:)")
REF = re.compile(r"(results/[\w\-./]+?\.(?:json|csv|yaml))?#((?:\w+|\[[^\]]*\])(?:\.\w+|\[[^\]]*\])*)")
SEGMENT = re.compile(r"\.?(\w+)|\[([^\]]*)\]")
FUNCS: dict[str, Callable[..., float]] = {
    "min": lambda *a: min(_flat(a)),
    "max": lambda *a: max(_flat(a)),
    "mean": lambda *a: statistics.fmean(_flat(a)),
    "std": lambda *a: statistics.stdev(_flat(a)),  # the sample standard deviation
    "sum": lambda *a: math.fsum(_flat(a)),
    "len": len,
    "abs": abs,
    "sqrt": math.sqrt,
}


@dataclass(frozen=True)
class Number:
    """A number (or numbers written together) in a document, and what backs it."""

    doc: str  # path relative to the repository root
    line: int  # 1-based line
    text: str  # as printed, unit included
    values: tuple[str, ...]  # each number as printed, without the unit
    source: str  # the marker's expressions with every reference's file spelled out, "allowed", or "" (none)

    @property
    def exprs(self) -> list[str]:
        """One expression per number (a marker written for more or fewer numbers shows in ``check_number``)."""
        return [e.strip() for e in self.source.split(";")]


class SourceError(ValueError):
    """A reference that does not resolve, or an expression that cannot be evaluated."""


def _flat(args: tuple) -> list[float]:
    out: list[float] = []
    for a in args:
        out.extend(a if isinstance(a, list) else [a])
    return out


def doc_files(root: Path) -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _blank(text: str, span: tuple[int, int]) -> str:
    """``text`` with ``span`` replaced by spaces (newlines kept, so offsets and line numbers stay)."""
    start, stop = span
    return text[:start] + re.sub(r"[^\n]", " ", text[start:stop]) + text[stop:]


def _generated_spans(text: str) -> list[tuple[int, int]]:
    spans = [m.span() for m in INCLUDE.finditer(text)]
    spans += [(m.start(), text.index(CARD_END, m.end()) + len(CARD_END)) for m in CARD_BEGIN.finditer(text)]
    for begin, end in GENERATED:
        start = text.find(begin)
        if start >= 0:
            spans.append((start, text.index(end, start) + len(end)))
    return spans


def readable(text: str) -> str:
    """The text with code, link targets, HTML comments and generated blocks blanked out."""
    for span in _generated_spans(text):
        text = _blank(text, span)
    for pattern in (r"```.*?```", r"`[^`\n]*`", r"<!--.*?-->", r"\]\([^)\s]*\)"):
        for m in re.finditer(pattern, text, re.S):
            text = _blank(text, m.span())
    return text


def _table_spans(masked: str) -> list[tuple[int, int]]:
    """Numbers in the cells of table columns whose header names a measure."""
    spans: list[tuple[int, int]] = []
    lines, offset, header = masked.split("\n"), 0, None
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("|"):
            header = None
        elif header is None and i + 1 < len(lines) and SEPARATOR.match(lines[i + 1]):
            header = line.split("|")
        elif header is not None and not SEPARATOR.match(line):
            pos = offset
            for col, cell in enumerate(line.split("|")):
                if col < len(header) and MEASURE.search(header[col]):
                    spans += [(pos + m.start(), pos + m.end()) for m in CELL_NUMBER.finditer(cell)]
                pos += len(cell) + 1
        offset += len(line) + 1
    return spans


def _fid_spans(masked: str) -> list[tuple[int, int]]:
    """Decimal numbers in the rest of the sentence after "FID" (at most 60 characters)."""
    spans = []
    for m in FID.finditer(masked):
        window = re.split(r"[.;:!?](?:\s|$)|\n\n|\|", masked[m.end() : m.end() + 60])[0]
        spans += [(m.end() + d.start(), m.end() + d.end()) for d in DECIMAL.finditer(window)]
    return spans


def _group_spans(masked: str) -> list[tuple[int, int]]:
    """Numbers with a unit, written together; a leading count ("batch 16, 0.88-0.94x") is not one of them."""
    spans = []
    for m in GROUP.finditer(masked):
        start = m.start()
        while COUNT_BEFORE.search(masked, max(0, start - 12), start) and (
            first := re.match(rf"{_NUM}{_JOIN}", masked[start : m.end()])
        ):
            start += first.end()
        spans.append((start, m.end()))
    return spans


def _marked_spans(text: str, masked: str) -> list[tuple[int, int]]:
    """Numbers followed by a source marker, whatever their unit: a marker is always checked."""
    return [m.span(1) for m in MARKED.finditer(text) if masked[m.start(1)] != " "]


def _spans(text: str, masked: str) -> list[tuple[int, int]]:
    """Non-overlapping spans of numbers to check, in order; a group absorbs what lies inside it."""
    found = _group_spans(masked) + [m.span() for m in SPREAD.finditer(masked)] + _fid_spans(masked)
    found = sorted(found + _table_spans(masked) + _marked_spans(text, masked), key=lambda s: (s[0], -s[1]))
    spans: list[tuple[int, int]] = []
    for start, stop in found:
        if spans and start < spans[-1][1]:
            continue
        spans.append((start, stop))
    return spans


def find_numbers(path: Path, root: Path) -> list[Number]:
    """Every number with a unit in one document, with its source marker (or none)."""
    text = path.read_text()
    masked = readable(text)
    doc = path.relative_to(root).as_posix()
    allowed = {number for d, number, _ in ALLOWED if d == doc}
    out = []
    context, paragraph = None, -1
    for start, stop in _spans(text, masked):
        token = text[start:stop]
        if (here := text.rfind("\n\n", 0, start)) != paragraph:
            context, paragraph = None, here  # "#key" references stay inside their paragraph or table
        marker = MARKER.match(text, stop)
        source = "allowed" if token.strip() in allowed else ""
        if marker:
            source, context = _spelled_out(marker.group(1).strip(), context)
        values = tuple(re.findall(_NUM, token))
        if token.strip()[0] in "-−":
            values = ("-" + values[0], *values[1:])
        out.append(Number(doc, text.count("\n", 0, start) + 1, token.strip(), values, source))
    return out


def _spelled_out(source: str, context: str | None) -> tuple[str, str | None]:
    """``source`` with each "#key" reference given the file of the reference before it; and the last file named."""

    def full(m: re.Match) -> str:
        nonlocal context
        context = m.group(1) or context
        return f"{context}#{m.group(2)}" if context else m.group(0)

    return REF.sub(full, source), context


def references(expr: str) -> list[tuple[str, str]]:
    """The (file, key path) pairs an expression reads."""
    return [(m.group(1) or "", m.group(2)) for m in REF.finditer(expr)]


# ---- Resolving references


def load(path: Path) -> Any:
    """A result file's content: JSON, YAML, or CSV as a list of rows (numeric fields as floats)."""
    if not path.is_file():
        raise SourceError(f"no file {path}")
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".yaml":
        return yaml.safe_load(path.read_text())
    with path.open(newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(v: str) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


class _Rows(list):
    """The rows a ``[*...]`` selector matched: the rest of a key path is read from each."""


def lookup(data: Any, keypath: str) -> Any:
    """The value at a key path (see the module docstring) inside loaded data."""
    for name, bracket in SEGMENT.findall(keypath):
        if isinstance(data, _Rows):
            data = _Rows(_step(row, name, bracket, keypath) for row in data)
        else:
            data = _step(data, name, bracket, keypath)
    return list(data) if isinstance(data, _Rows) else data


def _step(data: Any, name: str, bracket: str, keypath: str) -> Any:
    key = name or bracket
    if "=" in bracket:
        many = bracket.startswith("*")
        wanted = dict(part.split("=", 1) for part in bracket.lstrip("*").split(","))
        rows = [r for r in data if isinstance(r, dict) and all(_same(r.get(k), v) for k, v in wanted.items())]
        if len(rows) != 1 and not (many and rows):
            raise SourceError(f"selector [{bracket}] matches {len(rows)} rows in {keypath}")
        return _Rows(rows) if many else rows[0]
    try:
        if bracket[:1] in "'\"" and bracket:
            return data[bracket[1:-1]]
        if isinstance(data, list):
            return data[int(key)]
        return data[key]
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise SourceError(f"no {key!r} in {keypath}") from e


def _same(value: Any, wanted: str) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(wanted) == value
        except ValueError:
            return False
    return str(value) == wanted


def evaluate(expr: str, results: Path, cache: dict[str, Any]) -> float:
    """The value of one expression whose references name their files; ``cache`` holds the files read."""
    names: dict[str, Any] = {}

    def resolve(m: re.Match) -> str:
        file = m.group(1)
        if not file:
            raise SourceError(f"#{m.group(2)} names no file and no earlier reference in its paragraph does")
        if file not in cache:
            cache[file] = load(results.parent / file)
        value = lookup(cache[file], m.group(2))
        if isinstance(value, bool) or not isinstance(value, (int, float, list)):
            raise SourceError(f"{file}#{m.group(2)} is {value!r}, not a number")
        names[f"_v{len(names)}"] = value
        return f"_v{len(names) - 1}"

    return _arith(REF.sub(resolve, expr), names)


def perturbed(data: Any, keypath: str, change: Callable[[float], float], element: int | None = None) -> Any:
    """A deep copy of loaded data with ``change`` applied to every number the key path reaches (of a list there:
    to each, or to the one at ``element``)."""
    data = copy.deepcopy(data)
    steps = SEGMENT.findall(keypath)
    parents = [data]
    for name, bracket in steps[:-1]:
        parents = [x for p in parents for x in _as_rows(_step(p, name, bracket, keypath))]
    name, bracket = steps[-1]
    for parent in parents:
        key: Any = name or bracket.strip("'\"")
        if isinstance(parent, list):
            key = int(key)
        value = parent[key]
        if isinstance(value, list):
            parent[key] = [change(v) if element in (None, i) else v for i, v in enumerate(value)]
        else:
            parent[key] = change(value)
    return data


def _as_rows(value: Any) -> list:
    return list(value) if isinstance(value, _Rows) else [value]


_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Call)
_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


def _arith(code: str, names: dict[str, Any]) -> float:
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError as e:
        raise SourceError(f"cannot parse {code!r}") from e
    for node in ast.walk(tree):
        if not isinstance(node, _NODES + _OPS) or (isinstance(node, ast.Name) and node.id not in {*names, *FUNCS}):
            raise SourceError(f"{code!r}: only arithmetic over references and {sorted(FUNCS)}")
    try:
        value = eval(compile(tree, "<src>", "eval"), {"__builtins__": {}}, {**FUNCS, **names})  # noqa: S307
    except (ArithmeticError, TypeError, ValueError) as e:
        raise SourceError(f"{code!r}: {e}") from e
    return float(value)


def printed_as(value: float, printed: str) -> bool:
    """Whether ``value`` rounds to ``printed`` at the printed precision (commas and a unicode minus allowed)."""
    number = float(printed.replace(",", "").replace("−", "-"))
    decimals = len(printed.partition(".")[2])
    return abs(value - number) <= 0.5 * 10**-decimals + 1e-9 * max(1.0, abs(number))


# ---- Checking


def check_number(n: Number, results: Path, cache: dict[str, Any]) -> str:
    """The problem with one number, or "" (``cache``: files already read, by path)."""
    where = f"{n.doc}:{n.line}: {n.text!r}"
    if n.source == "allowed":
        return ""
    if not n.source:
        return f"{where} has no source (add <!-- src: results/FILE#key -->, or include a results table)"
    if len(n.exprs) != len(n.values):
        return f"{where}: {len(n.values)} numbers but {len(n.exprs)} expressions in its marker"
    for expr, printed in zip(n.exprs, n.values):
        try:
            value = evaluate(expr, results, cache)
        except SourceError as e:
            return f"{where}: {e}"
        if not printed_as(value, printed):
            return f"{where}: {printed} printed, but {expr} is {value:.6g}"
    return ""


def check_includes(path: Path, root: Path, results: Path) -> list[str]:
    """Include blocks that differ from their results file."""
    doc = path.relative_to(root).as_posix()
    problems = []
    for m in INCLUDE.finditer(path.read_text()):
        source = results.parent / m.group(2)
        if not source.is_file():
            problems.append(f"{doc}: include of missing {m.group(2)}")
        elif m.group(4).strip() != include_body(source, m.group(3)):
            problems.append(f"{doc}: include of {m.group(2)} is out of date (run scripts/doc_sources.py --write)")
    return problems


def check_allowed(root: Path, numbers: dict[str, list[Number]]) -> list[str]:
    """An allow-list within its size, every entry still used, every target found in the config it names."""
    problems = [f"ALLOWED has {len(ALLOWED)} entries; at most {MAX_ALLOWED}"] if len(ALLOWED) > MAX_ALLOWED else []
    for doc, number, why in ALLOWED:
        if not any(n.source == "allowed" and n.text == number for n in numbers.get(doc, [])):
            problems.append(f"ALLOWED entry ({doc}, {number!r}) is not in that document")
        config = why.partition("target: ")[2]
        if config and number not in (root / config).read_text():
            problems.append(f"ALLOWED entry ({doc}, {number!r}): {config} states no such target")
    return problems


def all_numbers(root: Path = ROOT) -> dict[str, list[Number]]:
    """The numbers of every document, by its path relative to ``root``."""
    return {path.relative_to(root).as_posix(): find_numbers(path, root) for path in doc_files(root)}


def check(root: Path = ROOT, results: Path | None = None) -> list[str]:
    """Every problem in README.md and docs/ (``results``: the results folder to read, default ROOT/results)."""
    results = results or root / "results"
    numbers, cache = all_numbers(root), {}
    problems = check_allowed(root, numbers)
    for doc, found in numbers.items():
        problems += check_includes(root / doc, root, results)
        problems += [p for n in found if (p := check_number(n, results, cache))]
    return problems


def include_body(source: Path, fragment: str | None) -> str:
    """What an include block holds: the file, or with ``#table`` its first Markdown table."""
    text = source.read_text().strip()
    if not fragment:
        return text
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    stop = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:stop])


def write_includes(root: Path = ROOT) -> list[Path]:
    """Rewrite every include block from its results file; returns the documents changed."""
    changed = []
    for path in doc_files(root):
        text = path.read_text()

        def fill(m: re.Match) -> str:
            return f"{m.group(1)}{include_body(root / m.group(2), m.group(3))}\n{m.group(5)}"

        new = INCLUDE.sub(fill, text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the include blocks, then check")
    parser.add_argument("--results", type=Path, default=None, help="the results folder to read (default: results/)")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_includes():
            print(f"rewrote {path.relative_to(ROOT)}")
    problems = check(ROOT, args.results)
    print("\n".join(problems) or "every number in README.md and docs/ has a source")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
