"""``nerfvae prior``: priors fitted to a trained run's posteriors (``nerfvae prior fit ...``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from nerfvae.cli.common import subcommand_usage, usage_exit_status
from nerfvae.evaluation.learned_prior import LearnedPriorFit
from nerfvae.precision import ThreadsOption, use_threads

DESCRIPTION = "fit a learned prior (a diffusion model over the latent) to a run's posteriors"


@dataclass
class FitArgs:
    """Fit the run's learned prior: a small diffusion model over the latent, fitted to the
    encoder's posteriors of the training scenes of --data, and cache it in
    RUN/learned_prior.safetensors for the checkpoint (docs/evaluation.md). A run that already has
    one for the checkpoint is reported, not fitted again (unless --refit). `nerfvae sample --prior
    learned`, the viewer and `export mesh --prior-sample` draw new scenes from it."""

    run: str
    """Run directory (from `nerfvae train`)."""
    data: str
    """Dataset directory whose train split is fitted."""
    checkpoint: str | None = None
    """Checkpoint JSON to load (default: the run's newest)."""
    fit: LearnedPriorFit = field(default_factory=LearnedPriorFit)
    """How the prior is fitted."""
    refit: bool = False
    """Fit again even if the run has a learned prior for its checkpoint."""
    progress: bool = True
    """Show a progress bar of the fit."""
    machine: tyro.conf.OmitArgPrefixes[ThreadsOption] = field(default_factory=ThreadsOption)
    """How the command uses this machine."""


def fit(argv: list[str], prog: str) -> int:
    args = tyro.cli(FitArgs, args=argv, prog=prog)
    args.fit.validate()
    use_threads(args.machine.threads)
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.evaluation.learned_prior import PRIOR_FILE, describe_fit, learned_prior
    from nerfvae.training.loading import load_trained_model

    model, _, record = load_trained_model(args.run, args.checkpoint)

    def training_scenes() -> MultiSceneDataset:
        dataset = MultiSceneDataset(args.data, "train")
        print(
            f"fitting the learned prior to the training scenes of {args.data} "
            f"(at most {args.fit.time_budget_minutes:g} min)"
        )
        return dataset

    _, info, fitted = learned_prior(
        args.run, model, record, training_scenes, args.fit, args.refit, args.progress
    )
    path = Path(args.run) / PRIOR_FILE
    print(f"learned prior {'fitted now' if fitted else 'read from the run'}: {describe_fit(info)}")
    print(f"{'wrote' if fitted else 'kept'} {path} (checkpoint step {info['checkpoint_step']})")
    return 0


@dataclass(frozen=True)
class Subcommand:
    description: str
    """One line for the usage text."""
    run: Callable[[list[str], str], int]
    """``run(argv, prog) -> exit status``."""


SUBCOMMANDS: dict[str, Subcommand] = {
    "fit": Subcommand("fit the learned prior to the training posteriors (cached in the run)", fit),
}


def _usage(prog: str) -> str:
    descriptions = {name: command.description for name, command in SUBCOMMANDS.items()}
    return subcommand_usage(
        prog, descriptions, placeholder="<what>", heading="what", help_target="fit"
    )


def run(argv: list[str], prog: str) -> int:
    status = usage_exit_status(argv, _usage(prog))
    if status is not None:
        return status
    if argv[0] not in SUBCOMMANDS:
        print(f"{prog}: unknown subcommand {argv[0]!r}\n\n{_usage(prog)}", file=sys.stderr)
        return 2
    return SUBCOMMANDS[argv[0]].run(argv[1:], f"{prog} {argv[0]}")
