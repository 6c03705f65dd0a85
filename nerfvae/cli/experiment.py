"""``nerfvae experiment NAME``: the paper's experiments, each writing JSON, a figure and a markdown
table under ``docs/results/NAME/`` (see docs/results/README.md)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from nerfvae.cli.common import (
    TEST_TIME_FLAGS,
    replace_deprecated_flags,
    subcommand_usage,
    usage_exit_status,
)

DESCRIPTION = "the paper's experiments (views sweep, cameras, ablation, cost, uncertainty, samples)"

# name -> module, or MODULE:PART for a second experiment of a module: the module has DESCRIPTION
# and run(argv, prog) like a command module, or PART_DESCRIPTION and run_PART(argv, prog).
EXPERIMENTS: dict[str, str] = {
    "views": "nerfvae.experiments.context_views",
    "cost": "nerfvae.experiments.context_views:cost",
    "uncertainty": "nerfvae.experiments.uncertainty",
    "samples": "nerfvae.experiments.samples",
    "cameras": "nerfvae.experiments.ood_cameras",
    "ablation": "nerfvae.experiments.ablation",
    "summary": "nerfvae.experiments.summary",
}


def _experiment(name: str) -> tuple[str, Callable[..., int]]:
    """The experiment's one-line description and its ``run(argv, prog)``."""
    module_name, _, part = EXPERIMENTS[name].partition(":")
    module = importlib.import_module(module_name)
    if not part:
        return module.DESCRIPTION, module.run
    return getattr(module, f"{part.upper()}_DESCRIPTION"), getattr(module, f"run_{part}")


def run(argv: list[str], prog: str) -> int:
    descriptions = {name: _experiment(name)[0] for name in EXPERIMENTS}
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
    rest = replace_deprecated_flags(rest, TEST_TIME_FLAGS, f"{prog} {name}")
    return int(_experiment(name)[1](rest, prog=f"{prog} {name}") or 0)
