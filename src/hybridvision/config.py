"""Typed configs: frozen dataclasses <-> dicts, YAML files and command-line flags.

Precedence everywhere: dataclass defaults < ``--config file.yaml`` < ``--key value`` flags.
Nested dataclasses are addressed with dots (``--optim.lr 1e-3``). A key that matches no field raises
``ConfigError`` naming the closest valid keys, so a typo never passes silently.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key or value that does not fit its dataclass."""


def suggest(name: str, choices: typing.Iterable[str]) -> str:
    """' Did you mean x?' for the closest names, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


# ---- Validation: every config's ``__post_init__`` checks its fields with these, so a bad value is a ConfigError
# whose one line names the key the user types, the value, and what would fit.


def check(ok: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``ok``; the message names the key, the value and the fix."""
    if not ok:
        raise ConfigError(message)


def at_least(config: object, low: float, *names: str, prefix: str = "") -> None:
    """Each named numeric field of ``config`` is >= ``low`` (``prefix`` + name is the key the user types)."""
    for name in names:
        value = getattr(config, name)
        check(value >= low, f"{prefix}{name} must be >= {low}, got {value}")


def in_unit(config: object, *names: str, prefix: str = "") -> None:
    """Each named field of ``config`` is a probability (in [0, 1])."""
    for name in names:
        value = getattr(config, name)
        check(0 <= value <= 1, f"{prefix}{name} must be in [0, 1], got {value}")


def one_of(key: str, value: Any, choices: Iterable[Any]) -> None:
    """``value`` is one of ``choices``; otherwise the message lists them (and the closest, for a typo)."""
    choices = tuple(choices)
    if value in choices:
        return
    near = suggest(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
    listed = ", ".join(str(c) if c != "" else "''" for c in choices)
    message = f"{key} must be one of {listed}, got {value!r}"
    raise ConfigError(f"{message}.{near}" if near else message)


_DEVICE = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")


def parse_device(text: str, key: str = "device", *, auto: bool = True) -> tuple[str, int | None]:
    """A device string -> (kind, index): "cpu" -> ("cpu", None), "cuda:1" -> ("cuda", 1), "auto" -> ("auto", None).

    The one reader of device strings (run configs, bench, evaluation and prediction); ``auto=False`` where
    the device must be named. Whether CUDA is present is the caller's question (``engine.distributed``).
    """
    match = _DEVICE.fullmatch(text) if isinstance(text, str) else None
    kinds = "auto, cpu, cuda or cuda:N" if auto else "cpu, cuda or cuda:N"
    check(match is not None and (auto or match[1] != "auto"), f"{key} must be {kinds}, got {text!r}")
    check(match[1] == "cuda" or match[2] is None, f"{key}: only cuda takes an index (cuda:N), got {text!r}")
    return match[1], None if match[2] is None else int(match[2])


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON/YAML-safe dict of a (nested) dataclass; tuples become lists."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Turn a parsed YAML/CLI value into the annotated field type (lists -> tuples, '1e-3' -> float)."""
    tp = _strip_optional(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value, prefix=f"{key}.")
    if (tp is dict or typing.get_origin(tp) is dict) and isinstance(value, str):
        value = read_yaml(value, f"--{key}") or {}  # --model_kwargs '{dims: [32, 64]}'
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping such as '{{name: value}}', got {value!r}")
    origin = typing.get_origin(tp)
    if origin is tuple or tp is tuple:
        args = typing.get_args(tp)
        item = args[0] if args else Any
        if isinstance(value, str):
            value = split_list(value, key, words=_strip_optional(item) is str)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v, item, key) for v in value)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):  # e.g. int | tuple[int, int]: take the first that fits
            try:
                return _coerce(value, arg, key)
            except (ConfigError, ValueError, TypeError):
                continue
        raise ConfigError(f"{key}: cannot read {value!r} as {tp}")
    if tp is bool:
        return _boolean(value, key)
    if tp in (int, float):
        return _number(value, tp, key)
    if tp is str:
        return str(value)
    return value


