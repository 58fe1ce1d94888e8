"""Helpers shared by commands: console output and number formatting."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..config import (
    ConfigError,
    add_config_args,
    describe_fields,
    flatten,
    load_file,
    parse_overrides,
    replace,
    resolve,
    split_flags,
)

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
        saved = Path(resume) / "config.yaml"
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


def words_and_flags(args: argparse.Namespace, cls: type) -> tuple[list[str], dict[str, str]]:
    """A task command's bare words (runs, images) and its ``--key value`` overrides of ``cls``."""
    words, flags = split_flags(args.overrides, cls)
    return words, config_overrides([f"--{k}={v}" for k, v in flags.items()])


def resolve_over(base: object, config_file: str | None, flags: dict[str, str]) -> object:
    """``base`` (defaults, or a run's own settings) < --config file < flags."""
    if config_file:
        base = replace(base, **flatten(load_file(config_file)))
    return replace(base, **flags)


def run_dir_word(words: list[str], command: str, example: str) -> Path:
    """The one run directory a command (``seg eval``, ``det eval``) takes as its word; a clear error otherwise."""
    if len(words) != 1:
        raise ConfigError(f"{command} takes one run directory, e.g. hybridvision {command} {example}")
    run_dir = Path(words[0])
    if not run_dir.exists():
        raise FileNotFoundError(f"{run_dir} does not exist; pass a run directory such as {example}")
    return run_dir
