"""Helpers shared by commands: console output and number formatting."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

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
