"""``nerfvae experiment summary``: collect every experiment's JSON under ``docs/results/*/`` into
one ``docs/results/README.md``.

For each experiment (views, cameras, ablation, cost, uncertainty, samples, then any other folder
holding ``NAME/NAME.json``, or a variant of a known experiment written with ``--out``, such as
``cost-long/cost.json``) it writes the command that produced it, the hardware and the training
budget of its runs (all from the JSON's ``provenance`` block) and a link to the experiment's own
markdown; missing experiments get a line "not run yet: <command>". The headline table copies key
numbers — whole-image and object-pixel PSNR beside the trivial predictors' PSNR — from the JSONs
and never computes or invents one:

* a JSON with a ``headline`` list gives its rows as they are: each a dict with ``label`` and any of
  ``psnr``, ``object_psnr``, ``baseline_mean_train_psnr``, ``baseline_mean_context_psnr`` and a
  free-text ``note`` (the convention of the cameras and ablation experiments; other experiments
  may adopt it);
* otherwise every nested dict with a numeric ``psnr`` (e.g. the ``results[K][id|ood]`` entries of
  an embedded ``nerfvae eval`` result) gives a row labelled by its path, up to
  ``MAX_ROWS_PER_EXPERIMENT``;
* a JSON with neither is listed with its command and link only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

from nerfvae.errors import ConfigError, NerfVAEError
from nerfvae.experiments.common import load_json
from nerfvae.experiments.markdown import format_number, markdown_header, markdown_row
from nerfvae.experiments.provenance import budget_text, command_block, commit_text, hardware_text

DESCRIPTION = "collect the experiments' JSONs under docs/results/ into docs/results/README.md"

EXPERIMENTS: dict[str, str] = {
    "views": "nerfvae experiment views ...",
    "cameras": "nerfvae experiment cameras --run RUN --gqn-run GQN_RUN --data DIR",
    "ablation": (
        "nerfvae experiment ablation --runs concat=RUN ain=RUN attention=RUN "
        "attention-global=RUN --data DIR"
    ),
    "cost": "nerfvae experiment cost ...",
    "uncertainty": "nerfvae experiment uncertainty ...",
    "samples": "nerfvae experiment samples ...",
}
"""The paper's experiments in report order, with the command that produces each (options: the
experiment's ``--help``)."""
MAX_ROWS_PER_EXPERIMENT = 8
HEADLINE_COLUMNS = (
    ("psnr", "PSNR"),
    ("object_psnr", "object PSNR"),
    ("baseline_mean_train_psnr", "mean-train-image PSNR"),
    ("baseline_mean_context_psnr", "mean-context-colour PSNR"),
)
SKIPPED_KEYS = {"provenance", "view_lists", "config", "history", "timing", "headline"}


