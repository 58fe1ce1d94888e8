#!/usr/bin/env python
"""results/README.md, generated from the files: what each entry holds, the command, commit, date and machine.

An entry is a file or folder directly under a task folder (``results/<task>/``). Its command is the usage line
of the script under benchmarks/ whose opening lines name it (``results/...`` paths there may use ``{a,b}``,
``*`` and ``<placeholder>`` for one path segment); a run folder no script names was made by the task's training
command with its own resolved ``config.yaml``. Commit, date and machine come from the environment block of its
main file (``summary.json``, ``table.json``, the JSON itself, the first JSON inside, or a CSV's ``env_`` columns);
a ``README.md`` inside an entry (a sidecar written with it) describes it. Whatever is not recorded is said so.

    python scripts/results_index.py            # rewrite results/README.md
    python scripts/results_index.py --check    # exit 1 if it differs from what the files give
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TASKS = {  # task folder -> what it holds, and the command that trains one of its runs
    "classify": ("Classification recipes on Fashion-MNIST.", "hybridvision train"),
    "seg": ("Segmentation runs (UperNet on Fashion-MNIST scenes) and their analyses.", "hybridvision seg train"),
    "det": (
        "Detection and instance segmentation runs (Mask R-CNN on Fashion-MNIST scenes as COCO), with the weights each"
        " test score was made with.",
        "hybridvision det train",
    ),
    "diffusion": (
        "Class-conditional and text-to-image diffusion runs, evaluations and analyses.",
        "hybridvision diffusion train",
    ),
    "deploy": ("Exported models against fp32: int8 accuracy on held-out images.", "hybridvision export"),
    "study": ("Design studies: tables, plots and every run's record.", "hybridvision study"),
    "speed": ("Speed measurements: inference and training throughput, latency, profiles.", "hybridvision bench"),
}
PATH = re.compile(r"results/[\w\-./<>{},*]+")
USAGE = re.compile(r"^\s*#?\s*((?:python |bash )?benchmarks/\S+\.(?:py|sh)\b.*?)\s*(?:#.*)?$")


@dataclass(frozen=True)
class Producer:
    """A script under benchmarks/ and the results it names in its opening lines."""

    script: str  # path relative to the repository
    outputs: tuple[tuple[str, str], ...]  # (fnmatch pattern of a results path it names, the usage line that makes it)
    usages: tuple[str, ...]  # every usage line of its opening lines

    def command_for(self, path: str) -> str | None:
        """The usage line that makes ``path`` (a folder ends in /), or None if this script does not name it; of
        several, the one that names the entry's stem (a recipe's name, say)."""
        commands = [cmd for pattern, cmd in self.outputs if fnmatch.fnmatchcase(path, pattern)]
        stem = Path(path.rstrip("/")).stem
        return next((cmd for cmd in self.usages if stem in cmd), commands[0]) if commands else None


def expand(path: str) -> list[str]:
    """``results/a_{x,y}/`` -> the glob patterns ``results/a_x/``, ``results/a_y/`` (placeholders become ``*``)."""
    path = path.rstrip(".,;:)`'\"")
    m = re.search(r"\{([^{}]*,[^{}]*)\}", path)
    if m:
        return [p for alt in m.group(1).split(",") for p in expand(path[: m.start()] + alt + path[m.end() :])]
    return [re.sub(r"<[^>/]*>|\{[^}/]*\}", "*", path)]


def producers(root: Path = ROOT) -> list[Producer]:
    """Every script under benchmarks/ with the results paths its opening lines name, each with its usage line."""
    out = []
    for path in sorted((root / "benchmarks").rglob("*")):
        if path.suffix in (".py", ".sh"):
            rel = path.relative_to(root).as_posix()
            outputs, usages = _outputs(_header(path), rel)
            if outputs:
                out.append(Producer(rel, tuple(outputs), tuple(usages)))
    return out


def _header(path: Path) -> list[str]:
    """A script's opening comment block (shell) or module docstring (Python)."""
    lines = path.read_text().split("\n")
    if path.suffix == ".sh":
        return [line for line in lines[1:] if line.startswith("#")][:40]
    end = next((i for i, line in enumerate(lines[1:], 1) if '"""' in line), 0)
    return lines[: end + 1]


