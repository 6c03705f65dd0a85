"""An ex-post prior for sampling new scenes: a low-rank Gaussian fitted to training posteriors.

The model's prior is N(0, I). When training leaves the posteriors far from it (the shipped model's
KL is about 2,700 nats per scene), latents drawn from N(0, I) decode to murky rooms that no
posterior ever produced. Fitting a Gaussian to the encoder's posterior means over training scenes
(:class:`nerfvae.models.latent.LowRankGaussian`; "ex-post density estimation", Ghosh et al.,
2020) gives a sampling distribution that stays where real scenes lie. It changes neither the
model nor its ELBO; ``nerfvae sample --prior aggregate`` uses it.

The fit is a derived artefact of one checkpoint, cached in the run directory as
``aggregate_prior.safetensors`` (tensors ``mean``, ``basis``, ``scales``; the fit's settings and
the checkpoint's SHA-256 in the safetensors metadata), so a run directory ships its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from nerfvae.errors import CheckpointError, ConfigError
from nerfvae.evaluation.prior_cache import stored_fit, stored_or_fitted
from nerfvae.models.base import SceneModel
from nerfvae.models.latent import DiagonalGaussian, LowRankGaussian

PRIOR_FILE = "aggregate_prior.safetensors"


@dataclass(frozen=True)
class AggregateFit:
    """How an aggregate prior is fitted."""

    scenes: int | None = None
    """Training scenes whose posterior means are fitted: the first N of the train split (default:
    all of them)."""
    context_views: int = 3
    """ID views each scene is inferred from (its first ones)."""
    components: int = 32
    """Principal directions kept (the rank of the covariance)."""

    def validate(self) -> None:
        if self.context_views < 1:
            raise ConfigError(f"context_views must be >= 1, got {self.context_views}")
        if self.scenes is not None and self.scenes < 2:
            raise ConfigError(f"scenes must be >= 2, got {self.scenes}")
        if self.components < 1:
            raise ConfigError(f"components must be >= 1, got {self.components}")


@torch.no_grad()
def posteriors(
    model: SceneModel, dataset, scenes: int, context_views: int, batch: int = 8
) -> DiagonalGaussian:
    """The encoder's posteriors over latents ``[scenes, T, C]`` of the first ``scenes`` scenes of
    ``dataset`` (a :class:`nerfvae.data.loader.MultiSceneDataset`), each from its first
    ``context_views`` ID views, encoded ``batch`` scenes at a time."""
    means, log_stds = [], []
    for start in range(0, scenes, batch):
        records = [dataset.load_scene(i) for i in range(start, min(start + batch, scenes))]
        images = torch.stack([r.images[:context_views].float() / 255.0 for r in records])
        K = torch.stack([r.K[:context_views] for r in records])
        c2w = torch.stack([r.c2w[:context_views] for r in records])
        posterior = model.infer(images, K, c2w)
        means.append(posterior.mean)
        log_stds.append(posterior.log_std)
    return DiagonalGaussian(torch.cat(means), torch.cat(log_stds))


def posterior_means(
    model: SceneModel, dataset, scenes: int, context_views: int, batch: int = 8
) -> torch.Tensor:
    """The posterior means ``[scenes, T, C]`` of :func:`posteriors`."""
    return posteriors(model, dataset, scenes, context_views, batch).mean


def fit_aggregate_prior(
    model: SceneModel, dataset, fit: AggregateFit
) -> tuple[LowRankGaussian, float]:
    """Fit :class:`LowRankGaussian` to the posterior means of ``dataset``'s first scenes; returns
    it and the fraction of the means' total variance its components keep."""
    fit.validate()
    scenes = len(dataset) if fit.scenes is None else fit.scenes
    if scenes > len(dataset):
        raise ConfigError(
            f"aggregate prior: {scenes} scenes asked for, the split has {len(dataset)}"
        )
    if fit.components >= scenes:
        raise ConfigError(
            f"aggregate prior: {fit.components} components need more than {fit.components} "
            f"scenes; fitting {scenes}"
        )
    if fit.context_views > dataset.num_id_views:
        raise ConfigError(
            f"aggregate prior: {fit.context_views} context views asked for, the scenes have "
            f"{dataset.num_id_views} ID views"
        )
    latent_size = model.prior(1).mean[0].numel()
    if fit.components > latent_size:
        raise ConfigError(
            f"aggregate prior: {fit.components} components asked for, the latent has "
            f"{latent_size} values"
        )
    means = posterior_means(model, dataset, scenes, fit.context_views)
    prior = LowRankGaussian.fit(means, fit.components)
    total = means.flatten(1).double().var(0).sum().item()
    return prior, prior.scales.double().square().sum().item() / total


