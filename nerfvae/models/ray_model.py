"""The contract of models that render rays (NeRF-VAE): a latent-conditioned field, volume rendered.

Beyond :class:`nerfvae.models.base.SceneModel`, a :class:`RaySceneModel` renders any rays of a
scene (``render``), exposes its field as a rendering callback (``field``, which the viewer's cheap
preview renders with fewer samples) and the settings of its renderer (``sampling``,
``background``), and gives the ELBO of a scene's own context views (``context_elbo``), which the
learned iterative inference and test-time refinement climb. Whole views, the training targets
and the scene box's ray bounds follow from ``render`` here, once for every ray model.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nerfvae.geometry import random_pixel_rays, ray_box_intersection
from nerfvae.models.base import Batch, render_whole_views
from nerfvae.models.latent import DiagonalGaussian
from nerfvae.models.objective import (
    GaussianELBOModel,
    TargetReconstruction,
    gaussian_elbo,
    gaussian_log_likelihood,
)
from nerfvae.rendering import (
    DensityFn,
    DensityGridConfig,
    RaySamplingConfig,
    RenderOutput,
    bake_density_grid,
)

FieldFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(points [S, R, N, 3], directions [S, R, N, 3]) -> (density [S, R, N], colour [S, R, N, 3])``."""


def shared_grid_sampling(options: dict[str, Any], scenes: int) -> dict[str, Any]:
    """:meth:`RaySceneModel.grid_sampling` of one latent ``[1, T, C]`` (a posterior mean) for
    ``scenes`` latents (its samples): all rendered at the positions its one grid places, so their
    spread is the field's and not the quadrature's. ``{}`` stays ``{}``."""
    if not options:
        return options
    return {**options, "proposal_density": options["proposal_density"].expand(scenes)}


