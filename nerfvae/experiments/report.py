"""What every experiment's report is made of: numbers formatted for markdown tables, table rows,
and the ``NAME.json`` / ``NAME.png`` / ``NAME.md`` files written under the output directory."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

MISSING = "–"
"""A table cell without a value (None, NaN or infinite)."""


# --------------------------------------------------------------------------- numbers


def finite_or_none(value: Any) -> float | None:
    """A number as a float, or None for a missing, non-numeric, NaN or infinite value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def difference(first: Any, second: Any) -> float | None:
    """``first - second`` where both are finite numbers, else None."""
    a, b = finite_or_none(first), finite_or_none(second)
    return None if a is None or b is None else a - b


def format_number(value: Any, digits: int = 2) -> str:
    """A table cell: a float with ``digits`` decimals, an int as it is, a string unchanged and
    ``–`` for anything else (None, NaN, infinite)."""
    number = finite_or_none(value)
    if number is None:
        return MISSING if not isinstance(value, str) else value
    if isinstance(value, int):
        return str(value)
    return f"{number:.{digits}f}"


def format_seconds(value: Any) -> str:
    """A time in seconds to three significant digits (``–`` for None / NaN)."""
    number = finite_or_none(value)
    return MISSING if number is None else f"{number:.3g}"


def format_percent(value: Any) -> str:
    """A fraction as a whole percentage (``0.25`` -> ``25%``; ``–`` for None / NaN)."""
    number = finite_or_none(value)
    return MISSING if number is None else f"{number:.0%}"


def scenes_text(count: int) -> str:
    """``"1 scene"``, ``"20 scenes"``."""
    return f"{count} scene" if count == 1 else f"{count} scenes"


def plot_value(value: float | None) -> float:
    """A value for a figure: None (no value) becomes NaN, which matplotlib leaves out."""
    return float("nan") if value is None else value


# --------------------------------------------------------------------------- markdown tables


def markdown_row(cells: Iterable[Any]) -> str:
    """One markdown table row: ``| a | b |``."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown_header(titles: Sequence[str]) -> list[str]:
    """A markdown table's header row and its ``|---|`` rule."""
    return [markdown_row(titles), "|" + "---|" * len(titles)]


# --------------------------------------------------------------------------- files


def write_json(data: Mapping[str, Any], path: Path) -> None:
    """Strict JSON (NaN written as null), indented, with a final newline; makes the folder."""
    from nerfvae.evaluation.report import nan_to_null

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nan_to_null(dict(data)), indent=2, allow_nan=False) + "\n")


def write_report(
    out_dir: Path,
    name: str,
    result: Mapping[str, Any],
    markdown: str,
    figure: Callable[[Path], Any] | None = None,
) -> tuple[Path, ...]:
    """Write an experiment's ``NAME.json`` (:func:`write_json`), ``NAME.png`` (drawn by ``figure``
    given its path; none without one) and ``NAME.md`` (``markdown``) into ``out_dir``.

    Returns:
        The paths written, in that order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.json"]
    write_json(result, paths[0])
    if figure is not None:
        paths.append(out_dir / f"{name}.png")
        figure(paths[-1])
    paths.append(out_dir / f"{name}.md")
    paths[-1].write_text(markdown)
    return tuple(paths)


def print_written(paths: Iterable[Path], markdown: str | None = None) -> None:
    """What an experiment prints at the end: its markdown (when given), then ``wrote PATHS``."""
    if markdown is not None:
        print(markdown)
    print("wrote " + ", ".join(str(path) for path in paths))
