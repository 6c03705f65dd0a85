"""What the viewer shows, without any web code: the chosen scene and context views, the latent
(posterior mean, a posterior sample or a prior sample) and renders of it from any camera.

The browser front end (:mod:`nerfvae.viewer.app`) only turns clicks into calls on
:class:`ViewerSession` and its images into pictures, so everything here is tested directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from nerfvae.errors import ConfigError
from nerfvae.evaluation.scene_priors import ScenePrior, StandardPrior
from nerfvae.evaluation.views import parse_view_indices
from nerfvae.geometry import image_rays
from nerfvae.inference import check_scene_index, infer_scene
from nerfvae.models import DiagonalGaussian, RaySceneModel
from nerfvae.models.ray_model import shared_grid_sampling
from nerfvae.rendering import DensityGridConfig, scene_chunk
from nerfvae.viewer.camera_control import ViewCamera
from nerfvae.visualise import depth_to_image, heat_image, to_uint8

MODES = ("RGB", "Depth", "Opacity", "Posterior std")
STD_VMAX = 0.25
"""Colour standard deviation shown at the top of the heat map (as ``nerfvae render`` does)."""


class RenderAborted(Exception):
    """A newer request made this render pointless; raised between ray chunks."""


@dataclass(frozen=True)
class LatentChoice:
    """Which latent is shown: ``kind`` is ``"mean"`` (posterior mean), ``"posterior"`` (posterior
    sample number ``index``) or ``"prior"`` (prior sample number ``index``)."""

    kind: str = "mean"
    index: int = 0

    def describe(self, context: list[int]) -> str:
        views = ", ".join(str(v) for v in context)
        if self.kind == "mean":
            return f"posterior mean from views {views}"
        if self.kind == "posterior":
            return f"posterior sample #{self.index} from views {views}"
        return f"prior sample #{self.index} (ignores the context views)"


@dataclass(frozen=True)
class Snapshot:
    """Everything a render needs, frozen at one moment so a render in another thread never sees
    half of a change: ``latent [1, T, C]`` and ``spread_latents [N, T, C]`` (samples of the same
    distribution, for the std mode); ``spread_grid_latent [1, T, C]``, the posterior mean whose
    density grid places the samples of posterior samples (None: each sample its own grid)."""

    version: int
    latent: torch.Tensor
    spread_latents: torch.Tensor
    mode: str
    far: float
    spread_grid_latent: torch.Tensor | None = None


class ViewerSession:
    """State of one viewer: a model, a dataset split and what is being looked at.

    Thread-safe: GUI callbacks change the state under a lock; renders take a :class:`Snapshot`.
    """

    def __init__(
        self,
        model: RaySceneModel,
        dataset,
        split: str = "test",
        std_samples: int = 4,
        seed: int = 0,
        chunk_rays: int = 4096,
        default_context: int = 3,
        preview_samples: int = 16,
        prior: ScenePrior | None = None,
        density_grid: DensityGridConfig | None = None,
    ) -> None:
        """``model``: a model that renders rays (:class:`RaySceneModel`; the viewer renders any
        camera ray by ray). ``dataset``: a :class:`nerfvae.data.loader.MultiSceneDataset`
        (``len``, ``meta``, ``load_scene``). ``std_samples`` latents are drawn for the
        standard-deviation mode. Preview frames take at most ``preview_samples`` samples per ray
        and no fine pass. ``prior``: where "new scene" draws from (default: the model's
        N(0, I); :func:`nerfvae.evaluation.scene_priors.scene_prior` picks a run's fitted one).
        ``density_grid``: how full frames place the field's samples (default: a 64-node density
        grid baked once per latent, 5 field samples per ray; resolution 0 renders them with the
        model's own sampling). A model with its own proposal density keeps it."""
        if not isinstance(model, RaySceneModel):
            raise ConfigError(
                f"the viewer renders rays from any camera; {type(model).__name__} renders only "
                "whole views (use `nerfvae render`)"
            )
        if len(dataset) == 0:
            raise ConfigError(f"split {split!r} of the dataset has no scenes")
        self.model = model
        self.dataset = dataset
        self.split = split
        self.meta = dataset.meta
        self.std_samples = max(2, std_samples)
        self.seed = seed
        self.chunk_rays = chunk_rays
        self.default_context = default_context
        self.preview_samples = preview_samples
        self.prior = prior or ScenePrior("standard", StandardPrior(model), {})
        self.device = model.scene_min.device
        self.density_grid = DensityGridConfig() if density_grid is None else density_grid
        self._grids: list[tuple[torch.Tensor, tuple, dict]] = []
        self._lock = threading.RLock()
        self._scene_cache: dict[int, object] = {}
        self._version = 0
        self.mode = MODES[0]
        self.choice = LatentChoice()
        self._posterior_samples = 0
        self._prior_samples = 0
        self.select_scene(0)

    # -- state changes (GUI callbacks) -----------------------------------------------------
    @property
    def version(self) -> int:
        """Increases with every change of what a render would show."""
        return self._version

    def load_scene(self, index: int):
        check_scene_index(index, len(self.dataset), self.split)
        if index not in self._scene_cache:
            self._scene_cache = {index: self.dataset.load_scene(index)}  # keep one scene in memory
        return self._scene_cache[index]

    def select_scene(self, index: int, context: list[int] | None = None) -> None:
        """Show scene ``index`` of the split, inferred from ``context`` (default: its first
        ``default_context`` in-distribution views), as the posterior mean."""
        scene = self.load_scene(index)
        if context is None:
            id_views = [v for v in range(scene.num_views) if not bool(scene.view_is_ood[v])]
            context = (id_views or list(range(scene.num_views)))[: self.default_context]
        with self._lock:
            self.scene_index = index
            self.scene = scene
            self._set_context(context)

    def set_context(self, context: list[int]) -> None:
        """Infer the current scene from views ``context`` (posterior mean shown)."""
        with self._lock:
            self._set_context(context)

    def _set_context(self, context: list[int]) -> None:
        text = ",".join(str(v) for v in context)
        context = parse_view_indices(text, self.scene.num_views, "context views")
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.posterior = infer_scene(
            self.model, self.scene.images, self.scene.K, self.scene.c2w, context, None, generator
        )
        self.context = context
        self._posterior_samples = 0
        self.choice = LatentChoice("mean")
        self.latent = self.posterior.mean
        self._spread = self._draw(self.posterior, self.std_samples, self.seed + 1)
        self._version += 1

    def _draw(self, distribution: DiagonalGaussian, count: int, seed: int) -> torch.Tensor:
        generator = torch.Generator(device=self.device).manual_seed(seed)
        expanded = DiagonalGaussian(
            distribution.mean.expand(count, *distribution.mean.shape[1:]),
            distribution.log_std.expand(count, *distribution.log_std.shape[1:]),
        )
        return expanded.rsample(generator)

    def _draw_prior(self, count: int, seed: int) -> torch.Tensor:
        return self.prior.rsample(count, torch.Generator().manual_seed(seed)).to(self.device)

    def show_posterior_mean(self) -> None:
        with self._lock:
            self.choice = LatentChoice("mean")
            self.latent = self.posterior.mean
            self._spread = self._draw(self.posterior, self.std_samples, self.seed + 1)
            self._version += 1

    def new_posterior_sample(self) -> None:
        """Show a new sample of the current posterior (numbered; sample k is reproducible)."""
        with self._lock:
            self._posterior_samples += 1
            index = self._posterior_samples
            self.choice = LatentChoice("posterior", index)
            self.latent = self._draw(self.posterior, 1, self.seed + 1000 + index)
            self._spread = self._draw(self.posterior, self.std_samples, self.seed + 1)
            self._version += 1

    def new_prior_sample(self) -> None:
        """Show a new scene drawn from the prior (numbered; sample k is reproducible)."""
        with self._lock:
            self._prior_samples += 1
            index = self._prior_samples
            self.choice = LatentChoice("prior", index)
            self.latent = self._draw_prior(1, self.seed + 2000 + index)
            self._spread = self._draw_prior(self.std_samples, self.seed + 2)
            self._version += 1

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown display mode {mode!r} (choose from {', '.join(MODES)})")
        with self._lock:
            self.mode = mode
            self._version += 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            # posterior samples are rendered where their mean's density grid puts the samples, so
            # the std mode shows the posterior's spread, not the quadrature's; prior samples are
            # different scenes, each with its own grid
            mean = None if self.choice.kind == "prior" else self.posterior.mean
            return Snapshot(
                self._version, self.latent, self._spread, self.mode, self.meta.far, mean
            )

    def describe(self) -> str:
        with self._lock:
            scene_id = self.scene.scene_id or f"{self.split} #{self.scene_index}"
            return f"scene {self.scene_index} ({scene_id}): {self.choice.describe(self.context)}"

    # -- rendering ---------------------------------------------------------------------------
    def grid_sampling(self, latents: torch.Tensor, grid_latent: torch.Tensor | None = None) -> dict:
        """:meth:`RaySceneModel.grid_sampling` of ``latents [N, T, C]`` (with ``grid_latent
        [1, T, C]``: its one grid for all N, :func:`shared_grid_sampling`): a grid is baked on
        first use and kept for the last two latent tensors baked (the latent shown and, for
        prior samples, the std mode's samples; posterior samples share their mean's)."""
        source = latents if grid_latent is None else grid_latent
        key = (source._version, replace(self.density_grid))
        options = next(
            (cached for tensor, tensor_key, cached in self._grids
             if tensor is source and tensor_key == key),
            None,
        )  # fmt: skip
        if options is None:
            options = self.model.grid_sampling(source, self.density_grid)
            self._grids = [*self._grids[-1:], (source, key, options)]
        return options if grid_latent is None else shared_grid_sampling(options, latents.shape[0])

    @torch.no_grad()
    def render_maps(
        self,
        latents: torch.Tensor,
        camera: ViewCamera,
        should_abort: Callable[[], bool] | None = None,
        preview: bool = False,
        exact: bool = False,
        grid_latent: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Render ``latents [N, T, C]`` from one camera, ``chunk_rays`` rays per scene-batch at a
        time, checking ``should_abort`` between chunks: ``colour [N, H, W, 3]``, ``depth`` and
        ``opacity [N, H, W]``. Raises :class:`RenderAborted` when asked to stop. ``preview``:
        fewer samples per ray; ``exact``: the model's own sampling even where full frames use the
        density grid (see :meth:`_render_rays`), with ``grid_latent``'s grid if given
        (:meth:`grid_sampling`)."""
        count = latents.shape[0]
        origins, directions = image_rays(
            camera.K.to(self.device), camera.c2w.to(self.device), camera.height, camera.width
        )
        origins = origins.reshape(1, -1, 3).expand(count, -1, 3)
        directions = directions.reshape(1, -1, 3).expand(count, -1, 3)
        near, far = self.model.ray_bounds(origins, directions)
        grid = {} if preview or exact else self.grid_sampling(latents, grid_latent)
        chunk = scene_chunk(self.chunk_rays, count)
        parts: dict[str, list[torch.Tensor]] = {"colour": [], "depth": [], "opacity": []}
        for start in range(0, origins.shape[1], chunk):
            if should_abort is not None and should_abort():
                raise RenderAborted
            stop = start + chunk
            final = self._render_rays(
                latents, origins[:, start:stop], directions[:, start:stop], near[:, start:stop],
                far[:, start:stop], preview, grid,
            )  # fmt: skip
            parts["colour"].append(final.colour.float())
            parts["depth"].append(final.depth.float())
            parts["opacity"].append(final.opacity.float())
        shape = (count, camera.height, camera.width)
        return {
            "colour": torch.cat(parts["colour"], 1).reshape(*shape, 3).cpu(),
            "depth": torch.cat(parts["depth"], 1).reshape(shape).cpu(),
            "opacity": torch.cat(parts["opacity"], 1).reshape(shape).cpu(),
        }

    def _render_rays(self, latents, origins, directions, near, far, preview: bool, grid: dict):
        """The final composite (``colour``, ``depth``, ``opacity``) of rays ``[N, R, 3]``.

        Full frames go through ``model.render``: with ``grid`` (:meth:`grid_sampling`), the
        field runs at ``density_grid.field_samples`` samples per ray drawn from a density grid's
        weights; with ``{}``, with the model's own sampling. Preview frames render
        only the coarse pass with at most ``preview_samples`` evenly spaced samples (for the
        ``small`` preset 16 instead of 32 + 16 field evaluations per ray); with the proposal
        sampler, the field at ``preview_samples / 2`` samples placed by the proposal."""
        if not preview:
            return self.model.render(latents, origins, directions, near, far, **grid).final
        # the model's own sampling with fewer samples, so every other option (opaque_far) carries
        sampling = self.model.sampling
        if sampling.sampler == "proposal":
            # the proposal density is cheap: keep its samples, run the field at fewer
            cheap = replace(
                sampling,
                num_fine=min(sampling.num_fine, max(1, self.preview_samples // 2)),
                perturb=False,
            )
        else:
            cheap = replace(
                sampling,
                num_coarse=min(sampling.num_coarse, self.preview_samples),
                num_fine=0,
                perturb=False,
            )
        return self.model.render(latents, origins, directions, near, far, sampling=cheap).final

    def render_image(
        self,
        camera: ViewCamera,
        snapshot: Snapshot | None = None,
        should_abort: Callable[[], bool] | None = None,
        preview: bool = False,
        exact: bool = False,
    ) -> np.ndarray:
        """The picture the current mode shows from ``camera``: uint8 ``[H, W, 3]``; ``preview``
        renders with fewer samples per ray, ``exact`` with the model's own sampling."""
        snapshot = snapshot or self.snapshot()
        if snapshot.mode == "Posterior std":
            maps = self.render_maps(
                snapshot.spread_latents, camera, should_abort, preview, exact,
                snapshot.spread_grid_latent,
            )  # fmt: skip
            spread = maps["colour"].std(0).mean(-1)  # [H, W], mean over channels
            return to_uint8(heat_image(spread, vmax=STD_VMAX))
        maps = self.render_maps(snapshot.latent, camera, should_abort, preview, exact)
        if snapshot.mode == "Depth":
            return to_uint8(depth_to_image(maps["depth"][0], snapshot.far))
        if snapshot.mode == "Opacity":
            return to_uint8(maps["opacity"][0].unsqueeze(-1).expand(-1, -1, 3))
        return to_uint8(maps["colour"][0])

    def dataset_camera(self, view: int) -> ViewCamera:
        """View ``view`` of the current scene as a camera at the dataset's image size."""
        with self._lock:
            scene = self.scene
        return ViewCamera(
            scene.K[view].float(), scene.c2w[view].float(), self.meta.image_height,
            self.meta.image_width,
        )  # fmt: skip

    def ground_truth(self, view: int) -> np.ndarray:
        """The dataset image of view ``view`` of the current scene, uint8 ``[H, W, 3]``."""
        with self._lock:
            return self.scene.images[view].cpu().numpy()