class RaySceneModel(GaussianELBOModel):
    """A :class:`GaussianELBOModel` whose latent conditions a field rendered along rays."""

    background: torch.Tensor
    """``[3]`` buffer: the colour seen where a ray leaves the scene box without hitting anything."""
    scene_function: nn.Module
    """The network shared by all scenes, f(x, d | z) -> (density, colour), that ``field`` queries
    (its parameters are the "scene function" of parameter counts and mesh export)."""

    @property
    @abc.abstractmethod
    def sampling(self) -> RaySamplingConfig:
        """How the renderer places samples along each ray."""

    @abc.abstractmethod
    def render(
        self,
        latent: torch.Tensor,
        origins: torch.Tensor,
        directions: torch.Tensor,
        near: torch.Tensor | None = None,
        far: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        sampling: RaySamplingConfig | None = None,
        proposal_density: DensityFn | None = None,
    ) -> RenderOutput:
        """Render rays ``origins, directions [S, R, 3]`` of scenes with latents ``[S, T, C]``.

        ``near, far [S, R]`` default to the rays' intersection with the scene box; ``sampling``
        to the model's own (:attr:`sampling`; a cheaper one for previews). ``proposal_density``
        places the field's samples instead of the model's own proposal, with ``sampling.sampler
        == "proposal"`` (a density grid baked from the same latent:
        :mod:`nerfvae.rendering.density_grid`)."""

    @abc.abstractmethod
    def field(self, latent: torch.Tensor) -> FieldFn:
        """The field of scenes with ``latent [S, T, C]`` as a rendering callback (:data:`FieldFn`)."""

    def samples_from_grid(self, config: DensityGridConfig) -> bool:
        """Whether :meth:`grid_sampling` with ``config`` bakes a grid (see there)."""
        return config.enabled and self.sampling.sampler != "proposal"

    def grid_sampling(self, latent: torch.Tensor, config: DensityGridConfig) -> dict[str, Any]:
        """Keyword arguments of :meth:`render` and :meth:`render_views` that run the field at
        ``config.field_samples`` samples per ray, placed by a density grid baked once from
        ``latent [S, T, C]`` (:mod:`nerfvae.rendering.density_grid`): bake once, then render
        any number of views of these scenes (:func:`shared_grid_sampling`: of samples of one
        posterior). ``{}`` (the model's own sampling) when the grid is off or the model samples
        with its own proposal density, which is cheaper still."""
        if not self.samples_from_grid(config):
            return {}
        with torch.no_grad():
            grid = bake_density_grid(
                self.field(latent), self.scene_min, self.scene_max, latent.shape[0],
                config.resolution,
            )  # fmt: skip
        return {"sampling": config.sampling(self.sampling), "proposal_density": grid}

    def ray_bounds(
        self, origins: torch.Tensor, directions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Near/far ``[S, R]`` of rays clipped to the scene box (zero length where they miss it)."""
        near, far, _ = ray_box_intersection(origins, directions, self.scene_min, self.scene_max)
        return near, far

    @torch.no_grad()
    def render_views(
        self,
        latent: torch.Tensor,
        K: torch.Tensor,
        c2w: torch.Tensor,
        height: int,
        width: int,
        chunk_rays: int = 4096,
        *,
        sampling: RaySamplingConfig | None = None,
        proposal_density: DensityFn | None = None,
    ) -> dict[str, torch.Tensor]:
        """Render whole views: ``K [S, V, 3, 3]``, ``c2w [S, V, 4, 4]`` -> ``colour [S, V, H, W, 3]``,
        ``depth [S, V, H, W]`` (expected distance along the ray), ``opacity [S, V, H, W]``;
        ``sampling`` and ``proposal_density`` as in :meth:`render`."""
        return render_whole_views(
            lambda o, d, n, f: self.render(
                latent, o, d, n, f, sampling=sampling, proposal_density=proposal_density
            ),
            self.ray_bounds,
            K,
            c2w,
            height,
            width,
            chunk_rays,
        )

    def context_elbo(
        self,
        posterior: DiagonalGaussian,
        images: torch.Tensor,
        K: torch.Tensor,
        c2w: torch.Tensor,
        rays_per_scene: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """ELBO of the views ``images [S, V, H, W, 3]`` (``K [S, V, 3, 3]``, ``c2w [S, V, 4, 4]``)
        under ``posterior``, per scene ``[S]`` in nats: one reparameterised sample ``z ~ q`` and
        ``rays_per_scene`` random pixels, their mean log-likelihood scaled to all ``V·H·W·3`` pixel
        values, minus KL(q ‖ p). Differentiable w.r.t. the posterior's parameters."""
        origins, directions, target = random_pixel_rays(images, K, c2w, rays_per_scene, generator)
        latent = posterior.rsample(generator)
        colour = self.render(latent, origins, directions, generator=generator).final.colour
        log_likelihood = gaussian_log_likelihood(colour, target, self.config.pixel_std)
        return gaussian_elbo(log_likelihood, posterior.kl_to_standard_normal(), images[0].numel())

    def reconstruct_targets(
        self, batch: Batch, latent: torch.Tensor, generator: torch.Generator | None
    ) -> TargetReconstruction:
        """Render the batch's random target rays (the ELBO of :meth:`loss` on them).

        ``batch``: ``target_origins / target_directions / target_colours [S, R, 3]``,
        ``target_object_mask [S, R]`` (optional). The default ``target_dims`` is the context
        views' size; a coarse pass before a fine one is supervised too (an auxiliary colour), and
        a proposal sampler's interlevel loss is added to the training loss.
        """
        output = self.render(
            latent, batch["target_origins"], batch["target_directions"], generator=generator
        )
        has_coarse_colour = output.coarse is not None and output.fine is not None
        return TargetReconstruction(
            colour=output.final.colour,
            target=batch["target_colours"],
            object_mask=batch.get("target_object_mask"),
            default_target_dims=int(batch["context_images"][0].numel()),
            auxiliary_colours=(output.coarse.colour,) if has_coarse_colour else (),
            auxiliary_loss=(
                output.proposal_loss.mean() if output.proposal_loss is not None else None
            ),
        )
