"""What every experiment records beside its numbers: how to rerun it and on what it ran."""

from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

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


def training_seconds(rows: list[dict[str, str]]) -> float:
    """Seconds of training in ``metrics.csv`` rows (``step``, ``steps_per_s``): each row covers
    the steps since the previous row at its logged rate."""
    seconds, previous = 0.0, 0
    for row in rows:
        step, rate = int(float(row["step"])), float(row["steps_per_s"])
        if rate > 0:
            seconds += (step - previous) / rate
        previous = step
    return seconds


def run_budget(run: str | Path) -> dict[str, Any]:
    """How a run directory's model was trained: its config and, from ``metrics.csv``, the steps
    and the wall-clock minutes it trained: the sum over logged windows of steps / (steps/s), so
    the pauses between the parts of a resumed run do not count (validation and checkpoints do)."""
    run = Path(run)
    config = json.loads((run / "config.json").read_text())
    budget: dict[str, Any] = {"run": str(run), "config": config}
    metrics = run / "metrics.csv"
    if metrics.exists():
        with metrics.open() as handle:
            rows = list(csv.DictReader(handle))
        if rows:
            budget["steps"] = int(float(rows[-1]["step"]))
            budget["wall_minutes"] = round(training_seconds(rows) / 60.0, 2)
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


def experiment_command(prog: str, argv: list[str]) -> str:
    """The shell command that ran an experiment: ``prog`` (e.g. ``nerfvae experiment NAME``) and
    its arguments, quoted (its own command line, not the interpreter's ``sys.argv``)."""
    return shlex.join([*shlex.split(prog), *argv])


def experiment_provenance(
    prog: str, argv: list[str], runs: Iterable[str | Path] = (), **extra: Any
) -> dict[str, Any]:
    """:func:`provenance` for these runs, with the experiment's own command line
    (:func:`experiment_command`) and ``extra`` entries."""
    return provenance(runs=list(runs), command=experiment_command(prog, argv), **extra)


# --------------------------------------------------------------------------- as markdown

ProvenanceStyle = Literal["budget", "detailed", "brief"]
"""How an experiment's report lays out its provenance block:

* ``budget`` (cameras, ablation; the summary's hardware and budget texts): ``*`` bullets after the
  command as a code block; hardware as :func:`hardware_text`, runs as :func:`budget_text`.
* ``detailed`` (views, cost): ``-`` bullets, the command in its own ``## Command`` section;
  hardware with the Python version, runs with their model.
* ``brief`` (uncertainty, samples): ``-`` bullets with the command as the first one; runs with
  steps and wall minutes only.
"""


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
    parts = [
        f"{hardware.get('cpu', '?')} ({hardware.get('cpu_count', '?')} cores, "
        f"{hardware.get('torch_threads', '?')} torch threads)",
        f"GPU {hardware.get('gpu') or 'none'}",
    ]
    if hardware.get("torch"):
        parts.append(f"torch {hardware['torch']}")
    return ", ".join(parts)


def budget_text(budget: Mapping[str, Any]) -> str:
    """One line of a run's training budget from its provenance entry (:func:`run_budget`)."""
    config = budget.get("config") or {}
    parts = [f"model {config['model']}"] if config.get("model") else []
    if config.get("model") == "nerfvae":
        conditioning = (config.get("nerfvae") or {}).get("scene_function", {}).get("conditioning")
        if conditioning:
            parts.append(f"conditioning {conditioning}")
    parts.append(f"{budget['steps']} steps" if "steps" in budget else "steps not logged")
    if budget.get("wall_minutes") is not None:
        parts.append(f"{budget['wall_minutes']} wall minutes of training")
    if budget.get("device"):
        parts.append(f"device {budget['device']}")
    return ", ".join(parts)


def _hardware_line(hardware: Mapping[str, Any], style: ProvenanceStyle) -> str:
    if style == "budget":
        return hardware_text(hardware)
    text = (
        f"{hardware.get('cpu', '?')} ({hardware.get('cpu_count', '?')} CPUs, "
        f"{hardware.get('torch_threads', '?')} torch threads), GPU: {hardware.get('gpu') or 'none'}"
    )
    if style == "detailed":
        return f"{text}; torch {hardware.get('torch', '?')}, Python {hardware.get('python', '?')}"
    return f"{text}, torch {hardware.get('torch', '?')}"


def _run_line(budget: Mapping[str, Any], style: ProvenanceStyle) -> str:
    if style == "budget":
        return f"run `{budget.get('run')}`: {budget_text(budget)}"
    model = f"model {budget.get('config', {}).get('model', '?')}, " if style == "detailed" else ""
    device = f", trained on {budget['device']}" if budget.get("device") else ""
    return (
        f"run `{budget['run']}`: {model}{budget.get('steps', '?')} steps, "
        f"{budget.get('wall_minutes', '?')} wall minutes{device}"
    )


def provenance_markdown(block: Mapping[str, Any], style: ProvenanceStyle = "budget") -> list[str]:
    """Markdown bullets of an experiment's provenance block (:func:`provenance`): commit, hardware,
    each run's training budget and, where recorded, the per-scene NeRF's budget (the command too
    in the ``brief`` style; see :data:`ProvenanceStyle`)."""
    bullet = "*" if style == "budget" else "-"
    lines = [f"- command: `{block.get('command', '')}`"] if style == "brief" else []
    lines += [
        f"{bullet} {commit_text(block)}",
        f"{bullet} hardware: {_hardware_line(block.get('hardware') or {}, style)}",
    ]
    lines += [f"{bullet} {_run_line(budget, style)}" for budget in block.get("runs") or []]
    if block.get("nerf"):
        lines.append(f"{bullet} per-scene NeRF: {block['nerf']}")
    return lines


def provenance_section(block: Mapping[str, Any], style: ProvenanceStyle = "budget") -> list[str]:
    """The closing markdown section(s) of an experiment's report: ``## Provenance`` with the
    command and :func:`provenance_markdown` (the ``detailed`` style puts the command in a
    ``## Command`` section before it)."""
    command = command_block(str(block.get("command", "")))
    if style == "detailed":
        return [
            "## Command",
            "",
            *command,
            "",
            "## Provenance",
            "",
            *provenance_markdown(block, style),
        ]
    if style == "brief":
        return ["## Provenance", "", *provenance_markdown(block, style)]
    return ["## Provenance", "", *command, "", *provenance_markdown(block, style)]
