"""Helpers shared by commands: console output and number formatting, and the one path every task command takes
from its words and flags to a config (``command_flags``, ``resolved``) and on to a run (``train_command``), a
run's evaluation (``eval_command``, ``save_results``) or its predictions (``predict_command``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..config import (
    ConfigError,
    add_config_args,
    describe_fields,
    dump_yaml,
    flatten,
    load_file,
    replace,
    resolve,
    split_flags,
)
from ..engine.config import RunConfig
from ..engine.resume import check_run_folder
from ..engine.rundir import RunDir
from ..fileio import check_writable

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


def add_subcommands(
    parser: argparse.ArgumentParser, dest: str, subcommands: dict[str, tuple[type, str]], examples: str
) -> None:
    """``<task> train | eval | ...``: a subcommand per entry of ``subcommands`` (name -> (config class, help)), each
    listing its config's keys; ``examples`` (the command module's docstring) closes ``--help``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = examples
    sub = parser.add_subparsers(dest=dest, metavar="{" + ",".join(subcommands) + "}", required=True)
    for name, (cls, help_text) in subcommands.items():
        add_typed_config(sub.add_parser(name, help=help_text, description=help_text), cls)


def resolve_run_config(cls: type, config_file: str | None, overrides: dict[str, Any]) -> Any:
    """Defaults < --config file < flags. ``--resume RUN`` starts from RUN/config.yaml instead of the defaults."""
    resume = overrides.get("resume", "")
    if resume and resume != "auto" and not config_file:  # a run resumes with its own saved settings
        saved = RunDir(resume).config_file
        if not saved.is_file():
            raise FileNotFoundError(f"--resume {resume}: {saved} does not exist; is it a run directory?")
        config_file = str(saved)
    return resolve(cls, config_file, overrides)


def command_flags(args: argparse.Namespace, cls: type) -> tuple[list[str], dict[str, str]]:
    """(words, ``--key value`` flags) after a command; ``--data DIR`` is short for ``--data.root DIR``, and
    ``--head fpn`` for ``--head.kind fpn`` (any nested config with a ``kind`` field).

    ``cls`` is the command's config class: a boolean key may stand bare (``--compile``) before a word.
    """
    words, flags = split_flags(args.overrides, cls)
    if "data" in flags:
        flags["data.root"] = flags.pop("data")
    for key in _kinded(cls) & flags.keys():
        flags[f"{key}.kind"] = flags.pop(key)
    return words, flags


def _kinded(cls: type) -> set[str]:
    """Fields of the config class ``cls`` that are nested configs with a ``kind`` field (``head``: UperNet/FPN)."""
    found = set()
    for f in fields(cls) if is_dataclass(cls) else ():
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if is_dataclass(default) and any(sub.name == "kind" for sub in fields(default)):
            found.add(f.name)
    return found


def no_words(words: list[str], command: str) -> None:
    """Refuse words after a command that takes ``--key value`` options only."""
    if words:
        raise ConfigError(f"unexpected argument {words[0]!r}; {command} takes --key value options only")


def resolved(args: argparse.Namespace, base: Any, flags: dict[str, str]) -> Any | None:
    """The command's config, or None once ``--dry-run`` has printed it (the command then stops).

    ``base`` < ``--config`` file < flags, where ``base`` is a config class (its defaults; ``--resume RUN``
    starts from RUN/config.yaml) or a config object (e.g. the settings a run was trained with).
    """
    if isinstance(base, type):
        cfg = resolve_run_config(base, args.config, flags)
    else:
        cfg = replace(base, **flatten(load_file(args.config))) if args.config else base
        cfg = replace(cfg, **flags)
    if args.dry_run:
        if isinstance(cfg, RunConfig):
            check_run_folder(cfg)  # a --run_name or --resume the run would refuse is refused here too
        print(dump_yaml(cfg), end="")
        return None
    return cfg


def train_command(
    args: argparse.Namespace, cls: type, command: str, train: Callable[[Any], Any], describe: Callable[[dict], str]
) -> int:
    """resolve -> dry-run -> train -> one line: the body of ``train``, ``seg train`` and ``diffusion train``.

    ``cls`` is the task's config class and ``train`` its training function; ``describe(summary)`` words the
    finished run's result ("" prints nothing, e.g. when no evaluation was reached).
    """
    words, flags = command_flags(args, cls)
    no_words(words, command)
    cfg = resolved(args, cls, flags)
    if cfg is None:
        return 0
    result = train(cfg)
    line = describe(result.summary) if result.is_main else ""
    if line:
        console.print(f"{result.run_dir}: {line}")
    return 0


def score_line(summary: dict, key: str, label: str) -> str:
    """ "top-1 71.20%, EMA 72.05%" from a run's summary ("" when the run never reached an evaluation)."""
    if key not in summary:
        return ""
    ema = f", EMA {summary['ema_' + key]:.2f}%" if f"ema_{key}" in summary else ""
    return f"{label} {summary[key]:.2f}%{ema}"


def training_facts(summary: dict) -> str:
    """The end of every task's result line: how long the run trained and how fast."""
    return f"after {summary['epochs']} epochs, {summary['train_s']:.0f} s training, {summary['train_img_s']:.0f} img/s"


def eval_command(
    args: argparse.Namespace, cls: type, command: str, example: str, defaults: Callable[[Path], Any]
) -> tuple[Path, Any | None]:
    """The run ``<task> eval RUN`` reads (its one word) and the evaluation config: ``defaults(run)`` (the run's own
    data) < ``--config`` file < flags; None as the config once ``--dry-run`` has printed it. An ``--out`` file that
    cannot be written is refused here, before the work."""
    words, flags = command_flags(args, cls)
    if len(words) != 1:
        raise ConfigError(f"{command} takes one run directory, e.g. hybridvision {command} {example}")
    run_dir = existing_run(words[0], example)
    cfg = resolved(args, defaults(run_dir), flags)
    if getattr(cfg, "out", ""):  # before the evaluation, not after it
        check_writable(cfg.out, "--out")
    return run_dir, cfg


def predict_command(args: argparse.Namespace, cls: type, command: str, task: str) -> tuple[list[str], str, Any]:
    """(the images named, the run ``--run`` names, the config or None once ``--dry-run`` printed it) of
    ``<task> predict``; a missing ``--run`` is one line saying what to pass."""
    words, flags = command_flags(args, cls)
    run_dir = flags.pop("run", "")
    if not run_dir:
        raise ConfigError(f"{command} needs --run RUN: the {task} run whose weights predict")
    return words, run_dir, resolved(args, cls, flags)


def save_results(results: dict, out: str | Path, run_dir: Path, split: str, **facts: Any) -> None:
    """An evaluation's JSON: the run, the split, ``facts`` (how it inferred), the environment and the numbers."""
    from ..env import environment
    from ..fileio import save_json

    meta = {"run": str(run_dir), "split": split, **facts, "environment": environment()}
    save_json({**meta, "results": results}, out)


def existing_run(path: str, example: str) -> Path:
    """The run directory a command was given, or a FileNotFoundError that shows what to pass."""
    run_dir = Path(path)
    if not run_dir.exists():
        raise FileNotFoundError(f"{run_dir} does not exist; pass a run directory such as {example}")
    return run_dir