def _outputs(header: list[str], script: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(pattern, usage line) per results path the header names; the usage line on the same line, else the first."""
    usages: list[tuple[int, str]] = []
    for i, line in enumerate(header):
        if (m := USAGE.match(line)) and script in m.group(1):
            usages.append((i, m.group(1).rstrip(" \\")))
        elif usages and usages[-1][0] == i - 1 and header[i - 1].rstrip().endswith("\\"):
            usages[-1] = (i, usages[-1][1] + " " + line.strip(" #").split("  #")[0].rstrip(" \\"))
    first = usages[0][1] if usages else script
    out = [(pattern, cmd) for _, cmd in usages for found in PATH.findall(cmd) for pattern in expand(found)]
    for i, line in enumerate(header):
        own = next((cmd for j, cmd in usages if j == i), first)
        out += [(pattern, own) for found in PATH.findall(line) for pattern in expand(found)]
    return out, [cmd for _, cmd in usages]


def made_by(path: str, scripts: list[Producer]) -> tuple[Producer, str] | None:
    """The script whose opening lines name ``path`` (folders end in /) and its usage line, if any."""
    for p in scripts:
        if (command := p.command_for(path)) is not None:
            return p, command
    return None


def environment(entry: Path) -> dict[str, Any] | None:
    """The environment block of an entry's main file, or None."""
    candidates = [entry] if entry.is_file() else [entry / "summary.json", entry / "table.json"]
    if entry.is_dir():
        candidates += sorted(entry.rglob("*.json")) + sorted(entry.rglob("*.csv"))
    for path in candidates:
        env = _file_environment(path)
        if env:
            return env
    return None


def _file_environment(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return data.get("environment") if isinstance(data, dict) else None
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            row = next(csv.DictReader(f), {})
        env = {k.removeprefix("env_"): v for k, v in row.items() if k.startswith("env_")}
        return env or None
    return None


def _made(env: dict[str, Any] | None) -> str:
    if not env:
        return "no environment block (nothing records its commit, date or machine)"
    machine = env.get("cpu") or env.get("device") or "?"
    if env.get("cpu_capability"):
        machine += f" ({env['cpu_capability']}"
        threads = env.get("threads")
        machine += f", {threads} thread{'s' if str(threads) != '1' else ''})" if threads else ")"
    if env.get("device") and env.get("device") != env.get("cpu") and env.get("gpu_driver"):
        machine += f", {env['device']}"
    return f"commit {env.get('git_sha', '?')}, {str(env.get('timestamp', '?'))[:10]}, {machine}"


def describe(entry: Path, task: str, scripts: list[Producer], root: Path) -> list[str]:
    """The index lines of one entry."""
    name = entry.name + ("/" if entry.is_dir() else "")
    rel = entry.relative_to(root).as_posix() + ("/" if entry.is_dir() else "")
    producer = made_by(rel, scripts)
    lines = [f"### `{name}`", "", f"- holds: {_holds(entry)}"]
    if producer:
        lines.append(f"- made by: `{producer[1]}` ({producer[0].script})")
    else:
        lines.append(f"- made by: {_made_by_itself(entry, task, rel)}")
    for path in sorted(entry.rglob("*")) if entry.is_dir() else []:
        other = made_by(path.relative_to(root).as_posix(), scripts)
        if other and (not producer or other[0] != producer[0]):
            lines.append(f"- `{path.relative_to(entry).as_posix()}` made by: `{other[1]}` ({other[0].script})")
    lines.append(f"- made: {_made(environment(entry))}")
    return lines + [""]


def _made_by_itself(entry: Path, task: str, rel: str) -> str:
    """What an entry no script names records of its own making."""
    train = TASKS[task][1] if task != "study" else "hybridvision train"
    if entry.is_dir() and (entry / "config.yaml").is_file():
        return f"`{train} --config {rel}config.yaml` (the run's resolved config)"
    if entry.is_dir() and (entry / "table.json").is_file():
        return "`hybridvision study` with the study config recorded in its `table.json`"
    nested = sorted(p.parent.name for p in entry.glob("*/config.yaml"))
    if nested:
        return f"`{train} --config {rel}RUN/config.yaml` for each run ({', '.join(nested)}: their resolved configs)"
    if entry.suffix == ".json" and (config := _bench_config(entry)):
        models, size = " ".join(config.get("models", [])), config.get("img_size")
        return (
            f"`hybridvision bench {models}{f' --img-size {size}' if size else ''}` (its `config` records every option)"
        )
    return "not recorded"


def _bench_config(path: Path) -> dict[str, Any] | None:
    data = json.loads(path.read_text())
    if isinstance(data, dict) and str(data.get("schema", "")).startswith("hybridvision.bench"):
        return data.get("config", {})
    return None


def _holds(entry: Path) -> str:
    if entry.is_file():
        return _kind(entry)
    sidecar = entry / "README.md"
    title = sidecar.read_text().split("\n")[0].lstrip("# ").strip() if sidecar.is_file() else ""
    files = sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file())
    runs = sorted({f.split("/")[-2] for f in files if f.count("/") in (1, 2) and f.endswith("/summary.json")})
    top = sorted({f.split("/")[0] for f in files} - set(runs) - {"runs"})
    parts = [title] if title else []
    if (entry / "summary.json").is_file():
        parts.append(_run_kind(entry / "summary.json"))
    if runs:
        parts.append(f"{len(runs)} run records ({', '.join(runs[:4])}{', ...' if len(runs) > 4 else ''})")
    parts.append("files: " + ", ".join(f"`{f}`" for f in top))
    return "; ".join(parts)


def _run_kind(summary: Path) -> str:
    data = json.loads(summary.read_text())
    model = data.get("model", "?")
    return f"a finished run of `{model}` (summary with environment, resolved config, logs)"


def _kind(path: Path) -> str:
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict) and str(data.get("schema", "")).startswith("hybridvision.bench"):
            models = ", ".join(f"`{m}`" for m in data.get("config", {}).get("models", []))
            return f"`hybridvision bench` rows with their environment ({models})"
        keys = [k for k in data if k != "environment"] if isinstance(data, dict) else []
        return f"JSON record ({', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''})"
    if path.suffix == ".csv":
        return "CSV of `hybridvision bench` rows, the environment in every row"
    if path.suffix == ".md":
        return "Markdown table written from the files beside it"
    if path.suffix == ".png":
        return "figure drawn from the files beside it"
    return path.suffix.lstrip(".") + " file"


