"""``nerfvae experiment NAME``: the paper's experiments, each writing JSON, a figure and a markdown
table under ``docs/results/NAME/`` (see docs/results/README.md)."""

from __future__ import annotations

import importlib

from nerfvae.cli.common import (
    TEST_TIME_FLAGS,
    replace_deprecated_flags,
    subcommand_usage,
    usage_exit_status,
)

DESCRIPTION = "the paper's experiments (views sweep, cameras, ablation, cost, uncertainty, samples)"

# name -> module; each module has DESCRIPTION and run(argv, prog) like a command module.
EXPERIMENTS: dict[str, str] = {
    "views": "nerfvae.experiments.context_views",
    "cost": "nerfvae.experiments.cost",
    "uncertainty": "nerfvae.experiments.uncertainty",
    "samples": "nerfvae.experiments.samples",
    "cameras": "nerfvae.experiments.ood_cameras",
    "ablation": "nerfvae.experiments.ablation",
    "summary": "nerfvae.experiments.summary",
}


def run(argv: list[str], prog: str) -> int:
    descriptions = {
        name: getattr(importlib.import_module(module), "DESCRIPTION", "")
        for name, module in EXPERIMENTS.items()
    }
    usage = subcommand_usage(
        prog,
        descriptions,
        placeholder="<experiment>",
        heading="experiments",
        help_target="<experiment>",
    )
    status = usage_exit_status(argv, usage)
    if status is not None:
        return status
    name, rest = argv[0], argv[1:]
    if name not in EXPERIMENTS:
        print(f"{prog}: unknown experiment {name!r}\n\n{usage}")
        return 2
    module = importlib.import_module(EXPERIMENTS[name])
    rest = replace_deprecated_flags(rest, TEST_TIME_FLAGS, f"{prog} {name}")
    return int(module.run(rest, prog=f"{prog} {name}") or 0)
