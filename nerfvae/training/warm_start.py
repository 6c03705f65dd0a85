"""Starting a run from another run's weights (``--init-from``): a fine-tune with a fresh optimiser.

The new run directory keeps the whole history: the other run's config and logs go to
``RUN/parent/`` (with its own ``parent/``, if it had one), and ``RUN/parent/init.json`` says which
checkpoint the weights came from, at which step, its SHA-256, and how the two configs differ.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nerfvae.errors import CheckpointError, ConfigError
from nerfvae.training.checkpoint import load_checkpoint, load_model_weights
from nerfvae.training.config import TrainConfig, config_differences, load_config
from nerfvae.training.run_directory import CONFIG_FILE, RunDirectory

PARENT_DIR = "parent"
TEACHER_DIR = "teacher"
"""A distilled run's copy of its teacher's history (``--distill-from``; training/distillation.py)."""
HISTORY_DIRS = (PARENT_DIR, TEACHER_DIR)
INIT_RECORD = "init.json"
# What a run directory's history is made of; checkpoints stay behind (the weights are in the run).
PARENT_LOGS = (CONFIG_FILE, "metrics.csv", "validation.csv", "events.log")


def resolve_init_checkpoint(source: str | Path) -> Path:
    """The checkpoint JSON that ``source`` names: itself, or a run directory's newest."""
    path = Path(source).expanduser()
    if not path.exists():
        raise ConfigError(f"--init-from {source}: no such run directory or checkpoint")
    if path.is_dir():
        latest = RunDirectory(path).latest_checkpoint()
        if latest is None:
            raise CheckpointError(f"--init-from {source}: run directory has no checkpoint")
        return latest
    if path.suffix != ".json":
        raise ConfigError(
            f"--init-from {source}: expected a run directory or a checkpoint's .json file"
        )
    return path


def _run_of_checkpoint(checkpoint: Path) -> Path | None:
    # RUN/checkpoints/step_X.json -> RUN, when it is a run directory
    candidate = checkpoint.resolve().parent.parent
    return candidate if (candidate / CONFIG_FILE).exists() else None


@dataclass
class InitSource:
    """Where a run's initial weights came from."""

    checkpoint: Path
    """The checkpoint's ``.json``, as ``--init-from`` named it (or its run directory's newest)."""
    step: int
    sha256: str
    parent_run: Path | None


def load_init_weights(model: torch.nn.Module, source: str | Path) -> InitSource:
    """Load the weights ``source`` names (see :func:`resolve_init_checkpoint`) into ``model``.
    Raises CheckpointError when a parameter is missing or has another shape."""
    checkpoint = resolve_init_checkpoint(source)
    record, tensors = load_checkpoint(checkpoint)
    load_model_weights(model, tensors, checkpoint)
    # recorded as given (a relative path stays relative): a run directory that is shipped must
    # not hold the paths of the machine it was trained on
    return InitSource(
        checkpoint, int(record["step"]), record["sha256"], _run_of_checkpoint(checkpoint)
    )


def copy_history(source_run: Path | None, destination: Path) -> None:
    """Make ``destination`` afresh and copy run ``source_run``'s config and logs into it, with the
    history it keeps itself (its ``parent/`` and ``teacher/`` folders); ``None`` (weights from a
    lone checkpoint file) leaves it empty."""
    if destination.exists():
        shutil.rmtree(destination)  # left by a start of this run that made no checkpoint
    destination.mkdir(parents=True)
    if source_run is None:
        return
    for name in PARENT_LOGS:
        if (source_run / name).exists():
            shutil.copy2(source_run / name, destination / name)
    for folder in HISTORY_DIRS:
        if (source_run / folder).is_dir():
            shutil.copytree(source_run / folder, destination / folder)


def record_parent(run: RunDirectory, init: InitSource, config: TrainConfig) -> list[str]:
    """Copy the parent run's config and logs to ``RUN/parent/`` and write ``init.json`` there;
    returns how ``config`` differs from the parent's (empty without a parent run directory)."""
    destination = run.root / PARENT_DIR
    copy_history(init.parent_run, destination)
    differences: list[str] = []
    if init.parent_run is not None:
        parent_config = load_config(init.parent_run / CONFIG_FILE)
        differences = config_differences(parent_config, config)
    record: dict[str, Any] = {
        "checkpoint": str(init.checkpoint),
        "step": init.step,
        "sha256": init.sha256,
        "config_differences": differences,
    }
    (destination / INIT_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return differences


def lineage(run: str | Path) -> list[Path]:
    """The run directory and its recorded parents, newest first (``RUN``, ``RUN/parent``, ...)."""
    chain = [Path(run)]
    while (chain[-1] / PARENT_DIR / CONFIG_FILE).exists():
        chain.append(chain[-1] / PARENT_DIR)
    return chain


def teacher_history(run: str | Path) -> Path | None:
    """``RUN/teacher``, the copy of the history of the run that ``RUN`` was distilled from
    (``--distill-from``), or None for a run trained from the data."""
    history = Path(run) / TEACHER_DIR
    return history if (history / CONFIG_FILE).exists() else None


def cumulative_training_seconds(rows: list[dict[str, str]]) -> list[float]:
    """Seconds of training up to each of the ``metrics.csv`` rows (``step``, ``steps_per_s``):
    each row covers the steps since the previous row at its logged rate, so the pauses between
    the parts of a resumed run do not count (validation and checkpoints do)."""
    seconds, previous, totals = 0.0, 0, []
    for row in rows:
        step, rate = int(float(row["step"])), float(row["steps_per_s"])
        if rate > 0:
            seconds += (step - previous) / rate
        previous = step
        totals.append(seconds)
    return totals


def training_seconds(rows: list[dict[str, str]]) -> float:
    """Seconds of training in ``metrics.csv`` rows (:func:`cumulative_training_seconds`)."""
    totals = cumulative_training_seconds(rows)
    return totals[-1] if totals else 0.0


def logged_training(run: str | Path) -> tuple[int, float]:
    """The last logged step and the seconds of training (:func:`training_seconds`) of one run
    directory's own ``metrics.csv``; ``(0, 0.0)`` where it has none."""
    metrics = Path(run) / "metrics.csv"
    rows = list(csv.DictReader(metrics.read_text().splitlines())) if metrics.exists() else []
    return (int(float(rows[-1]["step"])), training_seconds(rows)) if rows else (0, 0.0)


def training_stages(run: str | Path) -> list[Path]:
    """The run directories (or the copies of their history) of every stage a run's training went
    through, oldest first: its parents (``--init-from``), and before a distilled stage
    (``--distill-from``) the stages of its teacher."""
    stages: list[Path] = []
    for stage in reversed(lineage(run)):
        teacher = teacher_history(stage)
        if teacher is not None:
            stages += training_stages(teacher)
        stages.append(stage)
    return stages


@dataclass(frozen=True)
class TrainingTotals:
    """What every stage of a run's training (:func:`training_stages`) logged, added up."""

    steps: int
    """Last logged step of the run's own stage (0 when it logged none)."""
    seconds: float
    """Training time of all the stages (:func:`training_seconds` of each)."""
    stage_steps: tuple[int, ...]
    """Last logged step of each stage, oldest first."""


def training_totals(run: str | Path) -> TrainingTotals:
    """The :class:`TrainingTotals` of a run directory, from the ``metrics.csv`` of each stage."""
    stages = [logged_training(stage) for stage in training_stages(run)]
    return TrainingTotals(
        steps=stages[-1][0],
        seconds=sum(seconds for _, seconds in stages),
        stage_steps=tuple(steps for steps, _ in stages),
    )
