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
import types
import typing
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
        value = yaml.safe_load(value) or {}  # --model_kwargs '{dims: [32, 64]}'
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping such as '{{name: value}}', got {value!r}")
    origin = typing.get_origin(tp)
    if origin is tuple or tp is tuple:
        if isinstance(value, str):  # "a,b", "a b" and (for layouts) "CC-CCCT-CTTT" all split
            value = [v for v in value.replace(",", " ").replace("-", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(v, item, key) for v in value)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):  # e.g. int | tuple[int, int]: take the first that fits
            try:
                return _coerce(value, arg, key)
            except (ConfigError, ValueError, TypeError):
                continue
        raise ConfigError(f"{key}: cannot read {value!r} as {tp}")
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return bool(value)
    if tp in (int, float, str):
        try:
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}") from e
    return value


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
            raise ConfigError(f"unknown option {key!r} for {type(config).__name__}.{suggest(key, names)}")
    values = {k: _coerce(v, hints[k], k) for k, v in flat.items()}
    for key, sub in nested.items():
        current = values.get(key, getattr(config, key))
        if isinstance(current, dict):  # a free-form mapping field (e.g. model kwargs): merge the keys
            values[key] = {**current, **sub}
        else:
            values[key] = replace(current, **sub)
    return dataclasses.replace(config, **values)


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


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
