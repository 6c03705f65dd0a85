"""``nerfvae experiment summary``: collect every experiment's JSON under ``docs/results/*/`` into
one ``docs/results/README.md`` (:mod:`nerfvae.experiment_reports.summary` writes it; this module
adds the command line and, for older JSONs without ``claims`` rows, each experiment's own reading
of its saved results)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

from nerfvae.errors import ConfigError
from nerfvae.experiment_reports.summary import summary_markdown
from nerfvae.experiments.common import load_json

DESCRIPTION = "collect the experiments' JSONs under docs/results/ into docs/results/README.md"


@dataclass
class SummaryArgs:
    """Collect every experiment JSON under the results directory (NAME/NAME.json) into one
    markdown summary: a headline table of numbers copied from the JSONs (PSNR and object-pixel
    PSNR beside the trivial predictors'), and per experiment its command, hardware and training
    budget, or "not run yet"."""

    results: str = "docs/results"
    """Directory holding one folder per experiment (NAME/NAME.json, NAME/NAME.md)."""
    out: str | None = None
    """Markdown file to write (default: RESULTS/README.md)."""
    findings: str | None = None
    """Hand-written reading of the numbers, included verbatim after the headline table when the
    file exists (default: RESULTS/findings.md)."""


def claim_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The claims an experiment JSON states: its ``claims`` rows, or for an older views, cameras
    or ablation JSON the rows its experiment reads from the saved results (margins of the means,
    no interval); [] for other experiments or a JSON whose results cannot be read."""
    stored = data.get("claims")
    if isinstance(stored, list):
        return [dict(row) for row in stored if isinstance(row, Mapping)]
    experiment = data.get("experiment")
    try:
        if experiment == "views":
            from nerfvae.experiments.context_views import views_claims

            return views_claims(dict(data))
        if experiment == "cameras":
            from nerfvae.experiments.ood_cameras import cameras_claims

            return cameras_claims(data)
        if experiment == "ablation":
            from nerfvae.experiments.ablation import ablation_claims

            return ablation_claims(data)
    except (KeyError, TypeError, AttributeError, ValueError):
        return []
    return []


def run(argv: list[str], prog: str) -> int:
    args = tyro.cli(SummaryArgs, args=argv, prog=prog)
    results = Path(args.results)
    if not results.is_dir():
        raise ConfigError(f"--results {results}: no such directory")
    out = Path(args.out) if args.out is not None else results / "README.md"
    findings = Path(args.findings) if args.findings is not None else results / "findings.md"
    text = summary_markdown(results, out, findings, load_json, claim_rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")
    return 0
