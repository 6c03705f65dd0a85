"""The intervals and verdicts of the experiments' claims, written once for every experiment.

Each row of an experiment's table is a mean over test scenes with a 95% bootstrap interval over
scenes, and a claim compares two models by the *paired* difference per scene with its interval
(:mod:`nerfvae.statistics`: 2,000 resamples, seed 0). A claim "holds" only when that interval
excludes zero in the claimed direction, "not shown" otherwise. The per-scene values behind them
(``per_scene`` of ``nerfvae eval``: one value per scene, the same scenes in the same order for
every model) are kept in the experiment's JSON beside the intervals.

Older JSONs without per-scene values still read: their rows show the mean without an interval and
their claims :data:`NO_PER_SCENE`, never a verdict without an interval. An interval is over the
scenes with a finite value (a paired one over the scenes where both sides have one); its
``count`` says how many.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from nerfvae.evaluation import markdown as md
from nerfvae.statistics import Interval, bootstrap_interval, paired_difference, verdict

Direction = Literal["greater", "less"]

NO_PER_SCENE = "not shown (no per-scene values)"
"""The verdict of a claim whose JSON has no per-scene values to give it an interval."""
ONE_SCENE = "not shown (one scene)"
"""The verdict of a claim on a single scene: its bootstrap interval has no width, so no verdict."""
READING = (
    "Each cell is the mean over test scenes [95% bootstrap interval over scenes, 2,000 resamples, "
    "seed 0]; a paired column is the per-scene difference between two models on the same scenes "
    "and views, with its interval. A claim *holds* only when that interval excludes zero in the "
    "claimed direction (and it spans more than one scene), else it is *not shown*; a result saved "
    f"without per-scene values shows the mean alone and its claim as “{NO_PER_SCENE}”."
)
"""How an experiment's table is read (a sentence of its markdown and of the results summary)."""


def scene_values(evaluation: Mapping[str, Any] | None, k: Any, kind: str, metric: str) -> list:
    """``evaluation["per_scene"][K][kind][metric]``: the metric's mean per scene (None where a
    scene has no value), or None when the evaluation has no per-scene values for it."""
    values = md.at(evaluation, "per_scene", str(k), kind, metric)
    return list(values) if isinstance(values, list) and values else None


def _finite(values: Sequence[Any] | None) -> list[float | None]:
    return [md.finite_or_none(value) for value in values or ()]


def interval(values: Sequence[Any] | None) -> dict[str, float] | None:
    """The bootstrap interval (``Interval.to_json``) of the mean over the scenes with a finite
    value, or None when there is none."""
    finite = [value for value in _finite(values) if value is not None]
    return bootstrap_interval(finite).to_json() if finite else None


def differences(first: Sequence[Any] | None, second: Sequence[Any] | None) -> list | None:
    """``first - second`` scene by scene (None where either is missing), or None when either side
    has no per-scene values."""
    if not first or not second:
        return None
    if len(first) != len(second):
        paired_difference(first, second)  # raises: not the same scenes
    return [md.difference(a, b) for a, b in zip(first, second)]


def paired(first: Sequence[Any] | None, second: Sequence[Any] | None) -> dict | None:
    """The interval of the per-scene difference ``first - second`` (the same scenes in the same
    order) over the scenes where both have a value; None without per-scene values on both sides."""
    return interval(differences(first, second))


def verdict_of(difference: Mapping[str, Any] | None, direction: Direction) -> str:
    """``statistics.verdict`` of a difference's interval JSON: :data:`NO_PER_SCENE` without one,
    :data:`ONE_SCENE` for an interval over one scene."""
    if not isinstance(difference, Mapping):
        return NO_PER_SCENE
    if difference.get("count", 0) < 2:
        return ONE_SCENE
    fields = ("mean", "low", "high", "count", "confidence")
    return verdict(Interval(**{key: difference[key] for key in fields}), direction)


def claim(
    first: Sequence[Any] | None,
    second: Sequence[Any] | None,
    direction: Direction,
    mean: Any = None,
) -> dict[str, Any]:
    """A claim that ``first`` is above (``greater``) or below (``less``) ``second``: ``mean``
    (the difference of the two rows' means, when given; else the paired difference's mean), the
    paired ``difference`` (interval JSON or None), the ``direction`` and the ``verdict``."""
    difference = paired(first, second)
    if mean is None and difference is not None:
        mean = difference["mean"]
    return {
        "mean": md.finite_or_none(mean),
        "difference": difference,
        "direction": direction,
        "verdict": verdict_of(difference, direction),
    }


def stored_or_means(stored: Any, first_mean: Any, second_mean: Any, direction: Direction) -> dict:
    """A claim record read back from a JSON, or (an older JSON without one) the difference of the
    two rows' means with no interval and the verdict :data:`NO_PER_SCENE`."""
    if isinstance(stored, Mapping) and "direction" in stored:
        return dict(stored)
    return claim(None, None, direction, md.difference(first_mean, second_mean))


def claim_row(text: str, comparison: str, metric: str, record: Mapping, digits: int = 2) -> dict:
    """One claim of an experiment's ``claims`` list (what the results summary states):
    ``claim`` (the paper's claim), ``comparison`` (which models, K and views), ``metric`` and
    ``digits`` (for printing), and the record of :func:`claim`."""
    return {"claim": text, "comparison": comparison, "metric": metric, "digits": digits, **record}


def cell(value: Any, interval_json: Any = None, digits: int = 2) -> str:
    """A table cell ``mean [low, high]``: the row's ``value`` (the interval's mean when None)
    with the interval's bounds, or the value alone (``–`` when none) without an interval."""
    if not isinstance(interval_json, Mapping):
        return md.format_number(value, digits)
    shown = value if md.finite_or_none(value) is not None else interval_json.get("mean")
    low, high = (md.format_number(interval_json.get(key), digits) for key in ("low", "high"))
    return f"{md.format_number(float(shown), digits)} [{low}, {high}]"


def row_cell(row: Mapping[str, Any], *keys: str, digits: int = 2, values: Any = None) -> str:
    """The :func:`cell` of a results row at ``keys`` (e.g. ``"id", "psnr"``): the value there in
    ``values`` (default: the row itself) beside the row's interval there (``intervals``)."""
    value = md.at(row if values is None else values, *keys)
    return cell(value, md.at(row, "intervals", *keys), digits)


def not_read(record: Mapping[str, Any], reason: str | None) -> dict[str, Any]:
    """``record`` with the reason its comparison is not read (``not_read``; None: it is read),
    e.g. a model too close to a trivial predictor for its difference to mean anything."""
    return {**record, "not_read": reason}


def verdict_text(record: Mapping[str, Any]) -> str:
    """A claim's verdict as printed: ``not read (reason)`` where :func:`not_read` gave one, else
    the verdict recomputed from the interval (so none is printed without one)."""
    if record.get("not_read"):
        return f"not read ({record['not_read']})"
    return verdict_of(record.get("difference"), record.get("direction", "greater"))


def claim_cells(record: Mapping[str, Any], digits: int = 2) -> list[str]:
    """A claim's two table cells: the margin with its interval, and the :func:`verdict_text`."""
    return [cell(record.get("mean"), record.get("difference"), digits), verdict_text(record)]


def intervals_of(per_scene: Mapping[str, Any]) -> dict[str, Any]:
    """The same nesting as ``per_scene`` (dicts down to lists of per-scene values, or None) with
    each list replaced by its :func:`interval`."""
    return {
        key: intervals_of(value) if isinstance(value, Mapping) else interval(value)
        for key, value in per_scene.items()
    }