@dataclass
class SummaryArgs:
    """Collect every experiment JSON under the results directory (docs/results/NAME/NAME.json)
    into one markdown summary: a headline table of key numbers copied from the JSONs (PSNR and
    object-pixel PSNR beside the trivial predictors'), and for each experiment the command that
    produced it, hardware and training budget, or "not run yet"."""

    results: str = "docs/results"
    """Directory holding one folder per experiment (NAME/NAME.json, NAME/NAME.md)."""
    out: str | None = None
    """Markdown file to write (default: RESULTS/README.md)."""
    findings: str | None = None
    """Hand-written reading of the numbers (which of the paper's claims hold at this budget and
    what would be needed), included verbatim after the headline table when the file exists
    (default: RESULTS/findings.md)."""


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def psnr_entries(data: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(label, entry)`` for every nested dict holding a numeric ``psnr`` (outside provenance,
    configs, histories and timings), depth first in the JSON's order."""
    if not isinstance(data, Mapping):
        return
    if _numeric(data.get("psnr")) and path:
        yield " / ".join(path), dict(data)
    for key, value in data.items():
        if key in SKIPPED_KEYS:
            continue
        if isinstance(value, Mapping):
            yield from psnr_entries(value, (*path, str(key)))


def headline_rows(data: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The rows an experiment JSON contributes to the headline table (copied, not computed) and
    how many more there were than MAX_ROWS_PER_EXPERIMENT."""
    rows: list[dict[str, Any]] = []
    headline = data.get("headline")
    if isinstance(headline, list) and headline:
        rows = [dict(row) for row in headline if isinstance(row, Mapping)]
    else:
        for label, entry in psnr_entries(data):
            rows.append({"label": label, **{key: entry.get(key) for key, _ in HEADLINE_COLUMNS}})
    return rows[:MAX_ROWS_PER_EXPERIMENT], max(0, len(rows) - MAX_ROWS_PER_EXPERIMENT)


def _link(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _cell(value: Any) -> str:
    text = format_number(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def experiment_section(name: str, path: Path, data: Mapping[str, Any], out_dir: Path) -> list[str]:
    """Markdown lines of one experiment (its JSON at ``path``): links, command, commit, hardware,
    training budget."""
    lines = [f"### {name}", ""]
    links = []
    for suffix, label in ((".md", "table"), (".png", "figure")):
        target = path.with_suffix(suffix)
        if target.exists():
            links.append(f"[{label}]({_link(target, out_dir)})")
    links.append(f"[JSON]({_link(path, out_dir)})")
    lines.append(" · ".join(links))
    lines.append("")
    if data.get("description"):
        lines += [str(data["description"]), ""]
    block = data.get("provenance")
    if not isinstance(block, Mapping):
        return [*lines, "No provenance recorded in the JSON.", ""]
    lines += [*command_block(str(block.get("command", "(command not recorded)"))), ""]
    lines.append(f"* {commit_text(block)}")
    hardware = block.get("hardware")
    lines.append(
        f"* hardware: {hardware_text(hardware) if isinstance(hardware, Mapping) else 'not recorded'}"
    )
    runs = [run for run in block.get("runs") or [] if isinstance(run, Mapping)]
    if runs:
        lines.append("* training budget:")
        lines += [f"  * `{run.get('run')}`: {budget_text(run)}" for run in runs]
    else:
        lines.append("* training budget: no trained runs recorded")
    return [*lines, ""]


def glance_row(name: str, link: str, data: Mapping[str, Any]) -> str:
    """One row of the provenance table: command, hardware and the runs' steps and minutes."""
    block = data.get("provenance")
    if not isinstance(block, Mapping):
        return f"| [{name}]({link}) | not recorded | not recorded | not recorded |"
    hardware = block.get("hardware")
    hardware_cell = hardware_text(hardware) if isinstance(hardware, Mapping) else "not recorded"
    budgets = []
    for budget in block.get("runs") or []:
        if not isinstance(budget, Mapping):
            continue
        text = f"{budget['steps']} steps" if "steps" in budget else "steps not logged"
        if budget.get("wall_minutes") is not None:
            text += f", {budget['wall_minutes']} min"
        budgets.append(f"`{Path(str(budget.get('run', '?'))).name}`: {text}")
    command = str(block.get("command", "not recorded")).replace("`", "'")
    return markdown_row(
        [
            f"[{name}]({link})",
            f"`{_cell(command)}`",
            _cell(hardware_cell),
            _cell("; ".join(budgets)) if budgets else "no trained runs",
        ]
    )


def experiment_json(folder: Path) -> Path:
    """The experiment JSON of a results folder: ``NAME/NAME.json``, or for a variant of a known
    experiment written elsewhere with ``--out`` (``cost-long/cost.json``) that experiment's JSON.
    The first path is returned when neither exists."""
    own = folder / f"{folder.name}.json"
    if own.is_file() or folder.name in EXPERIMENTS:
        return own
    variants = [
        folder / f"{name}.json" for name in EXPERIMENTS if (folder / f"{name}.json").is_file()
    ]
    return variants[0] if len(variants) == 1 else own


def collect(results: Path) -> tuple[list[str], list[Path]]:
    """Experiment names in report order (the known ones, then other folders holding an experiment
    JSON, see :func:`experiment_json`) and the folders without one (hand-written results)."""
    names = list(EXPERIMENTS)
    others: list[Path] = []
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        if folder.name in EXPERIMENTS:
            continue
        if experiment_json(folder).is_file():
            names.append(folder.name)
        elif any(folder.glob("*.md")):
            others.append(folder)
    return names, others


def summary_markdown(results: Path, out: Path, findings: Path | None = None) -> str:
    """The summary's text (see the module docstring); ``findings``, when it exists, is a
    hand-written markdown file placed after the headline table."""
    out_dir = out.parent
    names, others = collect(results)
    table = markdown_header(
        ["experiment", "result", *(title for _, title in HEADLINE_COLUMNS), "notes"]
    )
    sections: list[str] = []
    missing: list[str] = []
    glance: list[str] = []
    for name in names:
        folder = results / name
        path = experiment_json(folder)
        if not path.is_file():
            command = EXPERIMENTS.get(name, f"nerfvae experiment {name}")
            missing.append(f"* {name}: not run yet: `{command}`")
            continue
        try:
            data = load_json(path, path.name)
        except NerfVAEError as error:
            sections += [f"### {name}", "", f"Could not read `{path}`: {error}", ""]
            continue
        rows, more = headline_rows(data)
        page = path.with_suffix(".md")
        link = _link(page if page.exists() else path, out_dir)
        glance.append(glance_row(name, link, data))
        for row in rows:
            cells = [_cell(row.get(key)) for key, _ in HEADLINE_COLUMNS]
            table.append(
                markdown_row(
                    [
                        f"[{name}]({link})",
                        _cell(str(row.get("label", ""))),
                        *cells,
                        _cell(str(row.get("note", ""))),
                    ]
                )
            )
        if more:
            table.append(f"| [{name}]({link}) | … {more} more rows, see its table | | | | | |")
        if not rows:
            table.append(
                f"| [{name}]({link}) | no PSNR in the JSON, see its table | – | – | – | – | |"
            )
        sections += experiment_section(name, path, data, out_dir)

    lines = [
        "# Results",
        "",
        f"Collected by `nerfvae experiment summary` from the experiment JSONs under `{results}/`"
        " (every number is copied from them; regenerate with the same command after running an "
        "experiment). Each experiment's own markdown has the full table, figure and provenance.",
        "",
        "## Headline",
        "",
        *(table if len(table) > 2 else ["No experiment has been run yet."]),
        "",
    ]
    if findings is not None and findings.is_file():
        lines += [findings.read_text().strip(), ""]
    if glance:
        lines += [
            "## How each was produced",
            "",
            *markdown_header(["experiment", "command", "hardware", "training budget"]),
            *glance,
            "",
        ]
    lines += ["## Experiments", ""]
    if missing:
        lines += [*missing, ""]
    lines += sections
    if others:
        lines += ["## Other results", ""]
        for folder in others:
            readme = folder / "README.md"
            target = readme if readme.exists() else sorted(folder.glob("*.md"))[0]
            lines.append(f"* [{folder.name}]({_link(target, out_dir)})")
        lines.append("")
    return "\n".join(lines)


def run(argv: list[str], prog: str) -> int:
    args = tyro.cli(SummaryArgs, args=argv, prog=prog)
    results = Path(args.results)
    if not results.is_dir():
        raise ConfigError(f"--results {results}: no such directory")
    out = Path(args.out) if args.out is not None else results / "README.md"
    findings = Path(args.findings) if args.findings is not None else results / "findings.md"
    text = summary_markdown(results, out, findings)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")
    return 0
