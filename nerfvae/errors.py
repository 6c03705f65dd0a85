"""Error types for problems with the user's input (files, configs, checkpoints), and the two
checks every layer shares: reading a JSON file and checking a config dataclass's field types.

The CLI prints these errors as one clear line without a traceback; anything else is a bug and keeps
its traceback. Every layer may import this module.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
from pathlib import Path
from typing import Any


class NerfVAEError(ValueError):
    """A problem with what the user gave us; the message names the file or field at fault.

    The message is kept to one line (newlines from quoted file contents become spaces)."""

    def __init__(self, *args: Any) -> None:
        if args and isinstance(args[0], str):
            args = (" ".join(args[0].split("\n")), *args[1:])
        super().__init__(*args)


class DataError(NerfVAEError):
    """A dataset file is missing, truncated, of the wrong shape/dtype/version, or holds NaN/inf."""


class ConfigError(NerfVAEError):
    """A config file or override is invalid or does not match a run directory."""


class CheckpointError(NerfVAEError):
    """A checkpoint is missing, corrupt or does not match the model config."""


MAX_JSON_BYTES = 256 << 20
"""Largest JSON file nerfvae reads (dataset.json, transforms, configs, checkpoint records)."""


def read_json_file(path: str | Path, error: type[NerfVAEError] = DataError) -> Any:
    """The parsed contents of the JSON file ``path``; any problem (missing, a directory or a
    symlink loop in its place, an invalid name, too large, not UTF-8, invalid or too deeply
    nested JSON) raises ``error`` naming the file. Values are not checked: callers check fields."""
    path = Path(path)
    try:
        if not path.is_file():
            problem = "is missing" if not path.exists() else "is not a regular file"
            raise error(f"{path}: file {problem}")
        if path.stat().st_size > MAX_JSON_BYTES:
            raise error(f"{path}: file is larger than {MAX_JSON_BYTES >> 20} MiB; not a JSON file")
        # utf-8-sig: Windows editors and PowerShell write a byte-order mark before the JSON
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except NerfVAEError:
        raise
    except RecursionError:
        raise error(f"{path}: cannot read JSON (nested too deeply)") from None
    except UnicodeDecodeError as problem:
        raise error(f"{path}: cannot read JSON (not UTF-8 text: {problem.reason})") from None
    except (OSError, ValueError) as problem:  # JSONDecodeError, NUL byte or overlong name, ...
        raise error(f"{path}: cannot read JSON ({problem})") from None


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for quoting a bad value in one line."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<nested {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` (int, float, bool, str, None, Literal, unions,
    tuples); a float must be finite, an int may not be a bool, tuples are checked element-wise."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if hint is type(None) or hint is None:
        return value is None
    if origin is typing.Literal:
        return any(value == option and type(value) is type(option) for option in hint.__args__)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # and fits an int64, as every integer setting must
        return (
            isinstance(value, numbers.Integral)
            and not isinstance(value, bool)
            and -(2**63) <= value < 2**63
        )
    if hint is float:
        return (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(float(value))
        )
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        arguments = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return all(_matches(item, arguments[0]) for item in value)
        return len(value) == len(arguments) and all(map(_matches, value, arguments))
    if origin in (dict, list) or hint in (dict, list):
        return isinstance(value, origin or hint)
    return True  # a type this check does not know is left to the dataclass's own check()


def _describe_hint(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(option) for option in hint.__args__)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_hint(arm) for arm in typing.get_args(hint))
    names = {
        int: "an integer (64-bit)",
        float: "a finite number",
        bool: "true or false",
        str: "a string",
    }
    if hint in names:
        return names[hint]
    if hint is type(None):
        return "null"
    if origin is tuple:
        arguments = typing.get_args(hint)
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return f"a list of {_describe_hint(arguments[0]).removeprefix('a ')}s"
        return f"a list of {len(arguments)} values ({', '.join(map(_describe_hint, arguments))})"
    return str(hint)


_HINTS: dict[type, dict[str, Any]] = {}


def field_name(where: str, name: str) -> str:
    """``where.name``, or ``name`` when ``where`` is empty (dotted config field names)."""
    return f"{where}.{name}" if where else name


def check_config_fields(config: Any, where: str = "") -> None:
    """Raise ConfigError naming the field (``where.field``) if a field of the config dataclass
    ``config`` does not have its annotated type (a string for an int, NaN or inf for a float, a
    value outside a Literal's options, ...). Nested config dataclasses are checked by their own
    ``check``; this is the type half of every config's ``check``, which adds the ranges."""
    cls = type(config)
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    hints = _HINTS[cls]
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value):
            continue
        hint = hints[item.name]
        if not _matches(value, hint):
            raise ConfigError(
                f"{field_name(where, item.name)} must be {_describe_hint(hint)}, got {short_repr(value)}"
            )


def check_at_least(value: int, option: str, minimum: int, what: str) -> None:
    """ConfigError ``OPTION VALUE: need at least WHAT`` when a command's count ``value`` is below
    ``minimum`` (e.g. ``--samples 1: need at least 2 posterior samples for a std``)."""
    if value < minimum:
        raise ConfigError(f"{option} {value}: need at least {what}")


def check_range(ok: bool, where: str, name: str, requirement: str, value: Any) -> None:
    """Raise ConfigError ``where.name must be <requirement>, got <value>`` unless ``ok``."""
    if not ok:
        raise ConfigError(
            f"{field_name(where, name)} must be {requirement}, got {short_repr(value)}"
        )


def check_colour(
    value: Any, what: str, error: type[NerfVAEError] = DataError
) -> tuple[float, float, float]:
    """A colour ``[r, g, b]`` of finite numbers in [0, 1] as a tuple; ``error`` naming ``what``
    otherwise (DataError for dataset files, ConfigError for config values)."""
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 3
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
            for v in value
        )
    ):
        raise error(f"{what} must be [r, g, b] with values in [0, 1], got {short_repr(value)}")
    return float(value[0]), float(value[1]), float(value[2])


def check_bounds(config: Any, where: str, bounds: dict[str, tuple[float, float]]) -> None:
    """Raise ConfigError naming the field unless each field ``name`` of ``config`` (or each item
    of a tuple field) lies in ``bounds[name] = (low, high)``: sizes a model can be built with."""
    for name, (low, high) in bounds.items():
        value = getattr(config, name)
        items = value if isinstance(value, tuple) else (value,)
        ok = all(low <= item <= high for item in items)
        check_range(ok, where, name, f"in {low:g}..{high:g}", value)
