"""What every report's figures are drawn with (`nerfvae eval`, `baseline nerf`, training curves,
the experiments): a matplotlib figure written to a file, grouped bars, lines that skip missing
values, and an image grid written as a PNG."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


def plot_value(value: float | None) -> float:
    """A value for a figure: None (no value) becomes NaN, which matplotlib leaves out."""
    return float("nan") if value is None else value


@contextmanager
def figure_file(
    path: Path,
    columns: int,
    size: tuple[float, float],
    rect: tuple[float, float, float, float] = (0, 0, 1, 1),
    rows: int = 1,
    dpi: int = 120,
) -> Iterator[tuple[Any, list]]:
    """``(figure, axes)`` of a matplotlib figure with ``rows × columns`` panels (``axes`` row by
    row) of ``size`` inches in all, laid out tightly in ``rect`` and written to ``path`` at ``dpi``
    when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    try:
        yield figure, list(axes.flat)
        figure.tight_layout(rect=rect)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=dpi)
    finally:
        plt.close(figure)


def grouped_bars(
    axis: Any,
    labels: Sequence[str],
    bars: Sequence[tuple[str | None, Sequence[float | None], str]],
    width: float = 0.8,
    fontsize: float = 8,
) -> list[float]:
    """Per label a group of bars side by side, one per ``(legend label, values, colour)`` in
    ``bars`` (None values left out), sharing ``width``; returns the finite values drawn."""
    positions = range(len(labels))
    drawn: list[float] = []
    for index, (label, values, colour) in enumerate(bars):
        heights = [plot_value(value) for value in values]
        offset = (index - (len(bars) - 1) / 2) * width / len(bars)
        shifted = [p + offset for p in positions]
        axis.bar(shifted, heights, width / len(bars), label=label, color=colour)
        drawn += [value for value in heights if value == value]
    axis.set_xticks(list(positions))
    axis.set_xticklabels(labels, fontsize=fontsize)
    axis.grid(axis="y", alpha=0.3)
    return drawn


def zoom_to(axis: Any, values: Sequence[float]) -> None:
    """PSNR axis limits from 3 dB below the lowest of ``values`` (not below 0) to 1 dB above the
    highest, so differences between bars show."""
    if values:
        axis.set_ylim(max(0.0, min(values) - 3.0), max(values) + 1.0)


def plot_line(axis: Any, points: Iterable[tuple[float, float]], *style: str, **options) -> None:
    """A line through ``(x, y)`` points, when there are any."""
    points = list(points)
    if points:
        axis.plot(*zip(*points), *style, **options)


def write_image_grid(path: Path, rows: list[list[torch.Tensor]], min_height: int) -> None:
    """Images ``[H, W, 3]`` in rows written as one PNG, each pixel repeated so that an image is at
    least ``min_height`` pixels high."""
    from nerfvae import visualise as vis

    scale = max(1, min_height // rows[0][0].shape[0])
    grid = vis.image_grid(rows)
    vis.write_png(path, grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1))