def save_aggregate_prior(path: Path, prior: LowRankGaussian, info: dict[str, Any]) -> None:
    """Write ``prior`` to ``path`` (safetensors) with ``info`` as JSON metadata."""
    tensors = {"mean": prior.mean, "basis": prior.basis, "scales": prior.scales}
    temporary = path.with_name(path.name + ".tmp")
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(temporary), {"info": json.dumps(info)}
    )
    temporary.replace(path)


def load_aggregate_prior(
    path: Path, latent_shape: tuple[int, int]
) -> tuple[LowRankGaussian, dict[str, Any]]:
    """Read a prior written by :func:`save_aggregate_prior`; raises CheckpointError naming the file
    when it is unreadable, lacks a tensor, has shapes that do not fit ``latent_shape`` ``(T, C)``
    or holds non-finite values."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            info = json.loads((handle.metadata() or {}).get("info", "{}"))
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"aggregate prior {path} cannot be read: {error}") from error
    if not isinstance(info, dict):
        raise CheckpointError(f"aggregate prior {path}: its metadata is not a JSON object")
    missing = {"mean", "basis", "scales"} - set(tensors)
    if missing:
        raise CheckpointError(f"aggregate prior {path} lacks tensors {sorted(missing)}")
    mean, basis, scales = tensors["mean"], tensors["basis"], tensors["scales"]
    size = latent_shape[0] * latent_shape[1]
    if (
        tuple(mean.shape) != tuple(latent_shape)
        or basis.ndim != 2
        or basis.shape[1] != size
        or tuple(scales.shape) != (basis.shape[0],)
    ):
        raise CheckpointError(
            f"aggregate prior {path} has shapes mean {tuple(mean.shape)}, basis "
            f"{tuple(basis.shape)}, scales {tuple(scales.shape)}; the model's latent is "
            f"{tuple(latent_shape)}"
        )
    if not all(torch.isfinite(t).all() for t in (mean, basis, scales)):
        raise CheckpointError(f"aggregate prior {path} holds NaN or infinite values")
    return LowRankGaussian(mean.float(), basis.float(), scales.float()), info


def run_aggregate_prior(
    run: Path, model: SceneModel, checkpoint_record: dict[str, Any]
) -> tuple[LowRankGaussian, dict[str, Any]] | None:
    """The prior and record in ``RUN/aggregate_prior.safetensors`` if it was fitted to this
    checkpoint's weights; None if there is none or it belongs to another checkpoint."""
    latent_shape = tuple(model.prior(1).mean.shape[1:])
    return stored_fit(
        Path(run) / PRIOR_FILE,
        lambda path: load_aggregate_prior(path, latent_shape),
        checkpoint_record,
    )


def aggregate_prior(
    run: Path,
    model: SceneModel,
    checkpoint_record: dict[str, Any],
    training_scenes: Callable[[], Any] | None,
    fit: AggregateFit,
    refit: bool = False,
) -> tuple[LowRankGaussian, dict[str, Any], bool]:
    """The run's aggregate prior: read from ``RUN/aggregate_prior.safetensors`` when that was
    fitted to this checkpoint's weights (whatever its fit settings, unless ``refit``), else fitted
    with ``fit`` to the dataset that ``training_scenes()`` opens (the train split; called only
    then; None forbids fitting) and saved there. Returns the prior, its record (the fit settings,
    the checkpoint it belongs to, the variance kept) and whether it was fitted now."""
    fit.validate()
    path = Path(run) / PRIOR_FILE

    def fit_and_save(dataset) -> tuple[LowRankGaussian, dict[str, Any]]:
        prior, variance_kept = fit_aggregate_prior(model, dataset, fit)
        info = {
            "checkpoint_sha256": checkpoint_record["sha256"],
            "checkpoint_step": checkpoint_record["step"],
            "scenes": len(dataset) if fit.scenes is None else fit.scenes,
            "context_views": fit.context_views,
            "components": fit.components,
            "dataset": str(dataset.root),
            "split": dataset.split,
            "variance_kept": variance_kept,
        }
        save_aggregate_prior(path, prior, info)
        return prior, info

    stored = None if refit else run_aggregate_prior(run, model, checkpoint_record)
    return stored_or_fitted(
        path, stored, training_scenes, "nerfvae sample --prior aggregate --data DIR", fit_and_save
    )
