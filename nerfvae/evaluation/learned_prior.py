"""A learned prior for sampling new scenes: a diffusion model fitted to training posteriors.

The aggregate prior (:mod:`nerfvae.evaluation.aggregate_prior`) is one Gaussian: it keeps samples
near where real scenes lie but blurs every mode of the latent distribution into one, so its
samples are averages of rooms. A denoising diffusion model over the latent
(:class:`nerfvae.models.latent_diffusion.LatentDiffusion`) is fitted the same way, after training,
to the encoder's posteriors of the training scenes (the two-stage recipe of GAUDI and SSDNeRF);
it can represent several modes, and its variational bound scores how likely a latent is, so a
held-out ELBO can use it in place of N(0, I). It changes neither the model nor its training.

The fit is a derived artefact of one checkpoint, cached in the run directory as
``learned_prior.safetensors``: the denoiser's averaged (EMA) weights and the latent normalisation
as tensors; the diffusion config, the latent shape and the fit's record (its settings, the
checkpoint's SHA-256, losses) as JSON metadata. ``nerfvae prior fit`` and ``nerfvae sample
--prior learned`` fit it; :mod:`nerfvae.evaluation.scene_priors` reads it.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from nerfvae.errors import (
    CheckpointError,
    ConfigError,
    check_config_fields,
    check_range,
)
from nerfvae.evaluation.aggregate_prior import posteriors
from nerfvae.evaluation.prior_cache import stored_fit, stored_or_fitted
from nerfvae.models.base import SceneModel
from nerfvae.models.latent_diffusion import LatentDiffusion, LatentDiffusionConfig

PRIOR_FILE = "learned_prior.safetensors"

WARMUP_STEPS = 100
"""Steps over which the learning rate ramps up linearly: Adam's first updates, taken with poor
second-moment estimates, otherwise jolt the freshly initialised denoiser."""
EVALUATION_LATENTS = 256
"""At most this many held-out (and as many training) latents are scored after the fit: enough
for a mean to a few percent, and a fixed cost whatever the split's size."""
EVALUATION_REPEATS = 8
"""Noise draws per latent in the reported denoising losses (one draw is a noisy estimate)."""


CONFIG_FIELDS_BEFORE_THEY_EXISTED = {"guidance": 1.0}
"""Diffusion config fields that priors written before the field existed lack, and the value
those priors were fitted with."""


@dataclass(frozen=True)
class LearnedPriorFit:
    """How a learned prior is fitted."""

    scenes: int | None = None
    """Training scenes whose posteriors are fitted: the first N of the train split (default: all
    of them)."""
    context_views: int = 3
    """ID views each scene is inferred from (its first ones)."""
    fit_to: Literal["posterior_samples", "means"] = "posterior_samples"
    """`posterior_samples`: each step draws z = mean + std·ε from every chosen scene's posterior,
    so the diffusion model fits the aggregate posterior (the distribution the decoder was trained
    on). `means`: it fits the posterior means only (sharper, but not what the decoder saw)."""
    steps: int = 20000
    """Optimiser steps at most (the time budget usually ends a CPU fit first)."""
    batch_size: int = 64
    """Latents per step."""
    learning_rate: float = 5e-4
    """Adam's learning rate (after a linear warm-up over the first 100 steps)."""
    time_budget_minutes: float = 25.0
    """Stop the fit (encoding the scenes included) after this many minutes; the default fits a
    `small` run's 900 training scenes in under 30 minutes on 2 CPU cores."""
    held_out_fraction: float = 0.1
    """Fraction of the chosen scenes (a seeded random subset, at least one) kept out of the fit to
    report a held-out denoising loss and NLL bound; 0 fits them all and reports none."""
    guide_steps: int = 800
    """With `diffusion.guidance` above 1: the averaged weights after this many steps become the
    autoguidance guide, the same denoiser less trained (a fit that stops earlier takes its final
    weights, and guidance then changes nothing)."""
    bound_timesteps: int = 32
    """Timesteps per latent of the Monte Carlo estimate of the reported NLL bounds."""
    seed: int = 0
    """Seed of the initial weights, the held-out split, the batches and the noise."""
    diffusion: LatentDiffusionConfig = field(default_factory=LatentDiffusionConfig)
    """The diffusion model."""

    def validate(self, where: str = "fit") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        if self.context_views < 1:
            raise ConfigError(f"context_views must be >= 1, got {self.context_views}")
        if self.scenes is not None and self.scenes < 2:
            raise ConfigError(f"scenes must be >= 2, got {self.scenes}")
        check_range(self.steps >= 1, where, "steps", ">= 1", self.steps)
        check_range(self.batch_size >= 1, where, "batch_size", ">= 1", self.batch_size)
        rate = self.learning_rate
        check_range(rate > 0, where, "learning_rate", "> 0", rate)
        budget = self.time_budget_minutes
        check_range(budget > 0, where, "time_budget_minutes", "> 0", budget)
        fraction = self.held_out_fraction
        check_range(0 <= fraction < 1, where, "held_out_fraction", "in [0, 1)", fraction)
        bound = self.bound_timesteps
        check_range(bound >= 1, where, "bound_timesteps", ">= 1", bound)
        check_range(self.guide_steps >= 1, where, "guide_steps", ">= 1", self.guide_steps)
        self.diffusion.check(f"{where}.diffusion")


