"""What every experiment records beside its numbers (how to rerun it and on what it ran), and the
one markdown form of that record."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from nerfvae.evaluation.markdown import at
from nerfvae.precision import cpu_description
from nerfvae.training.warm_start import training_totals


def git_commit(root: Path | None = None) -> str | None:
    """The repository's HEAD commit (with ``-dirty`` for uncommitted changes), or None."""
    git = ["git", "-C", str(root or Path(__file__).resolve().parents[2])]

    def output(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run([*git, *command], capture_output=True, text=True, timeout=10)

    try:
        commit = output("rev-parse", "HEAD")
        if commit.returncode != 0:
            return None
        dirty = output("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> dict[str, Any]:
    """CPU model and count, torch threads, GPU name where one is used."""
    return {
        "cpu": cpu_description()["name"],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def run_budget(run: str | Path) -> dict[str, Any]:
    """How a run directory's model was trained: its config and, from the ``metrics.csv`` of
    every stage of its training (``training/warm_start.training_stages``: parents of
    ``--init-from``, the teacher of ``--distill-from``), the steps of its own last stage, the
    steps of each stage (``stage_steps``, oldest first, when there are several) and the
    wall-clock minutes of all of them (pauses between the parts of a resumed run not counted)."""
    run = Path(run)
    config = json.loads((run / "config.json").read_text())
    budget: dict[str, Any] = {"run": str(run), "config": config}
    totals = training_totals(run)
    if totals.steps > 0:
        budget["steps"] = totals.steps
        budget["wall_minutes"] = round(totals.seconds / 60.0, 2)
        if len(totals.stage_steps) > 1:
            budget["stage_steps"] = list(totals.stage_steps)
    if (run / "device.txt").exists():
        budget["device"] = (run / "device.txt").read_text().strip()
    return budget


def experiment_provenance(
    prog: str, argv: list[str], runs: Iterable[str | Path] = (), **extra: Any
) -> dict[str, Any]:
    """The ``provenance`` block of an experiment's JSON: the shell command that ran it (``prog``,
    e.g. ``nerfvae experiment NAME``, and its arguments, quoted), commit, hardware, each run's
    training budget and ``extra`` entries."""
    return {
        "command": shlex.join([*shlex.split(prog), *argv]),
        "git_commit": git_commit(),
        "hardware": hardware(),
        "runs": [run_budget(run) for run in runs],
        **extra,
    }


def commit_text(block: Mapping[str, Any]) -> str:
    """``commit: `SHA``` (``unknown`` when not recorded)."""
    return f"commit: `{block.get('git_commit') or 'unknown'}`"


def command_block(command: str) -> list[str]:
    """Markdown lines of a command as a bash code block."""
    return ["```bash", command, "```"]


def hardware_text(hardware: Mapping[str, Any]) -> str:
    """One line: CPU (cores, torch threads), GPU, torch version."""
    if not hardware:
        return "not recorded"
    text = (
        f"{hardware.get('cpu', '?')} ({hardware.get('cpu_count', '?')} cores, "
        f"{hardware.get('torch_threads', '?')} torch threads), GPU {hardware.get('gpu') or 'none'}"
    )
    return text + (f", torch {hardware['torch']}" if hardware.get("torch") else "")


def conditioning_of(config: Mapping[str, Any]) -> str | None:
    """The scene function's conditioning of a NeRF-VAE run's config (None for other models)."""
    if config.get("model") != "nerfvae":
        return None
    return at(config, "nerfvae", "scene_function", "conditioning")


def budget_text(budget: Mapping[str, Any]) -> str:
    """One line of a run's training budget from its provenance entry (:func:`run_budget`)."""
    config = budget.get("config") or {}
    parts = [f"model {config['model']}"] if config.get("model") else []
    conditioning = conditioning_of(config)
    parts += [f"conditioning {conditioning}"] if conditioning else []
    parts.append(f"{budget['steps']} steps" if "steps" in budget else "steps not logged")
    if budget.get("stage_steps"):
        parts[-1] += f" (stages of {' + '.join(map(str, budget['stage_steps']))} steps)"
    if budget.get("wall_minutes") is not None:
        over = " over all stages" if budget.get("stage_steps") else ""
        parts.append(f"{budget['wall_minutes']} wall minutes of training{over}")
    parts += [f"device {budget['device']}"] if budget.get("device") else []
    return ", ".join(parts)


def block_hardware_text(block: Mapping[str, Any]) -> str:
    """:func:`hardware_text` of a provenance block's hardware (``not recorded`` without one)."""
    hardware = block.get("hardware")
    return hardware_text(hardware if isinstance(hardware, Mapping) else {})


def provenance_lines(block: Mapping[str, Any]) -> list[str]:
    """Markdown bullets of a provenance block (:func:`experiment_provenance`): commit, hardware,
    each run's training budget and, where recorded, the per-scene NeRF's budget."""
    runs = [run for run in block.get("runs") or [] if isinstance(run, Mapping)]
    lines = [f"* {commit_text(block)}", f"* hardware: {block_hardware_text(block)}"]
    lines += [f"* run `{run.get('run')}`: {budget_text(run)}" for run in runs]
    return lines + ([f"* per-scene NeRF: {block['nerf']}"] if block.get("nerf") else [])


def provenance_section(block: Mapping[str, Any]) -> list[str]:
    """The closing ``## Provenance`` section of every experiment's markdown: the command as a
    code block, then :func:`provenance_lines`."""
    command = command_block(str(block.get("command", "")))
    return ["## Provenance", "", *command, "", *provenance_lines(block)]


def inputs_section(entries: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The report's ``## Inputs``: per ``(label, entry)`` the run, its checkpoint step and where
    its evaluation came from (``entry``: ``run``, ``checkpoint_step``, ``eval_json``,
    ``evaluated_here``)."""
    lines = ["## Inputs", ""]
    for label, entry in entries:
        source = "evaluated here, saved as" if entry["evaluated_here"] else "from"
        lines.append(
            f"* {label}: run `{entry.get('run')}`, checkpoint step "
            f"{entry.get('checkpoint_step')}; {source} `{entry['eval_json']}`"
        )
    return lines