def index(root: Path = ROOT) -> str:
    """The text of results/README.md for the files under ``root/results``."""
    results, scripts = root / "results", producers(root)
    lines = [
        "# Results",
        "",
        "Generated by `python scripts/results_index.py` from the files below; do not edit (a test compares the two).",
        "One folder per task; each entry says what it holds, the command that made it (a producer under",
        "`benchmarks/` names its files in its opening lines), and the commit, date and machine its environment block",
        "records. Numbers in `README.md` and `docs/` cite these files (`scripts/doc_sources.py`).",
        "",
    ]
    for task in sorted(p.name for p in results.iterdir() if p.is_dir()):
        about = TASKS.get(task, ("", ""))[0]
        lines += [f"## {task}/", "", about, ""] if about else [f"## {task}/", ""]
        for entry in sorted((results / task).iterdir()):
            lines += describe(entry, task, scripts, root)
    return "\n".join(lines).rstrip() + "\n"


# ---- Paths that cite results/


CITING = (
    "README.md",
    "docs/**/*.md",
    "configs/**/*.yaml",
    "results/study/**/table.json",
    "results/study/**/config.yaml",
)


def cited_paths(root: Path = ROOT) -> dict[str, list[str]]:
    """Every ``results/...`` path cited in the README, docs, configs and study records, by citing file."""
    out: dict[str, list[str]] = {}
    for pattern in CITING:
        for path in sorted(root.glob(pattern)):
            found = [m for m in PATH.findall(path.read_text()) if m.rstrip("/.,;:)`'\"") != "results"]
            if found:
                out[path.relative_to(root).as_posix()] = found
    return out


def dangling(root: Path = ROOT) -> list[str]:
    """Cited paths that match no file or folder (one line each, naming the citing file)."""
    problems = []
    for citing, paths in cited_paths(root).items():
        for cited in paths:
            if not all(list(root.glob(p.rstrip("/"))) for p in expand(cited)):  # every {a,b}, some *
                problems.append(f"{citing}: {cited} does not exist")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that results/README.md is up to date")
    args = parser.parse_args(argv)
    target, text = ROOT / "results" / "README.md", index(ROOT)
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target} is out of date; run scripts/results_index.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
