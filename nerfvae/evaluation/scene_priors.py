"""Which distribution new scenes are drawn from: one choice for `sample`, the demo, the viewer's
"new scene" button and `export mesh --prior-sample`.

Three priors can sample a latent ``z [T, C]``:

- ``standard``: the model's own prior N(0, I) (the one in the ELBO);
- ``aggregate``: the low-rank Gaussian fitted to training posteriors
  (:mod:`nerfvae.evaluation.aggregate_prior`, ``RUN/aggregate_prior.safetensors``);
- ``learned``: the diffusion model fitted to training posteriors
  (:mod:`nerfvae.evaluation.learned_prior`, ``RUN/learned_prior.safetensors``).

``auto`` takes the best one the run has for its checkpoint — learned, else aggregate, else
standard — so a run directory that ships a fitted prior samples from it without a flag. The fitted
priors are only read here, never fitted: ``nerfvae prior fit`` and ``nerfvae sample --prior
aggregate`` fit them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from nerfvae.errors import ConfigError
from nerfvae.evaluation.aggregate_prior import PRIOR_FILE as AGGREGATE_FILE
from nerfvae.evaluation.aggregate_prior import run_aggregate_prior
from nerfvae.evaluation.learned_prior import PRIOR_FILE as LEARNED_FILE
from nerfvae.evaluation.learned_prior import LearnedPrior, run_learned_prior
from nerfvae.models import DiagonalGaussian
from nerfvae.models.base import SceneModel

PriorChoice = Literal["auto", "standard", "aggregate", "learned"]
PRIOR_CHOICES: tuple[str, ...] = ("auto", "standard", "aggregate", "learned")
FITTED_PRIORS = (
    ("learned", run_learned_prior, LEARNED_FILE, "nerfvae prior fit --run {run} --data DIR"),
    (
        "aggregate",
        run_aggregate_prior,
        AGGREGATE_FILE,
        "nerfvae sample --run {run} --data DIR --prior aggregate",
    ),
)
"""The fitted priors: name, reader of the run's cached fit, its file, the command that fits it."""


class LatentSampler(Protocol):
    def rsample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` latents ``[count, T, C]``."""
        ...


class StandardPrior:
    """The model's prior N(0, I) with the same ``rsample(count, generator)`` as the fitted ones."""

    def __init__(self, model: SceneModel) -> None:
        self.model = model

    def rsample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        # Drawn on the CPU whatever the model's device, so a seed gives the same scene on any
        # machine and every prior takes the same CPU generator.
        prior = self.model.prior(count)
        return DiagonalGaussian(prior.mean.cpu(), prior.log_std.cpu()).rsample(generator)


@dataclass(frozen=True)
class ScenePrior:
    """A prior chosen for sampling new scenes: ``name`` is standard | aggregate | learned."""

    name: str
    sampler: LatentSampler
    info: dict[str, Any]

    def rsample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` latents ``[count, T, C]`` (on the CPU when ``generator`` is a CPU one)."""
        return self.sampler.rsample(count, generator)

    def describe(self) -> str:
        return {
            "standard": "the model's prior N(0, I)",
            "aggregate": "the aggregate prior (a Gaussian fitted to training posteriors)",
            "learned": "the learned prior (a diffusion model fitted to training posteriors)",
        }[self.name]


def scene_prior(
    run: str | Path,
    model: SceneModel,
    checkpoint_record: dict[str, Any],
    choice: str = "auto",
    guidance: float | None = None,
) -> ScenePrior:
    """The prior ``choice`` of ``run`` for the loaded checkpoint (``checkpoint_record`` from
    :func:`nerfvae.training.loading.load_trained_model`). ``auto``: learned, else aggregate,
    else standard, whichever the run has for this checkpoint. Asking for a fitted prior the run
    lacks is a ConfigError saying how to fit it. ``guidance`` sets a learned prior's
    autoguidance weight (default: its own; ConfigError where the prior cannot take it)."""
    if choice not in PRIOR_CHOICES:
        raise ConfigError(f"--prior {choice!r}: choose from {', '.join(PRIOR_CHOICES)}")
    run = Path(run)
    for name, read, file, fit_command in FITTED_PRIORS:  # in order of preference for `auto`
        if choice not in ("auto", name):
            continue
        stored = read(run, model, checkpoint_record)
        if stored is not None:
            return with_guidance(ScenePrior(name, *stored), guidance)
        if choice == name:
            raise ConfigError(
                f"--prior {name}: {run / file} is missing or was fitted to another checkpoint; "
                f"fit it with `{fit_command.format(run=run)}`"
            )
    return ScenePrior("standard", StandardPrior(model), {})


def with_guidance(prior: ScenePrior, guidance: float | None) -> ScenePrior:
    """``prior`` with a learned prior's autoguidance weight set to ``guidance`` (None: as it is;
    other priors unchanged). ConfigError where the learned prior cannot take the weight."""
    if prior.name != "learned" or guidance is None:
        return prior
    learned = prior.sampler
    return ScenePrior(
        prior.name, LearnedPrior(learned.diffusion, learned.sampling_steps, guidance), prior.info
    )


def prior_sample(prior: LatentSampler, index: int, seed: int = 0) -> torch.Tensor:
    """Latent ``[1, T, C]`` of sample ``index`` of ``seed`` from ``prior``: the same scene as
    sample ``index`` of ``nerfvae sample --seed SEED`` with the same prior (one draw of
    ``index + 1`` latents, in order, from a CPU generator)."""
    if index < 0:
        raise ConfigError(f"--prior-sample must be >= 0, got {index}")
    generator = torch.Generator().manual_seed(seed)
    return prior.rsample(index + 1, generator)[index : index + 1]


def prior_samplers(
    run: str | Path,
    model,
    record: dict[str, Any],
    names: list[str],
    guidance: float | None = None,
) -> tuple[dict[str, ScenePrior], list[str]]:
    """The priors ``names`` that the run has for its checkpoint (``standard`` always; the learned
    one at autoguidance weight ``guidance``, default its own), and a sentence for each one it
    lacks."""
    chosen: dict[str, ScenePrior] = {}
    missing = []
    for name in names:
        try:
            prior = scene_prior(run, model, record, name)
        except ConfigError as error:
            missing.append(f"{name} prior skipped: {error}")
            continue
        chosen[name] = with_guidance(prior, guidance)  # a bad weight is an error
    return chosen, missing