def _boolean(value: Any, key: str) -> bool:
    if isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    return bool(value)


def _number(value: Any, tp: type, key: str) -> int | float:
    """An int or a finite float from a YAML number or a flag's text ("-0.5", "9.99e-1", "+3", "1_000").

    Signs and exponents read as Python reads them; "inf" and "nan" are refused, since no setting means
    infinity or not-a-number (0 is the "no limit" of every budget and cap). A boolean is not a number here.
    """
    text = value.strip() if isinstance(value, str) else value
    try:
        if isinstance(value, bool) or not isinstance(text, (str, int, float)):
            raise TypeError
        number = float(text) if tp is float else _integer(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    return number


def _integer(text: str | int | float) -> int:
    if isinstance(text, float) and not text.is_integer():
        raise ValueError(text)
    return int(text)


_LIST_SEPARATORS = re.compile(r"[,\s]+")


def split_list(text: str, key: str, words: bool = False) -> list[Any]:
    """The items of a list written as one flag value: "0.5,-1", "0.5 -1" or YAML's "[0.5, -1]".

    Commas and spaces separate items; a minus sign always belongs to its number. A list of ``words`` written
    with neither may use dashes instead, as layouts are written ("CC-CCCT-CCTT-CTTT"); "T-shirt/top,Trouser"
    keeps its dashes.
    """
    text = text.strip()
    if text.startswith("["):
        value = read_yaml(text, f"--{key}")
        if not isinstance(value, list):
            raise ConfigError(f"--{key}: expected a list such as '[0.5, 1]', got {text!r}")
        return value
    if words and not _LIST_SEPARATORS.search(text):
        return [v for v in text.split("-") if v]
    return [v for v in _LIST_SEPARATORS.split(text) if v]


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build ``cls`` from a plain dict; unknown keys raise ConfigError with suggestions."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        key = unknown[0]
        raise ConfigError(f"unknown config key {prefix + key!r} for {cls.__name__}.{suggest(key, names)}")
    hints = _field_types(cls)
    return cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in data.items()})


def replace(config: T, **overrides: Any) -> T:
    """``dataclasses.replace`` with typo detection and type coercion; dotted keys reach nested configs."""
    return _replace(config, overrides, "")


