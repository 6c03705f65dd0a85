"""The results summary: every experiment's JSON under ``docs/results/*/`` collected into one
``docs/results/README.md`` (``nerfvae experiment summary``, :mod:`nerfvae.experiments.summary`).

Each experiment (the known ones in report order, then any other folder holding ``NAME/NAME.json``
or a variant of a known experiment such as ``cost-long/cost.json``) gets its command, hardware and
training budget (from the JSON's ``provenance``) and a link to its own markdown; a missing one gets
"not run yet: <command>". The headline table copies numbers from the JSONs, never computes one: a
JSON's ``headline`` rows (``label``, ``psnr``, ``object_psnr``, ``baseline_mean_train_psnr``,
``baseline_mean_context_psnr``, ``note``; ``psnr_interval``, when there, printed beside the PSNR)
as they are, else every nested dict with a numeric ``psnr`` labelled by its path (up to
``MAX_ROWS_PER_EXPERIMENT``).

The claims table states each paper claim's verdict with its margin and interval, copied from the
JSON's ``claims`` rows (:mod:`nerfvae.experiment_reports.claims`); for an older views, cameras or
ablation JSON without them, the experiment's own reading of its saved results (given as
``claim_rows``) gives the margin of the means and the verdict "not shown (no per-scene values)".
No verdict is printed without an interval.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from nerfvae.errors import NerfVAEError
from nerfvae.evaluation.markdown import format_number, markdown_row, table
from nerfvae.experiment_reports import claims
from nerfvae.experiment_reports.provenance import (
    block_hardware_text,
    command_block,
    provenance_lines,
)

EXPERIMENTS: dict[str, str] = {
    "views": "nerfvae experiment views ...",
    "cameras": "nerfvae experiment cameras --run RUN --gqn-run GQN_RUN --data DIR",
    "ablation": "nerfvae experiment ablation --runs concat=RUN ain=RUN attention=RUN "
    "attention-global=RUN --data DIR",
    "cost": "nerfvae experiment cost ...",
    "uncertainty": "nerfvae experiment uncertainty ...",
    "samples": "nerfvae experiment samples ...",
}
"""The paper's experiments in report order, with the command that produces each."""
MAX_ROWS_PER_EXPERIMENT = 8
HEADLINE_COLUMNS = {
    "psnr": "PSNR",
    "object_psnr": "object PSNR",
    "baseline_mean_train_psnr": "mean-train-image PSNR",
    "baseline_mean_context_psnr": "mean-context-colour PSNR",
}
SKIPPED_KEYS = {"provenance", "view_lists", "config", "history", "timing", "headline"}
NOT_RECORDED = "not recorded"


