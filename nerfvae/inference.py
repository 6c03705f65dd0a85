"""Inference: "this scene from these views" — the one entry point is :func:`infer_scene` (one
scene, any of its views) and its batched form :func:`infer_posterior` (``[scenes, views]``).

A posterior q(z | context) over a scene's latent is made in up to three stages:

1. **The encoder** (amortized inference): one forward pass of the model's ``infer`` for any scene,
   at the price of an amortisation gap.
2. **Learned iterative inference** (Marino et al., 2018), part of ``infer`` for a NeRF-VAE trained
   with ``--nerfvae.iterative-inference-steps T``: a trained network
   (:class:`nerfvae.models.nerfvae.IterativeInferenceUpdate`) updates the posterior T times from
   the gradient of its context-view ELBO. It is part of the model (trained with it, saved in its
   checkpoints), so it lives in ``models/``; 0 steps in every shipped config.
3. **Test-time refinement** (semi-amortized inference, Kim et al., 2018; ``--test-time.steps N``
   of eval, render, export and demo): the posterior is the starting point of N Adam steps on the
   context views' own ELBO (:meth:`nerfvae.models.ray_model.RaySceneModel.context_elbo`), with
   the model frozen. Only the posterior's parameters (mean and log-std of every latent token)
   move, and the KL to the prior stays in the objective, so the result is still a posterior over
   ``z`` that can be sampled and rendered from any camera. It runs an optimiser, which models
   never do, hence here and not in ``models/``.

A latent that does not come from views is a prior sample
(:func:`nerfvae.evaluation.scene_priors.prior_sample`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nerfvae.errors import ConfigError
from nerfvae.models.base import SceneModel
from nerfvae.models.latent import LOG_STD_MAX, LOG_STD_MIN, DiagonalGaussian
from nerfvae.models.ray_model import RaySceneModel


@dataclass(frozen=True)
class RefinementConfig:
    """Test-time refinement of q(z | context) (0 steps: the encoder's posterior as it is).

    The commands take it as ``--test-time.steps``, ``--test-time.rays-per-scene`` and
    ``--test-time.learning-rate``; results record it under ``"refinement"``."""

    steps: int = 0
    """Adam steps on the context views' ELBO after the encoder; 0 turns refinement off."""
    rays_per_scene: int = 512
    """Random context pixels per scene and step."""
    learning_rate: float = 0.01
    """Adam's step size on the posterior mean and log-std (0.01 gains on held-out views from one
    context view and from several; larger steps fit a single view at the expense of the geometry
    behind it: docs/evaluation.md)."""

    def validate(self) -> None:
        if self.steps < 0:
            raise ConfigError(f"refine steps must be >= 0, got {self.steps}")
        if self.rays_per_scene < 1:
            raise ConfigError(f"refine rays_per_scene must be >= 1, got {self.rays_per_scene}")
        if not self.learning_rate > 0:  # also rejects NaN
            raise ConfigError(f"refine learning_rate must be > 0, got {self.learning_rate}")

    def to_json(self) -> dict[str, float | int]:
        return {
            "steps": self.steps,
            "rays_per_scene": self.rays_per_scene,
            "learning_rate": self.learning_rate,
        }


def check_refinable(model: SceneModel, config: RefinementConfig) -> None:
    """Raise ConfigError unless ``config`` is valid and, when it has steps, ``model`` can be
    refined (it renders rays: NeRF-VAE, not the GQN baseline). Callers that run a long job call
    this first, so a bad setting fails before any work."""
    config.validate()
    if config.steps > 0 and not isinstance(model, RaySceneModel):
        raise ConfigError(
            f"test-time refinement needs a model that renders rays (NeRF-VAE); "
            f"{type(model).__name__} does not"
        )


def refine_posterior(
    model: SceneModel,
    posterior: DiagonalGaussian,
    context_images: torch.Tensor,
    context_K: torch.Tensor,
    context_c2w: torch.Tensor,
    config: RefinementConfig,
    generator: torch.Generator | None = None,
) -> DiagonalGaussian:
    """``posterior`` (latents ``[S, T, C]``) after ``config.steps`` Adam steps on the ELBO of the
    context views (``images [S, V, H, W, 3]`` in [0, 1], ``K [S, V, 3, 3]``, ``c2w [S, V, 4, 4]``).

    Scenes are refined together but independently (the summed ELBO has a separate gradient per
    scene). The model's weights are frozen meanwhile (their ``requires_grad`` and the model's
    train/eval mode are restored afterwards);
    the rays are sampled with the stratified jitter of training so that the latent does not fit
    one fixed set of sample points. Raises ConfigError for a model that cannot render rays (GQN)
    or a bad config, and when the ELBO stops being finite (too large a learning rate).
    """
    check_refinable(model, config)
    if config.steps == 0:
        return posterior
    context_elbo = model.context_elbo
    mean = posterior.mean.detach().clone().requires_grad_(True)
    log_std = posterior.log_std.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([mean, log_std], lr=config.learning_rate)
    pixel_dims = context_images[0].numel()
    was_training = model.training
    # Frozen weights: autograd then keeps only what the posterior's gradient needs (no activations
    # saved for weight gradients), which cuts the refinement's memory without changing a number.
    weights_need_grad = [(p, p.requires_grad) for p in model.parameters()]
    model.requires_grad_(False)
    model.train()
    try:
        with torch.enable_grad():
            for step in range(config.steps):
                clamped = DiagonalGaussian(mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX))
                elbo = context_elbo(
                    clamped,
                    context_images,
                    context_K,
                    context_c2w,
                    config.rays_per_scene,
                    generator,
                )
                if not torch.isfinite(elbo).all():
                    raise ConfigError(
                        f"test-time refinement: the context ELBO is not finite at step {step} "
                        f"(learning rate {config.learning_rate}; try a smaller one)"
                    )
                # per pixel value, so the step size does not depend on image size or K
                loss = -elbo.sum() / pixel_dims
                mean.grad, log_std.grad = torch.autograd.grad(loss, [mean, log_std])
                optimiser.step()
    finally:
        model.train(was_training)
        for parameter, needed in weights_need_grad:
            parameter.requires_grad_(needed)
    return DiagonalGaussian(mean.detach(), log_std.detach().clamp(LOG_STD_MIN, LOG_STD_MAX))