def _replace(config: T, overrides: dict[str, Any], prefix: str) -> T:
    """``replace`` of a config nested at ``prefix`` ("optim."), so messages name the key the user typed."""
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[key] = value
    names = {f.name for f in dataclasses.fields(config)}
    hints = _field_types(type(config))
    for key in [*flat, *nested]:
        if key not in names:
            raise ConfigError(f"unknown option {prefix + key!r} for {type(config).__name__}.{suggest(key, names)}")
    values = {k: _coerce(v, hints[k], prefix + k) for k, v in flat.items()}
    for key, sub in nested.items():
        current = values.get(key, getattr(config, key))
        if isinstance(current, dict):  # a free-form mapping field (e.g. model kwargs): merge the keys
            values[key] = {**current, **sub}
        else:
            values[key] = _replace(current, sub, f"{prefix}{key}.")
    return dataclasses.replace(config, **values)


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict; a file that does not parse is one ConfigError line."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a directory; give a YAML or JSON file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    data = _read_json(text, str(path)) if path.suffix == ".json" else read_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def read_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` whose errors are one ConfigError line: where (``source``, line, column), what, the fix.

    ``source`` names where the text came from (a file, or the flag whose value it is). Tags that build Python
    objects (``!!python/object``) are refused: config values are plain numbers, strings, lists and mappings.
    """
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}, {_position(mark)}" if mark else source
        opened = ""
        if e.problem and e.context and e.context_mark:  # where the unclosed bracket or block began
            opened = f" ({e.context} from {_position(e.context_mark)})"
        if isinstance(e, yaml.constructor.ConstructorError):
            fix = "config values are plain numbers, strings, lists and mappings: remove the tag"
        else:
            fix = "check the brackets, quotes, colons and indentation there"
        raise ConfigError(f"{where}: {e.problem or e.context}{opened}; {fix}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not readable as YAML ({e}); check the file's text") from None


def _position(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _read_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{source}, line {e.lineno}, column {e.colno}: {e.msg}; check the JSON syntax there"
        ) from None


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 1}} -> {'optim.lr': 1}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def parse_overrides(tokens: list[str], cls: type | None = None) -> dict[str, str]:
    """``['--optim.lr', '1e-3', '--epochs=3']`` -> ``{'optim.lr': '1e-3', 'epochs': '3'}``.

    Every token must belong to a flag; ``split_flags`` also returns the words that do not.
    """
    positionals, out = split_flags(tokens, cls)
    if positionals:
        raise ConfigError(f"unexpected argument {positionals[0]!r}; options look like --key value or --key=value")
    return out


_BOOL_WORDS = ("1", "0", "true", "false", "yes", "no", "on", "off")


def split_flags(tokens: list[str], cls: type | None = None) -> tuple[list[str], dict[str, str]]:
    """(words that are not flags, {key: value}) of ``--key value``, ``--key=value`` and bare boolean flags.

    With the config class ``cls``, a boolean field takes the next word only when it reads as true/false, so a bare
    ``--compile`` may stand before a name; ``--no-key`` switches a boolean off. Without it, a bare flag followed
    by a word takes that word as its value. Dashes in keys read as underscores.
    """
    positionals: list[str] = []
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not tok.startswith("--"):
            positionals.append(tok)
            continue
        key, eq, value = tok[2:].partition("=")
        key = key.replace("-", "_")
        if eq:
            out[key] = value
            continue
        nxt = tokens[i] if i < len(tokens) else None
        flag_is_bool = cls is not None and _is_bool_field(cls, key)
        if key.startswith("no_") and _flag_or_end(nxt) and (cls is None or _is_bool_field(cls, key[3:])):
            out[key[3:]] = "false"
        elif _flag_or_end(nxt) or (flag_is_bool and nxt.lower() not in _BOOL_WORDS):
            out[key] = "true"  # a bare flag switches a boolean on
        else:
            out[key] = nxt
            i += 1
    return positionals, out


def _flag_or_end(token: str | None) -> bool:
    return token is None or token.startswith("--")


def _is_bool_field(cls: type, dotted: str) -> bool:
    """Whether ``dotted`` (e.g. ``ema.warmup``) names a boolean field of the (nested) config class ``cls``."""
    head, _, rest = dotted.partition(".")
    if not dataclasses.is_dataclass(cls) or head not in {f.name for f in dataclasses.fields(cls)}:
        return False
    tp = _strip_optional(_field_types(cls)[head])
    return _is_bool_field(tp, rest) if rest else tp is bool


def resolve(cls: type[T], config_file: str | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Defaults < config file < overrides."""
    config = cls()
    if config_file:
        config = replace(config, **flatten(load_file(config_file)))
    if overrides:
        config = replace(config, **overrides)
    return config


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The two flags every configurable command shares; other ``--key value`` pairs are parsed as overrides."""
    parser.add_argument("--config", help="YAML/JSON file with config values (overridden by --key value flags)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def describe_fields(cls: type, prefix: str = "") -> list[str]:
    """One line per (nested) field with its default and the comment written beside it, for --help epilogues."""
    lines = []
    notes = field_comments(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            lines += describe_fields(type(default), f"{prefix}{f.name}.")
        else:
            note = f"  {notes[f.name]}" if f.name in notes else ""
            lines.append(f"  --{prefix}{f.name} (default: {_show(default)}){note}")
    return lines


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "''"
    return repr(value)


def field_comments(cls: type) -> dict[str, str]:
    """The ``# comment`` written after each field of a dataclass (and its bases), read from the source."""
    import inspect

    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            name, colon, rest = line.strip().partition(":")
            if colon and name.isidentifier() and "  # " in rest:
                out[name] = rest.split("  # ", 1)[1].strip()
    return out
