"""What every markdown report is made of (`nerfvae eval`, `baseline nerf`, training curves, the
experiments): numbers formatted for table cells, tables, pages, and the words for the views an
evaluation scored."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

MISSING = "–"
"""A table cell without a value (None, NaN or infinite)."""
KINDS = ("id", "ood")
"""The two kinds of target view: in-distribution (held-out ID) and out-of-distribution cameras."""
TRIVIAL_PREDICTORS = {
    "mean_train_image": "baseline_mean_train",
    "mean_context_colour": "baseline_mean_context",
}
"""The trivial predictors every evaluation scores beside the models -> their keys' prefix there."""
TRIVIAL_SENTENCE = (
    "Trivial predictors: the mean training image and a constant image of the context views' mean "
    "colour."
)


def finite_or_none(value: Any) -> float | None:
    """A number as a float, or None for a missing, non-numeric, NaN or infinite value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def finite_values(entry: Mapping[str, Any] | None, keys: Iterable[str], prefix: str = "") -> dict:
    """``{key: entry[PREFIXkey]}`` as :func:`finite_or_none` numbers (``entry`` None: all None)."""
    return {key: finite_or_none((entry or {}).get(prefix + key)) for key in keys}


def at(data: Any, *keys: Any) -> Any:
    """``data[key][...]`` through nested mappings: None where a level is missing or None."""
    for key in keys:
        data = (data or {}).get(key)
    return data


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
    return str(value) if isinstance(value, int) else f"{number:.{digits}f}"


def format_seconds(value: Any) -> str:
    """A time in seconds to three significant digits (``–`` for None / NaN)."""
    number = finite_or_none(value)
    return MISSING if number is None else f"{number:.3g}"


def format_percent(value: Any) -> str:
    """A fraction as a whole percentage (``0.25`` -> ``25%``; ``–`` for None / NaN). A fraction
    that is not 0 or 1 never reads as ``0%`` or ``100%``: it gets one decimal (``0.003`` ->
    ``0.3%``), or ``<0.1%`` / ``>99.9%`` beyond that (3 empty rooms in 1,000 are not none)."""
    number = finite_or_none(value)
    if number is None:
        return MISSING
    text = f"{number:.0%}"
    if (text == "0%" and number > 0) or (text == "100%" and number < 1):
        text = f"{number:.1%}"
        if text == "0.0%":
            text = "<0.1%"
        elif text == "100.0%":
            text = ">99.9%"
    return text


def scenes_text(count: int) -> str:
    """``"1 scene"``, ``"20 scenes"``."""
    return f"{count} scene" if count == 1 else f"{count} scenes"


def scenes_sentence(result: Mapping[str, Any], context: str = "the first K ID views") -> str:
    """What an experiment scored, in the words that open its markdown: the first N scenes of
    ``result``'s dataset and split, the ``context`` and the ID and OOD target views."""
    lists, (height, width) = result["view_lists"], result["image_size"]
    return (
        f"On the first {scenes_text(result['num_scenes'])} of `{result['dataset']}` "
        f"({result['split']}, {height}×{width}): context = {context}; targets = ID views "
        f"{lists['id_targets']} and OOD views {lists['ood_targets']} of every scene."
    )


def markdown_row(cells: Iterable[Any]) -> str:
    """One markdown table row: ``| a | b |``."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def table(titles: str | Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """A markdown table's lines: the header row (``titles`` a list or one string of titles
    separated by `` | ``), its ``|---|`` rule and one :func:`markdown_row` per row."""
    titles = titles.split(" | ") if isinstance(titles, str) else list(titles)
    rule = "|" + "---|" * len(titles)
    return [markdown_row(titles), rule, *(markdown_row(row) for row in rows)]


def document(title: str, *blocks: str | Iterable[str]) -> list[str]:
    """A markdown page's lines: ``# title``, then each block (a paragraph, or the lines of a table
    or list) after a blank line."""
    lines = [f"# {title}"]
    for block in blocks:
        lines += ["", *([block] if isinstance(block, str) else block)]
    return lines
