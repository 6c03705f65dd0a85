"""Training curves of one or more runs against wall-clock time, from their own logs.

    python -m nerfvae.evaluation.curves RUN [RUN ...] --out curves.png [--table curves.md] [--x step]

Plots training loss, training PSNR, validation PSNR and validation object-pixel PSNR (ID and OOD
views) against minutes since each run's start (or against the step, for runs made by code of
different speeds), and writes a markdown table of each run's last validation row.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def _read(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(handle)
        ]


def run_curves(run: Path) -> dict[str, list[dict[str, float]]]:
    metrics = _read(run / "metrics.csv")
    validation = _read(run / "validation.csv")
    if metrics:
        # minutes since start: the first row's time minus the time its steps took
        first = metrics[0]
        start = first["time"] - first["step"] / max(first.get("steps_per_s", 1.0), 1e-9)
        for row in metrics:
            row["minutes"] = (row["time"] - start) / 60
        steps = [r["step"] for r in metrics]
        minutes = [r["minutes"] for r in metrics]
        for row in validation:  # validation steps need not be logging steps: interpolate
            row["minutes"] = float(np.interp(row["step"], steps, minutes))
    return {"metrics": metrics, "validation": validation}


def plot(runs: list[Path], out: Path, x: str = "minutes") -> None:
    """Six panels of curves against ``x``: ``"minutes"`` (wall clock) or ``"step"``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("metrics", "loss", "training loss"),
        ("metrics", "psnr", "training PSNR (dB)"),
        ("validation", "psnr_id", "validation PSNR, ID views (dB)"),
        ("validation", "object_psnr_id", "validation object PSNR, ID (dB)"),
        ("validation", "psnr_ood", "validation PSNR, OOD views (dB)"),
        ("validation", "object_psnr_ood", "validation object PSNR, OOD (dB)"),
    ]
    figure, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for run in runs:
        curves = run_curves(run)
        for axis, (source, key, title) in zip(axes.flat, panels):
            rows = [r for r in curves[source] if key in r and x in r]
            if rows:
                axis.plot([r[x] for r in rows], [r[key] for r in rows], label=run.name)
            axis.set_title(title, fontsize=9)
            axis.set_xlabel(x)
            axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def table(runs: list[Path]) -> str:
    keys = ("psnr_id", "object_psnr_id", "psnr_ood", "object_psnr_ood")
    lines = [
        "| run | steps | minutes | " + " | ".join(keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for run in runs:
        curves = run_curves(run)
        if not curves["validation"]:
            continue
        last = curves["validation"][-1]
        cells = [f"{last.get(k, float('nan')):.2f}" for k in keys]
        lines.append(
            f"| {run.name} | {int(last['step'])} | {last.get('minutes', float('nan')):.1f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


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
