"""The model contract shared by NeRF-VAE and the baselines.

Training and evaluation talk to every model only through these methods, so neither special-cases a
model: ``infer`` turns context views into a posterior over the scene latent, ``render`` turns a
latent and rays into colour/depth/opacity, ``loss`` computes the training objective and the metrics
to log.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from nerfvae.geometry import image_rays, ray_box_intersection
from nerfvae.models.latent import DiagonalGaussian
from nerfvae.rendering import RenderOutput, render_in_chunks


class SceneModel(nn.Module, abc.ABC):
    """Base class: a model of many scenes that renders rays given a per-scene latent."""

    scene_min: torch.Tensor  # [3] buffer set by subclasses
    scene_max: torch.Tensor
    mixed_precision: bool = False
    """Run in bfloat16 where the model supports it (set from the resolved ``--precision`` by the
    trainer and :func:`nerfvae.training.loading.load_trained_model`)."""

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
    def render(
        self,
        latent: torch.Tensor,
        origins: torch.Tensor,
        directions: torch.Tensor,
        near: torch.Tensor | None = None,
        far: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> RenderOutput:
        """Render rays ``origins, directions [S, R, 3]`` of scenes with latents ``[S, T, C]``.

        ``near, far [S, R]`` default to the rays' intersection with the scene box."""

    @abc.abstractmethod
    def loss(self, batch: dict[str, torch.Tensor], **schedule: Any) -> dict[str, torch.Tensor]:
        """Training objective ``"loss"`` (scalar to minimise) and detached metrics to log."""

    def forward(self, batch: dict[str, torch.Tensor], **schedule: Any) -> dict[str, torch.Tensor]:
        # DistributedDataParallel needs the training computation to go through forward().
        return self.loss(batch, **schedule)

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
    ) -> dict[str, torch.Tensor]:
        """Render whole views: ``K [S, V, 3, 3]``, ``c2w [S, V, 4, 4]`` -> ``colour [S, V, H, W, 3]``,
        ``depth [S, V, H, W]`` (expected distance along the ray), ``opacity [S, V, H, W]``."""
        scenes, views = c2w.shape[:2]
        origins, directions = image_rays(K, c2w, height, width)
        origins = origins.reshape(scenes, -1, 3)
        directions = directions.reshape(scenes, -1, 3)
        near, far = self.ray_bounds(origins, directions)
        outputs = render_in_chunks(
            lambda o, d, n, f: self.render(latent, o, d, n, f),
            origins,
            directions,
            near,
            far,
            chunk_rays,
        )
        shape = (scenes, views, height, width)
        return {
            "colour": outputs["colour"].reshape(*shape, 3),
            "depth": outputs["depth"].reshape(shape),
            "opacity": outputs["opacity"].reshape(shape),
        }
