"""Helpers shared by commands: console output and number formatting."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()


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
