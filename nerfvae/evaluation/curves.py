"""Training curves of one or more runs against wall-clock time, from their own logs.

    python -m nerfvae.evaluation.curves RUN [RUN ...] --out curves.png [--table curves.md] [--x step]

Plots training loss, training PSNR, validation PSNR and validation object-pixel PSNR (ID and OOD
views) against minutes of training (the pauses between the parts of a resumed run left out), or
against the step for runs made by code of different speeds, and writes a markdown table of each
run's last validation row.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from nerfvae.evaluation import figures
from nerfvae.evaluation import markdown as md
from nerfvae.training.warm_start import cumulative_training_seconds


def _read(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(handle)
        ]


def run_curves(run: Path) -> dict[str, list[dict[str, float]]]:
    """A run's ``metrics.csv`` and ``validation.csv`` rows, each with ``minutes`` of training up to
    it (:func:`nerfvae.training.warm_start.cumulative_training_seconds`: the pauses between the
    parts of a resumed run do not count)."""
    metrics = _read(run / "metrics.csv")
    validation = _read(run / "validation.csv")
    if metrics:
        rows = [row for row in metrics if "step" in row and "steps_per_s" in row]
        for row, seconds in zip(rows, cumulative_training_seconds(rows)):
            row["minutes"] = seconds / 60
        steps = [r["step"] for r in rows]
        minutes = [r["minutes"] for r in rows]
        for row in validation:  # validation steps need not be logging steps: interpolate
            row["minutes"] = float(np.interp(row["step"], steps, minutes)) if rows else 0.0
    return {"metrics": metrics, "validation": validation}


def plot(runs: list[Path], out: Path, x: str = "minutes") -> None:
    """Six panels of curves against ``x``: ``"minutes"`` (wall clock) or ``"step"``."""
    panels = [
        ("metrics", "loss", "training loss"),
        ("metrics", "psnr", "training PSNR (dB)"),
        ("validation", "psnr_id", "validation PSNR, ID views (dB)"),
        ("validation", "object_psnr_id", "validation object PSNR, ID (dB)"),
        ("validation", "psnr_ood", "validation PSNR, OOD views (dB)"),
        ("validation", "object_psnr_ood", "validation object PSNR, OOD (dB)"),
    ]
    with figures.figure_file(out, 3, (13, 6.5), rows=2, dpi=110) as (_, axes):
        for run in runs:
            curves = run_curves(run)
            for axis, (source, key, title) in zip(axes, panels):
                rows = [r for r in curves[source] if key in r and x in r]
                figures.plot_line(axis, [(r[x], r[key]) for r in rows], label=run.name)
                axis.set_title(title, fontsize=9)
                axis.set_xlabel(x)
                axis.grid(alpha=0.3)
        axes[0].legend(fontsize=8)


def table(runs: list[Path]) -> str:
    """A markdown table of each run's last validation row."""
    keys = ("psnr_id", "object_psnr_id", "psnr_ood", "object_psnr_ood")
    rows = []
    for run in runs:
        validation = run_curves(run)["validation"]
        if validation:
            last = validation[-1]
            cells = [md.format_number(last.get(key)) for key in keys]
            minutes = md.format_number(last.get("minutes"), 1)
            rows.append([run.name, int(last["step"]), minutes, *cells])
    return "\n".join(md.table(["run", "steps", "minutes", *keys], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table", type=Path)
    parser.add_argument("--x", choices=("minutes", "step"), default="minutes")
    args = parser.parse_args()
    plot(args.runs, args.out, args.x)
    text = table(args.runs)
    print(text)
    if args.table:
        args.table.write_text(text + "\n")


if __name__ == "__main__":
    main()
