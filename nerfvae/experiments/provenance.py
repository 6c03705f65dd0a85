"""What every experiment records beside its numbers: how to rerun it and on what it ran."""

from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as a shell-quoted string (``nerfvae ...`` when run via the
    console script, else ``python -m ...``/the script path as invoked)."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "nerfvae"
    return shlex.join([program, *argv[1:]])


def git_commit(root: Path | None = None) -> str | None:
    """The repository's HEAD commit (with ``-dirty`` for uncommitted changes), or None."""
    root = root or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip() + ("-dirty" if status.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> dict[str, Any]:
    """CPU model and count, torch threads, GPU name where one is used."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def run_budget(run: str | Path) -> dict[str, Any]:
    """How a run directory's model was trained: its config and, from ``metrics.csv``, the steps
    and wall-clock minutes it trained (summed over resumed sessions is not possible from the log,
    so minutes is first-to-last log line)."""
    run = Path(run)
    config = json.loads((run / "config.json").read_text())
    budget: dict[str, Any] = {"run": str(run), "config": config}
    metrics = run / "metrics.csv"
    if metrics.exists():
        with metrics.open() as handle:
            rows = list(csv.DictReader(handle))
        if rows:
            budget["steps"] = int(float(rows[-1]["step"]))
            budget["wall_minutes"] = round(
                (float(rows[-1]["time"]) - float(rows[0]["time"])) / 60.0, 2
            )
    device = run / "device.txt"
    if device.exists():
        budget["device"] = device.read_text().strip()
    return budget


def provenance(runs: list[str | Path] | None = None, **extra: Any) -> dict[str, Any]:
    """The ``provenance`` block of an experiment's JSON: command, commit, hardware, and each run's
    training budget."""
    return {
        "command": command_line(),
        "git_commit": git_commit(),
        "hardware": hardware(),
        "runs": [run_budget(run) for run in (runs or [])],
        **extra,
    }