def psnr_entries(data: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(label, entry)`` for every nested dict holding a numeric ``psnr`` (outside provenance,
    configs, histories and timings), depth first in the JSON's order."""
    if not isinstance(data, Mapping):
        return
    psnr = data.get("psnr")
    if path and isinstance(psnr, int | float) and not isinstance(psnr, bool):
        yield " / ".join(path), dict(data)
    for key, value in data.items():
        if key not in SKIPPED_KEYS:
            yield from psnr_entries(value, (*path, str(key)))


def headline_rows(data: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The rows an experiment JSON gives the headline table (copied, not computed) and how many
    more there were than MAX_ROWS_PER_EXPERIMENT."""
    headline = data.get("headline")
    if isinstance(headline, list) and headline:
        rows = [dict(row) for row in headline if isinstance(row, Mapping)]
    else:
        rows = [
            {"label": label, **{key: entry.get(key) for key in HEADLINE_COLUMNS}}
            for label, entry in psnr_entries(data)
        ]
    return rows[:MAX_ROWS_PER_EXPERIMENT], max(0, len(rows) - MAX_ROWS_PER_EXPERIMENT)


def _link(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _cell(value: Any) -> str:
    text = format_number(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def experiment_section(name: str, path: Path, data: Mapping[str, Any], out_dir: Path) -> list[str]:
    """Markdown lines of one experiment (its JSON at ``path``): links, command, commit, hardware,
    training budget."""
    links = [
        f"[{label}]({_link(path.with_suffix(suffix), out_dir)})"
        for suffix, label in ((".md", "table"), (".png", "figure"))
        if path.with_suffix(suffix).exists()
    ]
    lines = [f"### {name}", "", " · ".join([*links, f"[JSON]({_link(path, out_dir)})"]), ""]
    if data.get("description"):
        lines += [str(data["description"]), ""]
    block = data.get("provenance")
    if not isinstance(block, Mapping):
        return [*lines, "No provenance recorded in the JSON.", ""]
    command = command_block(str(block.get("command", "(command not recorded)")))
    runs = ["* training budget: no trained runs recorded"] if not block.get("runs") else []
    return [*lines, *command, "", *provenance_lines(block), *runs, ""]


def glance_row(link: str, data: Mapping[str, Any]) -> str:
    """One row of the provenance table (``link``: the experiment's name linked to its page):
    command, hardware and the runs' steps and minutes."""
    block = data.get("provenance")
    if not isinstance(block, Mapping):
        return markdown_row([link, *[NOT_RECORDED] * 3])
    budgets = []
    for budget in block.get("runs") or []:
        if not isinstance(budget, Mapping):
            continue
        text = f"{budget['steps']} steps" if "steps" in budget else "steps not logged"
        if budget.get("wall_minutes") is not None:
            text += f", {budget['wall_minutes']} min"
        budgets.append(f"`{Path(str(budget.get('run', '?'))).name}`: {text}")
    command = str(block.get("command", NOT_RECORDED)).replace("`", "'")
    budget_cell = _cell("; ".join(budgets)) if budgets else "no trained runs"
    return markdown_row(
        [link, f"`{_cell(command)}`", _cell(block_hardware_text(block)), budget_cell]
    )


def experiment_json(folder: Path) -> Path:
    """The experiment JSON of a results folder: ``NAME/NAME.json``, or for a variant of a known
    experiment written elsewhere with ``--out`` (``cost-long/cost.json``) that experiment's JSON.
    The first path is returned when neither exists."""
    own = folder / f"{folder.name}.json"
    if own.is_file() or folder.name in EXPERIMENTS:
        return own
    variants = [folder / f"{name}.json" for name in EXPERIMENTS]
    variants = [path for path in variants if path.is_file()]
    return variants[0] if len(variants) == 1 else own


def collect(results: Path) -> tuple[list[str], list[Path]]:
    """Experiment names in report order (the known ones, then other folders holding an experiment
    JSON) and the folders without one that hold markdown (hand-written results)."""
    names, others = list(EXPERIMENTS), []
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        if folder.name in EXPERIMENTS:
            continue
        if experiment_json(folder).is_file():
            names.append(folder.name)
        elif any(folder.glob("*.md")):
            others.append(folder)
    return names, others


def summary_markdown(
    results: Path,
    out: Path,
    findings: Path | None,
    read_json: Callable[[Path, str], dict[str, Any]],
    claim_rows: Callable[[Mapping[str, Any]], list[dict[str, Any]]],
) -> str:
    """The summary's text (see the module docstring); ``findings``, when it exists, is a
    hand-written markdown file placed after the headline table. ``read_json(path, name)`` reads an
    experiment JSON (NerfVAEError when it cannot); ``claim_rows(data)`` gives its claims' rows."""
    out_dir = out.parent
    names, others = collect(results)
    rows: list[list[str]] = []
    claim_table: list[list[str]] = []
    sections, missing, glance = [], [], []
    for name in names:
        path = experiment_json(results / name)
        if not path.is_file():
            command = EXPERIMENTS.get(name, f"nerfvae experiment {name}")
            missing.append(f"* {name}: not run yet: `{command}`")
            continue
        try:
            data = read_json(path, path.name)
        except NerfVAEError as error:
            sections += [f"### {name}", "", f"Could not read `{path}`: {error}", ""]
            continue
        headline, more = headline_rows(data)
        page = path.with_suffix(".md")
        link = f"[{name}]({_link(page if page.exists() else path, out_dir)})"
        glance.append(glance_row(link, data))
        for row in headline:
            cells = [_cell(row.get(key)) for key in HEADLINE_COLUMNS]
            if isinstance(row.get("psnr_interval"), Mapping):
                cells[0] = _cell(claims.cell(row.get("psnr"), row["psnr_interval"]))
            label, note = (_cell(str(row.get(key, ""))) for key in ("label", "note"))
            rows.append([link, label, *cells, note])
        if more:
            rows.append([link, f"… {more} more rows, see its table", "", "", "", "", ""])
        if not headline:
            rows.append([link, "no PSNR in the JSON, see its table", *["–"] * 4, ""])
        for row in claim_rows(data):
            digits = row.get("digits") if isinstance(row.get("digits"), int) else 2
            texts = (_cell(str(row.get(key, ""))) for key in ("claim", "comparison", "metric"))
            claim_table.append([link, *texts, *map(_cell, claims.claim_cells(row, digits))])
        sections += experiment_section(name, path, data, out_dir)

    titles = ["experiment", "result", *HEADLINE_COLUMNS.values(), "notes"]
    lines = [
        "# Results",
        "",
        f"Collected by `nerfvae experiment summary` from the experiment JSONs under `{results}/`"
        " (every number is copied from them; regenerate with the same command after running an "
        "experiment). Each experiment's own markdown has the full table, figure and provenance. "
        + claims.READING,
        "",
        "## Headline",
        "",
        *(table(titles, rows) if rows else ["No experiment has been run yet."]),
        "",
    ]
    if claim_table:
        titles = ["experiment", "claim", "comparison", "metric", "margin [95% interval]"]
        lines += ["## Claims", "", *table([*titles, "verdict"], claim_table), ""]
    if findings is not None and findings.is_file():
        lines += [findings.read_text().strip(), ""]
    if glance:
        titles = ["experiment", "command", "hardware", "training budget"]
        lines += ["## How each was produced", "", *table(titles, []), *glance, ""]
    lines += ["## Experiments", "", *([*missing, ""] if missing else []), *sections]
    if others:
        lines += ["## Other results", ""]
        for folder in others:
            readme = folder / "README.md"
            target = readme if readme.exists() else sorted(folder.glob("*.md"))[0]
            lines.append(f"* [{folder.name}]({_link(target, out_dir)})")
        lines.append("")
    return "\n".join(lines)
