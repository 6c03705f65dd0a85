"""Validation curves of runs against wall-clock time: ``curves.png`` and ``curves.json``.

    python docs/results/scene-function/curves.py OUT_DIR LABEL=RUN [LABEL=RUN ...]

Each run's validation rows (``validation.csv``: step, PSNR on ID and OOD views of the first
validation scenes) are placed in time by the training log (``metrics.csv``: a wall-clock stamp
every ``log_every`` steps), measured from the run's first logged step.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def curve(run: Path) -> list[dict[str, float]]:
    log = read_rows(run / "metrics.csv")
    steps = [int(row["step"]) for row in log]
    stamps = [float(row["time"]) for row in log]
    # the first row is logged after log_every steps: extrapolate the start from its rate
    rate = (stamps[1] - stamps[0]) / (steps[1] - steps[0])
    start = stamps[0] - rate * steps[0]
    points = []
    for row in read_rows(run / "validation.csv"):
        step = int(row["step"])
        # the log row at or just after this step (validation runs right after its log row)
        index = min(range(len(steps)), key=lambda i: (steps[i] < step, abs(steps[i] - step)))
        points.append(
            {
                "step": step,
                "minutes": (stamps[index] - start) / 60.0,
                "psnr_id": float(row["psnr_id"]),
                "psnr_ood": float(row["psnr_ood"]),
                "object_psnr_id": float(row["object_psnr_id"]),
                "object_psnr_ood": float(row["object_psnr_ood"]),
            }
        )
    return points


def main() -> None:
    out = Path(sys.argv[1])
    runs = dict(arg.split("=", 1) for arg in sys.argv[2:])
    curves = {label: curve(Path(run)) for label, run in runs.items()}
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for axis, key, title in zip(axes, ("psnr_id", "psnr_ood"), ("ID views", "OOD views")):
        for label, points in curves.items():
            axis.plot([p["minutes"] for p in points], [p[key] for p in points], marker=".",
                      label=label)  # fmt: skip
        axis.set_title(f"validation PSNR, {title}")
        axis.set_xlabel("wall-clock minutes (one thread each, side by side)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("PSNR (dB)")
    axes[0].legend()
    figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    figure.savefig(out / "curves.png", dpi=120)
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    print(f"wrote {out / 'curves.png'} and {out / 'curves.json'}")


if __name__ == "__main__":
    main()
