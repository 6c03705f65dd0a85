"""The model contract shared by NeRF-VAE and the baselines.

Training, inference, evaluation and the viewer talk to every model only through this contract, so
none of them special-cases a model:

* :class:`SceneModel` (every model, GQN included): ``infer`` turns context views into a posterior
  over the scene latent, ``prior`` is p(z), ``render_views`` renders whole views of a latent,
  ``loss`` computes the training objective and the metrics to log, and ``whole_target_views`` says
  which kind of training batch the model learns from.
* :class:`nerfvae.models.ray_model.RaySceneModel` (models that render rays: NeRF-VAE): adds
  ``render(latent, rays)``, ``field(latent)``, the context views' ELBO that test-time refinement
  climbs, and the settings a renderer needs (``sampling``, ``background``).

The per-scene NeRF baseline renders rays too but has no latent, encoder or ELBO (it is fitted
per scene by evaluation code); it shares :func:`render_whole_views` with the ray models.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import torch
from torch import nn

from nerfvae.geometry import image_rays
from nerfvae.models.latent import DiagonalGaussian
from nerfvae.rendering import RenderOutput, render_in_chunks

Batch = dict[str, torch.Tensor]
"""A training batch: named tensors (``context_images``, ``target_colours``, ...)."""

RayRenderer = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None], RenderOutput
]
"""``(origins [S, R, 3], directions [S, R, 3], near [S, R], far [S, R]) -> RenderOutput``."""


def render_whole_views(
    render: RayRenderer,
    ray_bounds: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    K: torch.Tensor,
    c2w: torch.Tensor,
    height: int,
    width: int,
    chunk_rays: int = 4096,
) -> dict[str, torch.Tensor]:
    """Render whole views ray by ray: ``K [S, V, 3, 3]``, ``c2w [S, V, 4, 4]`` ->
    ``colour [S, V, H, W, 3]``, ``depth [S, V, H, W]`` (expected distance along the ray),
    ``opacity [S, V, H, W]``; at most ``chunk_rays`` rays (over all scenes) at a time, each clipped by
    ``ray_bounds(origins, directions) -> (near, far)``."""
    scenes, views = c2w.shape[:2]
    origins, directions = image_rays(K, c2w, height, width)
    origins = origins.reshape(scenes, -1, 3)
    directions = directions.reshape(scenes, -1, 3)
    near, far = ray_bounds(origins, directions)
    outputs = render_in_chunks(render, origins, directions, near, far, chunk_rays)
    shape = (scenes, views, height, width)
    return {
        "colour": outputs["colour"].reshape(*shape, 3),
        "depth": outputs["depth"].reshape(shape),
        "opacity": outputs["opacity"].reshape(shape),
    }


class SceneModel(nn.Module, abc.ABC):
    """Base class: a model of many scenes that renders views given a per-scene latent."""

    scene_min: torch.Tensor  # [3] buffer set by subclasses
    scene_max: torch.Tensor
    mixed_precision: bool = False
    """Run in bfloat16 where the model supports it (set from the resolved ``--precision`` by the
    trainer and :func:`nerfvae.training.loading.load_trained_model`)."""
    whole_target_views: int = 0
    """Whole target views per scene that a training batch must hold (``target_images``,
    ``target_K``, ``target_c2w``: a model that decodes images at once), or 0 for a model that
    trains on random target rays (``target_origins``, ``target_directions``, ``target_colours``)."""

    @abc.abstractmethod
    def infer(
        self,
        context_images: torch.Tensor,
        context_K: torch.Tensor,
        context_c2w: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> DiagonalGaussian:
        """Posterior over latents ``[scenes, tokens, channels]`` from context views
        (``images [S, V, H, W, 3]`` in [0, 1], ``K [S, V, 3, 3]``, ``c2w [S, V, 4, 4]``)."""

    @abc.abstractmethod
    def prior(self, scenes: int) -> DiagonalGaussian:
        """The prior p(z) for ``scenes`` scenes."""

    @abc.abstractmethod
    def render_views(
        self,
        latent: torch.Tensor,
        K: torch.Tensor,
        c2w: torch.Tensor,
        height: int,
        width: int,
        chunk_rays: int = 4096,
    ) -> dict[str, torch.Tensor]:
        """Render whole views of scenes with latents ``[S, T, C]``: ``K [S, V, 3, 3]``,
        ``c2w [S, V, 4, 4]`` -> ``colour [S, V, H, W, 3]``, ``depth`` and ``opacity
        [S, V, H, W]`` (NaN for a model that has neither)."""

    @abc.abstractmethod
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
        """Training objective ``"loss"`` (scalar to minimise) and detached metrics to log; the
        keyword arguments are the trainer's schedules (see
        :meth:`nerfvae.models.objective.GaussianELBOModel.loss`)."""

    def forward(
        self, batch: Batch, **schedule: int | float | torch.Generator | None
    ) -> dict[str, torch.Tensor]:
        # DistributedDataParallel needs the training computation to go through forward(); an
        # unknown keyword is a TypeError of loss().
        return self.loss(batch, **schedule)
