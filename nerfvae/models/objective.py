"""The Gaussian-likelihood ELBO shared by NeRF-VAE and the GQN-style baseline.

Both models infer ``q(z | context)``, draw one ``z``, predict the target colours and maximise

    ELBO / dims = mean log N(target; prediction, pixel_std²) − KL(q ‖ N(0, I)) / target_dims

(per dimension, so the objective's scale does not depend on how many target rays a batch holds).
They differ only in how a latent becomes target colours (volume rendering of rays, or a
convolutional decoder of whole views): :class:`GaussianELBOModel` holds the objective and its
metrics once, and subclasses supply :meth:`GaussianELBOModel.reconstruct_targets`. The ELBO itself
is written once, in :func:`gaussian_elbo`: the training metrics, the context views' ELBO that
inference climbs and the evaluation's ELBO of held-out views all use it.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any

import torch

from nerfvae.image_metrics import psnr_from_mse
from nerfvae.models.base import Batch, SceneModel

LOG_2PI = math.log(2.0 * math.pi)
# Continuous Gaussian likelihood on colours in [0, 1]; adding log2(256) bits per dimension gives the
# usual discretised-8-bit bits/dim (density times bin width 1/256).
BITS_PER_8BIT_BIN = 8.0


def gaussian_log_likelihood(
    prediction: torch.Tensor, target: torch.Tensor, std: float
) -> torch.Tensor:
    """Per-element log N(target; prediction, std²) in nats (same shape as the inputs)."""
    return -0.5 * ((target - prediction) / std).square() - math.log(std) - 0.5 * LOG_2PI


def gaussian_elbo(log_likelihood: torch.Tensor, kl: torch.Tensor, dims: int) -> torch.Tensor:
    """The ELBO per scene ``[S]`` in nats of a scene's ``dims`` target dimensions, from
    ``log_likelihood [S, ...]`` (log N(target; prediction, pixel_std²) per element, with one
    posterior sample) and ``kl [S]`` (KL(q ‖ p) in nats).

    The elements may be a random subset of the ``dims`` dimensions (random rays): their mean
    estimates every dimension's log-likelihood, so the estimate is ``mean · dims − KL``. With
    every dimension present it is the sum itself (no rescaling, no rounding of it)."""
    per_scene = log_likelihood.flatten(1)
    if per_scene.shape[1] == dims:
        return per_scene.sum(1) - kl
    return per_scene.mean(1) * dims - kl


def nelbo_bits_per_dim(elbo: torch.Tensor, dims: int) -> torch.Tensor:
    """Negative ELBO in bits per dimension plus :data:`BITS_PER_8BIT_BIN` (the 8-bit
    discretisation offset), from the ELBO in nats of ``dims`` dimensions (any shape)."""
    return -elbo / (dims * math.log(2.0)) + BITS_PER_8BIT_BIN


def object_pixel_weights(
    target: torch.Tensor, object_mask: torch.Tensor | None, object_pixel_weight: float
) -> torch.Tensor:
    """Likelihood weights ``[..., 1]`` for target colours ``[..., 3]``: object pixels
    (``object_mask [...]``) weigh ``object_pixel_weight`` times the others, normalised to mean 1
    so the objective keeps its scale. All ones when there is no mask or the weight is 1."""
    weights = torch.ones_like(target[..., 0])
    if object_mask is not None and object_pixel_weight != 1.0:
        weights = weights + (object_pixel_weight - 1.0) * object_mask.float()
    return (weights / weights.mean()).unsqueeze(-1)


@torch.no_grad()
def elbo_metrics(
    prediction: torch.Tensor,
    target: torch.Tensor,
    log_likelihood: torch.Tensor,
    kl: torch.Tensor,
    *,
    target_dims: int,
    posterior_std: torch.Tensor,
    object_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The metrics logged with the ELBO objective, as detached scalar tensors.

    Args:
        prediction, target: colours ``[S, ..., 3]`` in [0, 1].
        log_likelihood: ``log N(target; prediction, pixel_std²)`` per element, ``[S, ..., 3]``.
        kl: ``KL(q ‖ p)`` per scene in nats, ``[S]``.
        target_dims: dimensions of a scene's whole target set, over which the KL is spread.
        posterior_std: the posterior's standard deviations (any shape; their mean is logged).
        object_mask: ``[S, ...]`` object pixels; ``object_psnr`` is logged where any is set.

    Returns:
        ``mse``, ``psnr`` (dB), ``kl_nats`` (mean over scenes), ``elbo_per_dim`` (nats),
        ``nelbo_bits_per_dim`` (negative ELBO in bits per dimension plus
        :data:`BITS_PER_8BIT_BIN`, the 8-bit discretisation offset), ``posterior_std`` and, with a
        non-empty mask, ``object_psnr``.
    """
    squared_error = (prediction - target).square()
    elbo = gaussian_elbo(log_likelihood, kl, target_dims).mean()
    metrics = {
        "mse": squared_error.mean(),
        "psnr": psnr_from_mse(squared_error.mean()),
        "kl_nats": kl.mean(),
        "elbo_per_dim": elbo / target_dims,
        "nelbo_bits_per_dim": nelbo_bits_per_dim(elbo, target_dims),
        "posterior_std": posterior_std.mean(),
    }
    if object_mask is not None and bool(object_mask.any()):
        metrics["object_psnr"] = psnr_from_mse(squared_error[object_mask.bool()].mean())
    return {name: value.detach() for name, value in metrics.items()}


