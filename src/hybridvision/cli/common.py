"""Helpers shared by commands: console output and number formatting."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from ..config import add_config_args, describe_fields, parse_overrides, resolve
from ..engine.rundir import RunDir

# Wide enough that tables never truncate names when output goes to a file or CI log.
console = Console(width=None if sys.stdout.isatty() else 200)


def millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def giga(n: int) -> str:
    return f"{n / 1e9:.3f}G"


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*row)
    return t


def add_typed_config(parser: argparse.ArgumentParser, cls: type) -> None:
    """``--config``/``--dry-run``, and every key of the config dataclass ``cls`` listed in ``--help``."""
    add_config_args(parser)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "config keys (set with --key value):\n" + "\n".join(describe_fields(cls))


def resolve_run_config(cls: type, config_file: str | None, overrides: dict[str, Any]) -> Any:
    """Defaults < --config file < flags. ``--resume RUN`` starts from RUN/config.yaml instead of the defaults."""
    resume = overrides.get("resume", "")
    if resume and resume != "auto" and not config_file:  # a run resumes with its own saved settings
        saved = RunDir(resume).config_file
        if not saved.is_file():
            raise FileNotFoundError(f"--resume {resume}: {saved} does not exist; is it a run directory?")
        config_file = str(saved)
    return resolve(cls, config_file, overrides)


def config_overrides(tokens: list[str]) -> dict[str, str]:
    """``--key value`` flags as config overrides; ``--data DIR`` is short for ``--data.root DIR``."""
    overrides = parse_overrides(tokens)
    if "data" in overrides:
        overrides["data.root"] = overrides.pop("data")
    return overrides
