"""What every experiment's markdown and figures are made of: numbers formatted for tables, tables,
headline rows for the results summary, and a matplotlib figure written to a file."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MISSING = "–"
"""A table cell without a value (None, NaN or infinite)."""
KINDS = ("id", "ood")
"""The two kinds of target view: in-distribution (held-out ID) and out-of-distribution cameras."""


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


def markdown_row(cells: Iterable[Any]) -> str:
    """One markdown table row: ``| a | b |``."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown_header(titles: str | Iterable[str]) -> list[str]:
    """A markdown table's header row and its ``|---|`` rule; ``titles`` a list or one string of
    titles separated by `` | ``."""
    titles = titles.split(" | ") if isinstance(titles, str) else list(titles)
    return [markdown_row(titles), "|" + "---|" * len(titles)]


def table(titles: str | Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """A markdown table's lines: :func:`markdown_header` then one :func:`markdown_row` per row."""
    return [*markdown_header(titles), *(markdown_row(row) for row in rows)]


def headline_row(
    label: str, psnr: Any, object_psnr: Any, trivial: Mapping[str, Any], note: str | None = None
) -> dict[str, Any]:
    """A row of the results summary's headline table: a model's PSNRs beside the trivial
    predictors' on the same views (``trivial``: ``mean_train_image`` and ``mean_context_colour``
    PSNR), and an optional note."""
    row = {"label": label, "psnr": psnr, "object_psnr": object_psnr}
    row["baseline_mean_train_psnr"] = trivial["mean_train_image"]
    row["baseline_mean_context_psnr"] = trivial["mean_context_colour"]
    return row if note is None else {**row, "note": note}


@contextmanager
def figure_file(
    path: Path,
    columns: int,
    size: tuple[float, float],
    rect: tuple[float, float, float, float] = (0, 0, 1, 1),
) -> Iterator[tuple[Any, list]]:
    """``(figure, axes)`` of a matplotlib figure with ``columns`` panels of ``size`` inches in all,
    laid out tightly in ``rect`` and written to ``path`` (120 dpi) when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=size)
    try:
        yield figure, list(axes) if columns > 1 else [axes]
        figure.tight_layout(rect=rect)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)
    finally:
        plt.close(figure)