@dataclass
class TargetReconstruction:
    """A model's prediction of a batch's targets from one latent sample."""

    colour: torch.Tensor
    """Predicted colours ``[S, ..., 3]`` (the final pass: the one the ELBO scores)."""
    target: torch.Tensor
    """True colours, same shape."""
    object_mask: torch.Tensor | None
    """Object pixels ``[S, ...]``, or ``None`` when the batch has no mask."""
    default_target_dims: int
    """Dimensions of a scene's target set when the caller of ``loss`` gives none."""
    auxiliary_colours: tuple[torch.Tensor, ...] = ()
    """Further predictions trained with the same weighted likelihood but not part of the ELBO
    (NeRF's coarse pass)."""
    auxiliary_loss: torch.Tensor | None = None
    """A scalar added to the training loss but not part of the ELBO (the proposal sampler's
    interlevel loss); logged as ``auxiliary_loss``."""


class GaussianELBOModel(SceneModel):
    """A :class:`SceneModel` trained by the Gaussian-likelihood ELBO with one posterior sample.

    Subclasses have ``config.pixel_std`` and implement :meth:`reconstruct_targets`."""

    config: Any

    @abc.abstractmethod
    def reconstruct_targets(
        self, batch: Batch, latent: torch.Tensor, generator: torch.Generator | None
    ) -> TargetReconstruction:
        """Predict the batch's target colours from ``latent [S, T, C]`` (with gradients); raise
        ``ValueError`` when the batch does not hold the targets this model needs."""

    def loss(
        self,
        batch: Batch,
        *,
        target_dims: int | None = None,
        kl_weight: float = 1.0,
        pixel_std: float | None = None,
        object_pixel_weight: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Negative ELBO (per dimension) with KL weight, and the metrics of :func:`elbo_metrics`.

        Args:
            batch: ``context_images [S, C, H, W, 3]``, ``context_K``, ``context_c2w`` and the
                targets the subclass reads (see its :meth:`reconstruct_targets`).
            target_dims: number of dimensions of a scene's whole target set (views × H × W × 3):
                the targets may be a random subset of it, so the likelihood per dimension is
                estimated by the subset mean and the KL is spread over this many dimensions.
                Defaults to the subclass's ``default_target_dims``.
            kl_weight: β (or the KL warm-up factor); 1 gives the ELBO.
            pixel_std: likelihood standard deviation (annealed by the trainer); default config's.
            object_pixel_weight: weight of object pixels in the training likelihood (1 = ELBO).
            generator: draws the posterior sample (and whatever the subclass samples).

        Any other keyword argument is a TypeError: a misspelled schedule is not ignored.
        """
        pixel_std = pixel_std or self.config.pixel_std
        posterior = self.infer(
            batch["context_images"], batch["context_K"], batch["context_c2w"], generator
        )
        latent = posterior.rsample(generator)
        predicted = self.reconstruct_targets(batch, latent, generator)
        if target_dims is None:
            target_dims = predicted.default_target_dims
        target = predicted.target
        log_likelihood = gaussian_log_likelihood(predicted.colour, target, pixel_std)
        kl = posterior.kl_to_standard_normal()  # [S]

        weights = object_pixel_weights(target, predicted.object_mask, object_pixel_weight)
        training_likelihood = (weights * log_likelihood).mean()
        for colour in predicted.auxiliary_colours:
            auxiliary = gaussian_log_likelihood(colour, target, pixel_std)
            training_likelihood = training_likelihood + (weights * auxiliary).mean()
        loss = -training_likelihood + kl_weight * kl.mean() / target_dims
        if predicted.auxiliary_loss is not None:
            loss = loss + predicted.auxiliary_loss
        metrics = elbo_metrics(
            predicted.colour,
            target,
            log_likelihood,
            kl,
            target_dims=target_dims,
            posterior_std=posterior.std,
            object_mask=predicted.object_mask,
        )
        if predicted.auxiliary_loss is not None:
            metrics["auxiliary_loss"] = predicted.auxiliary_loss.detach()
        return {"loss": loss, **metrics}