def infer_posterior(
    model: SceneModel,
    context_images: torch.Tensor,
    context_K: torch.Tensor,
    context_c2w: torch.Tensor,
    refinement: RefinementConfig | None = None,
    generator: torch.Generator | None = None,
) -> DiagonalGaussian:
    """``model.infer`` on the context views, then :func:`refine_posterior` when ``refinement``
    asks for steps. Shapes as in :meth:`nerfvae.models.base.SceneModel.infer`."""
    posterior = model.infer(context_images, context_K, context_c2w, generator=generator)
    if refinement is None or refinement.steps == 0:
        return posterior
    return refine_posterior(
        model, posterior, context_images, context_K, context_c2w, refinement, generator
    )


def infer_scene(
    model: SceneModel,
    images: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    context: list[int],
    refinement: RefinementConfig | None = None,
    generator: torch.Generator | None = None,
) -> DiagonalGaussian:
    """Posterior over one scene's latent (``[1, T, C]``, on the model's device) from its views
    ``context`` of ``images [V, H, W, 3]`` (uint8 or float in [0, 1]), ``K [V, 3, 3]``,
    ``c2w [V, 4, 4]``: :func:`infer_posterior` of that one scene."""
    device = model.scene_min.device
    chosen = images[context]
    chosen = chosen.float() / 255.0 if chosen.dtype == torch.uint8 else chosen.float()
    with torch.no_grad():  # the encoder's pass; refinement turns gradients on where it needs them
        return infer_posterior(
            model,
            chosen[None].to(device),
            K[context][None].float().to(device),
            c2w[context][None].float().to(device),
            refinement,
            generator,
        )


def check_scene_index(index: int, num_scenes: int, split: str) -> None:
    """Raise ConfigError unless ``--scene index`` names one of the split's ``num_scenes``."""
    if not 0 <= index < num_scenes:
        raise ConfigError(
            f"--scene {index}: split {split!r} has {num_scenes} scenes (0..{num_scenes - 1})"
        )