class LearnedPrior:
    """A fitted diffusion prior over latents ``[T, C]``, drawn from like
    :class:`nerfvae.models.latent.LowRankGaussian` (``rsample(count, generator)``), so every
    call site takes either."""

    def __init__(
        self,
        diffusion: LatentDiffusion,
        sampling_steps: int | None = None,
        guidance: float | None = None,
    ) -> None:
        """ConfigError when ``sampling_steps`` is not in 1..the diffusion's timesteps, or when
        ``guidance`` is not 1 and the diffusion has no guide (or it is outside [1, 100])."""
        if guidance is not None:
            # the config's own bounds, then whether this prior has a guide to extrapolate from
            dataclasses.replace(diffusion.config, guidance=guidance).check("learned prior")
            check_range(
                guidance == 1.0 or diffusion.guide is not None,
                "learned prior",
                "guidance",
                "1 for this prior, which was fitted without a guide",
                guidance,
            )
        if sampling_steps is not None:
            timesteps = diffusion.config.timesteps
            check_range(
                isinstance(sampling_steps, int) and 1 <= sampling_steps <= timesteps,
                "learned prior",
                "sampling_steps",
                f"an integer in 1..{timesteps} (the prior's noise levels)",
                sampling_steps,
            )
        self.diffusion = diffusion.eval().requires_grad_(False)
        self.sampling_steps = sampling_steps
        """DDIM steps per sample (default: the diffusion config's ``sampling_steps``)."""
        self.guidance = guidance
        """Autoguidance weight (default: the diffusion config's ``guidance``)."""

    @property
    def latent_shape(self) -> tuple[int, int]:
        return self.diffusion.latent_shape

    @property
    def sampling_guidance(self) -> float:
        """The autoguidance weight samples are drawn with (1: the denoiser alone)."""
        return self.diffusion.config.guidance if self.guidance is None else self.guidance

    def rsample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` samples ``[count, T, C]``; the same ``generator`` state gives the same ones."""
        return self.diffusion.sample(count, generator, self.sampling_steps, self.guidance)

    def negative_log_likelihood_bound(
        self, latents: torch.Tensor, generator: torch.Generator | None = None, samples: int = 64
    ) -> torch.Tensor:
        """Upper bound on −log p(z), ``[N]`` nats, of ``latents [N, T, C]``
        (:meth:`LatentDiffusion.negative_log_likelihood_bound`)."""
        return self.diffusion.negative_log_likelihood_bound(latents, generator, samples)


def _held_out_count(scenes: int, fraction: float) -> int:
    if fraction == 0:
        return 0
    return min(max(1, round(scenes * fraction)), scenes - 1)


def _draw(
    means: torch.Tensor, stds: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    """Latents ``[N, T, C]``: the means, or one draw from each posterior N(means, stds²)."""
    if stds is None:
        return means
    noise = torch.randn(means.shape, generator=generator).to(means.device)
    return means + stds * noise


@torch.no_grad()
def _scores(
    diffusion: LatentDiffusion,
    means: torch.Tensor,
    stds: torch.Tensor | None,
    fit: LearnedPriorFit,
    generator: torch.Generator,
) -> dict[str, float]:
    """Denoising loss, NLL bound (nats per latent and bits per dimension) and, for comparison,
    the exact NLL under N(0, I), of up to EVALUATION_LATENTS latents drawn as in the fit."""
    means = means[:EVALUATION_LATENTS]
    stds = None if stds is None else stds[:EVALUATION_LATENTS]
    losses = [
        diffusion.loss(_draw(means, stds, generator), generator).item()
        for _ in range(EVALUATION_REPEATS)
    ]
    latents = _draw(means, stds, generator)
    bound = diffusion.negative_log_likelihood_bound(latents, generator, fit.bound_timesteps)
    dims = latents[0].numel()
    standard = 0.5 * (latents.double().square() + math.log(2 * math.pi)).flatten(1).sum(1)
    return {
        "loss": sum(losses) / len(losses),
        "nll_bound": bound.double().mean().item(),
        "bits_per_dim": bound.double().mean().item() / (dims * math.log(2)),
        "standard_nll": standard.mean().item(),
    }


def fit_to_latents(
    means: torch.Tensor,
    stds: torch.Tensor | None,
    fit: LearnedPriorFit,
    progress: bool = False,
    started: float | None = None,
) -> tuple[LearnedPrior, dict[str, Any]]:
    """Fit a :class:`LatentDiffusion` to latents ``means [N, T, C]`` (with ``stds [N, T, C]``:
    to the mixture of the Gaussians N(means, stds²), a fresh draw each step) on their device.
    ``fit.held_out_fraction`` of them are kept out and scored after. The fit stops after
    ``fit.steps`` or when ``fit.time_budget_minutes`` have passed since ``started`` (a
    ``time.monotonic()`` reading; default: now). Returns the prior (the averaged weights) and its
    record: steps, seconds, why it stopped, losses and NLL bounds."""
    fit.validate()
    started = time.monotonic() if started is None else started
    count = means.shape[0]
    if count < 2:
        raise ConfigError(f"learned prior: fitting needs at least 2 latents, got {count}")
    generator = torch.Generator().manual_seed(fit.seed)
    order = torch.randperm(count, generator=generator).to(means.device)
    held = _held_out_count(count, fit.held_out_fraction)
    train_index, held_index = order[held:], order[:held]
    train_means = means[train_index]
    train_stds = None if stds is None else stds[train_index]
    # Weights from the seed, without touching the global random state of the caller.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fit.seed)
        diffusion = LatentDiffusion(fit.diffusion, tuple(means.shape[1:])).to(means.device)
    diffusion.set_normalisation(train_means, train_stds)
    average = copy.deepcopy(diffusion).requires_grad_(False)
    # Only the denoiser trains; a guide is a copy of its average, taken below.
    trained = list(diffusion.denoiser.parameters())
    optimiser = torch.optim.Adam(trained, lr=fit.learning_rate)
    guide_step = None
    budget = 60.0 * fit.time_budget_minutes
    bar = tqdm(total=fit.steps, disable=not progress, desc="learned prior", unit="step")
    recent: collections.deque[float] = collections.deque(maxlen=100)  # the bar's running mean
    stopped_by, step = "steps", 0
    diffusion.train()
    for step in range(fit.steps):
        if time.monotonic() - started > budget:
            stopped_by = "time budget"
            break
        index = torch.randint(len(train_index), (fit.batch_size,), generator=generator)
        index = index.to(means.device)
        batch = _draw(train_means[index], None if stds is None else train_stds[index], generator)
        for group in optimiser.param_groups:
            group["lr"] = fit.learning_rate * min(1.0, (step + 1) / WARMUP_STEPS)
        loss = diffusion.loss(batch, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimiser.step()
        average.update_average(diffusion, step)
        if average.guide is not None and step + 1 == fit.guide_steps:
            average.take_guide()
            guide_step = step + 1
        recent.append(loss.item())
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", refresh=False)
    else:
        step = fit.steps
    bar.close()
    if average.guide is not None and guide_step is None:
        average.take_guide()
        guide_step = step
    average.eval()
    info: dict[str, Any] = {
        "steps": step,
        "stopped_by": stopped_by,
        "fitted_latents": len(train_index),
        "held_out_latents": held,
        "fit_to": "posterior_samples" if stds is not None else "means",
        "latent_shape": list(means.shape[1:]),
        "parameters": sum(p.numel() for p in average.denoiser.parameters()),
        "guide_step": guide_step,
        "running_loss": sum(recent) / len(recent) if recent else None,
    }
    # Scored with a generator of its own, so the numbers do not depend on the steps taken.
    scoring = torch.Generator().manual_seed(fit.seed + 1)
    size = held or EVALUATION_LATENTS  # as many training latents as held-out ones
    train_subset = None if train_stds is None else train_stds[:size]
    train_scores = _scores(average, train_means[:size], train_subset, fit, scoring)
    info.update({f"train_{key}": value for key, value in train_scores.items()})
    if held:
        held_scores = _scores(
            average, means[held_index], None if stds is None else stds[held_index], fit, scoring
        )
        info.update({f"held_out_{key}": value for key, value in held_scores.items()})
    info["seconds"] = time.monotonic() - started  # encoding (if started before it) and scoring too
    return LearnedPrior(average), info


def fit_learned_prior(
    model: SceneModel, dataset, fit: LearnedPriorFit, progress: bool = True
) -> tuple[LearnedPrior, dict[str, Any]]:
    """Fit a learned prior to the posteriors of ``dataset``'s first scenes (encoded once, without
    gradients); returns it and its record (:func:`fit_to_latents`, plus the scenes fitted)."""
    fit.validate()
    started = time.monotonic()
    scenes = len(dataset) if fit.scenes is None else fit.scenes
    if scenes > len(dataset):
        raise ConfigError(f"learned prior: {scenes} scenes asked for, the split has {len(dataset)}")
    if fit.context_views > dataset.num_id_views:
        raise ConfigError(
            f"learned prior: {fit.context_views} context views asked for, the scenes have "
            f"{dataset.num_id_views} ID views"
        )
    posterior = posteriors(model, dataset, scenes, fit.context_views)
    encoding_seconds = time.monotonic() - started
    stds = posterior.std if fit.fit_to == "posterior_samples" else None
    prior, info = fit_to_latents(posterior.mean, stds, fit, progress, started)
    info.update({"scenes": scenes, "encoding_seconds": encoding_seconds})
    return prior, info


def save_learned_prior(path: Path, prior: LearnedPrior, info: dict[str, Any]) -> None:
    """Write ``prior`` to ``path`` (safetensors: the weights and normalisation as tensors; the
    diffusion config, latent shape and ``info`` as JSON metadata), via a temporary file."""
    diffusion = prior.diffusion
    tensors = {
        key: value.detach().cpu().contiguous() for key, value in diffusion.state_dict().items()
    }
    metadata = {
        "config": json.dumps(dataclasses.asdict(diffusion.config)),
        "latent_shape": json.dumps(list(diffusion.latent_shape)),
        "info": json.dumps(info),
    }
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    save_file(tensors, str(temporary), metadata)
    temporary.replace(path)


def _config_from_metadata(path: Path, text: str) -> LatentDiffusionConfig:
    stored = json.loads(text)
    if not isinstance(stored, dict):
        raise CheckpointError(f"learned prior {path}: its config is not a JSON object")
    # Fields added after a prior was written take the value that reproduces it, not the default.
    for name, value in CONFIG_FIELDS_BEFORE_THEY_EXISTED.items():
        stored.setdefault(name, value)
    known = {item.name for item in dataclasses.fields(LatentDiffusionConfig)}
    unknown = sorted(set(stored) - known)
    if unknown:
        raise CheckpointError(f"learned prior {path}: unknown diffusion config fields {unknown}")
    config = LatentDiffusionConfig(**stored)
    try:
        config.check()
    except ConfigError as error:
        raise CheckpointError(f"learned prior {path}: its diffusion config: {error}") from None
    return config


def load_learned_prior(
    path: Path, latent_shape: tuple[int, int]
) -> tuple[LearnedPrior, dict[str, Any]]:
    """Read a prior written by :func:`save_learned_prior`; raises CheckpointError naming the file
    when it is unreadable, its metadata is not JSON or names unknown config fields, its latent is
    not ``latent_shape`` ``(T, C)``, it lacks or has extra tensors, a tensor's shape does not fit
    the config, or it holds non-finite values."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"learned prior {path} cannot be read: {error}") from error
    missing_keys = sorted({"config", "latent_shape", "info"} - set(metadata))
    if missing_keys:
        raise CheckpointError(f"learned prior {path} lacks metadata {missing_keys}")
    try:
        info = json.loads(metadata["info"])
        stored_shape = json.loads(metadata["latent_shape"])
        config = _config_from_metadata(path, metadata["config"])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"learned prior {path}: its metadata is not JSON ({error})") from None
    except TypeError as error:  # a config field of the wrong kind, e.g. a list for a number
        raise CheckpointError(f"learned prior {path}: its diffusion config: {error}") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"learned prior {path}: its metadata is not a JSON object")
    if stored_shape != list(latent_shape):
        raise CheckpointError(
            f"learned prior {path} was fitted to latents {stored_shape}; the model's latent is "
            f"{list(latent_shape)}"
        )
    # The expected tensors, from a model built without memory (a hostile config cannot make it
    # allocate before its tensors have been checked against it).
    with torch.device("meta"):
        expected = {
            k: v.shape for k, v in LatentDiffusion(config, latent_shape).state_dict().items()
        }
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"learned prior {path} does not match its config: missing tensors {missing[:4]}, "
            f"extra tensors {extra[:4]}"
        )
    for key, shape in expected.items():
        if tensors[key].shape != shape:
            raise CheckpointError(
                f"learned prior {path}: tensor {key} has shape {tuple(tensors[key].shape)}, its "
                f"config needs {tuple(shape)}"
            )
    if not all(t.is_floating_point() and torch.isfinite(t).all() for t in tensors.values()):
        raise CheckpointError(f"learned prior {path} holds NaN, infinite or non-float values")
    diffusion = LatentDiffusion(config, latent_shape)
    diffusion.load_state_dict({key: value.float() for key, value in tensors.items()})
    return LearnedPrior(diffusion), info


def _latent_shape(model: SceneModel) -> tuple[int, int]:
    return tuple(model.prior(1).mean.shape[1:])


def run_learned_prior(
    run: Path, model: SceneModel, checkpoint_record: dict[str, Any]
) -> tuple[LearnedPrior, dict[str, Any]] | None:
    """The prior and record in ``RUN/learned_prior.safetensors`` if it was fitted to this
    checkpoint's weights; None if there is none or it belongs to another checkpoint."""
    latent_shape = _latent_shape(model)
    return stored_fit(
        Path(run) / PRIOR_FILE,
        lambda path: load_learned_prior(path, latent_shape),
        checkpoint_record,
    )


def learned_prior(
    run: Path,
    model: SceneModel,
    checkpoint_record: dict[str, Any],
    training_scenes: Callable[[], Any] | None,
    fit: LearnedPriorFit,
    refit: bool = False,
    progress: bool = True,
) -> tuple[LearnedPrior, dict[str, Any], bool]:
    """The run's learned prior: read from ``RUN/learned_prior.safetensors`` when that was fitted
    to this checkpoint's weights (whatever its fit settings, unless ``refit``), else fitted with
    ``fit`` to the dataset that ``training_scenes()`` opens (the train split; called only then;
    None forbids fitting) and saved there. Returns the prior, its record (the fit settings, the
    checkpoint it belongs to, losses, NLL bounds) and whether it was fitted now."""
    fit.validate()
    path = Path(run) / PRIOR_FILE

    def fit_and_save(dataset) -> tuple[LearnedPrior, dict[str, Any]]:
        prior, info = fit_learned_prior(model, dataset, fit, progress)
        info = {
            "checkpoint_sha256": checkpoint_record["sha256"],
            "checkpoint_step": checkpoint_record["step"],
            "context_views": fit.context_views,
            "dataset": str(dataset.root),
            "split": dataset.split,
            **info,
            "fit": dataclasses.asdict(fit),
        }
        save_learned_prior(path, prior, info)
        return prior, info

    stored = None if refit else run_learned_prior(run, model, checkpoint_record)
    return stored_or_fitted(
        path, stored, training_scenes, "nerfvae prior fit --run RUN --data DIR", fit_and_save
    )


def describe_fit(info: dict[str, Any]) -> str:
    """One line on a fit's record: scenes, steps, minutes, losses and the held-out NLL bound."""
    held = info.get("held_out_latents", 0)
    guide = info.get("guide_step")
    text = (
        f"{info['scenes']} training scenes ({held} held out), {info['steps']} steps in "
        f"{info['seconds'] / 60:.1f} min"
        + ("" if guide is None else f" (autoguidance guide from step {guide})")
        + f"; denoising loss {info['train_loss']:.4f} train"
    )
    if held:
        text += (
            f", {info['held_out_loss']:.4f} held out; held-out NLL bound "
            f"{info['held_out_nll_bound']:.0f} nats per scene "
            f"({info['held_out_bits_per_dim']:.3f} bits/dim; N(0, I): "
            f"{info['held_out_standard_nll']:.0f} nats)"
        )
    return text
