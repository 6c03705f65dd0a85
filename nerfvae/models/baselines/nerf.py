"""Per-scene NeRF baseline: a standard NeRF optimised from scratch on each scene's context views.

Mildenhall et al. (2020): positional encoding of points and view directions, an MLP with a skip
connection giving density and (view-dependent) colour, hierarchical sampling with *separate* coarse
and fine MLPs, both supervised with the photometric MSE. Rendering goes through the shared
:func:`nerfvae.rendering.render_rays`, so this baseline and NeRF-VAE differ only in the field.

Many scenes are optimised at once: every weight has a leading ``scenes`` dimension and each linear
layer is one batched matmul (``baddbmm``), so fitting 8 scenes costs one forward/backward over
``[8, rays, samples]`` instead of a Python loop of 8 small ones. Scenes stay independent: the loss
is a *sum* of per-scene means, so each scene's gradient is what it would be alone, and Adam is
per-element.

This module knows tensors only (no files, no datasets); the evaluation runner that picks view lists
and writes reports is :mod:`nerfvae.evaluation.per_scene_nerf`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from nerfvae.geometry import image_rays, ray_box_intersection, sample_ray_indices
from nerfvae.image_metrics import psnr_from_mse
from nerfvae.models.base import render_whole_views
from nerfvae.models.encoding import PositionalEncoding
from nerfvae.rendering import RaySamplingConfig, RenderOutput, render_rays


@dataclass
class PerSceneNeRFConfig:
    """Architecture and optimisation of the per-scene NeRF.

    The defaults are sized for a CPU (the lego check in docs/baselines.md: 0.17 CPU-seconds per
    step and scene at 100×100); NeRF's own values are given beside each field."""

    width: int = 96
    """Hidden width of each MLP (NeRF: 256)."""
    depth: int = 4
    """Hidden layers before the density head (NeRF: 8)."""
    skip_layer: int = 2
    """Hidden layer that gets the encoded point again as input (NeRF: 4); -1 for none."""
    point_frequencies: int = 8
    """Positional-encoding frequencies of points normalised to the scene box (NeRF: 10 on raw
    coordinates; 8 here puts the finest period near one pixel's footprint at 100×100)."""
    direction_frequencies: int = 4
    """Positional-encoding frequencies of view directions (NeRF: 4)."""
    view_dependent: bool = True
    """Whether colour depends on the view direction."""
    density_bias: float = -1.0
    """Added to the raw density before softplus; negative starts the scene mostly empty."""
    sampling: RaySamplingConfig = field(
        default_factory=lambda: RaySamplingConfig(num_coarse=32, num_fine=32)
    )
    """Coarse stratified samples and fine importance samples per ray (NeRF: 64 + 128)."""
    steps: int = 1200
    """Optimisation steps per scene (NeRF: 200k–300k on a GPU)."""
    rays_per_scene: int = 256
    """Random context-view rays per scene per step (NeRF: 1024–4096)."""
    learning_rate: float = 1e-3
    """Adam learning rate at step 0 (NeRF: 5e-4, for a much longer schedule)."""
    final_learning_rate: float = 1e-4
    """Learning rate at the last step; exponential decay in between (NeRF: 5e-5 at 250k steps)."""
    log_every: int = 50
    """Steps between rows of the optimisation history (running training PSNR, wall time)."""
    seed: int = 0
    """Seed of the initial weights, ray draws and sample jitter."""


class BatchedLinear(nn.Module):
    """``scenes`` independent linear layers applied at once: ``[S, N, in] -> [S, N, out]``."""

    def __init__(self, scenes: int, in_features: int, out_features: int) -> None:
        super().__init__()
        # nn.Linear's default initialisation, drawn independently for every scene.
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(
            torch.empty(scenes, in_features, out_features).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(scenes, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class BatchedNeRFMLP(nn.Module):
    """One NeRF MLP per scene: ``(points [S, P, 3], directions [S, P, 3]) -> density [S, P],
    colour [S, P, 3]`` (softplus density, sigmoid colour)."""

    def __init__(
        self,
        scenes: int,
        config: PerSceneNeRFConfig,
        scene_min: torch.Tensor,
        scene_max: torch.Tensor,
    ) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("box_centre", (scene_min + scene_max) / 2)
        self.register_buffer("box_half_size", (scene_max - scene_min).clamp_min(1e-6) / 2)
        self.point_encoding = PositionalEncoding(3, config.point_frequencies)
        self.direction_encoding = PositionalEncoding(3, config.direction_frequencies)
        point_dim = self.point_encoding.output_dim
        self.hidden = nn.ModuleList()
        previous = point_dim
        for layer in range(config.depth):
            extra = point_dim if layer == config.skip_layer and layer > 0 else 0
            self.hidden.append(BatchedLinear(scenes, previous + extra, config.width))
            previous = config.width
        self.density_head = BatchedLinear(scenes, config.width, 1)
        if config.view_dependent:
            # NeRF: a feature layer, then [feature, encoded direction] -> half-width layer -> RGB.
            self.feature = BatchedLinear(scenes, config.width, config.width)
            half = config.width // 2
            self.view_layer = BatchedLinear(
                scenes, config.width + self.direction_encoding.output_dim, half
            )
            self.colour_head = BatchedLinear(scenes, half, 3)
        else:
            self.colour_head = BatchedLinear(scenes, config.width, 3)

    def forward(
        self, points: torch.Tensor, directions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.point_encoding((points - self.box_centre) / self.box_half_size)
        hidden = encoded
        for layer, linear in enumerate(self.hidden):
            if layer == self.config.skip_layer and layer > 0:
                hidden = torch.cat([hidden, encoded], dim=-1)
            hidden = torch.relu(linear(hidden))
        density = nn.functional.softplus(
            self.density_head(hidden).squeeze(-1) + self.config.density_bias
        )
        if self.config.view_dependent:
            view_input = torch.cat(
                [self.feature(hidden), self.direction_encoding(directions)], dim=-1
            )
            hidden = torch.relu(self.view_layer(view_input))
        colour = torch.sigmoid(self.colour_head(hidden))
        return density, colour


def _as_field(mlp: BatchedNeRFMLP):
    """The MLP as a rendering callback ``(points [S, R, N, 3], dirs) -> density [S, R, N], colour``."""

    def query(points: torch.Tensor, directions: torch.Tensor):
        scenes, sample_shape = points.shape[0], points.shape[:-1]
        density, colour = mlp(points.reshape(scenes, -1, 3), directions.reshape(scenes, -1, 3))
        return density.reshape(sample_shape), colour.reshape(*sample_shape, 3)

    return query


class PerSceneNeRF(nn.Module):
    """``scenes`` independent NeRFs (coarse + fine MLPs each) inside one scene box."""

    def __init__(
        self,
        scenes: int,
        config: PerSceneNeRFConfig,
        scene_min: tuple[float, float, float] | torch.Tensor,
        scene_max: tuple[float, float, float] | torch.Tensor,
        background: tuple[float, float, float] | torch.Tensor = (0.0, 0.0, 0.0),
    ) -> None:
        super().__init__()
        self.config = config
        self.scenes = scenes
        self.register_buffer("scene_min", torch.as_tensor(scene_min, dtype=torch.float32))
        self.register_buffer("scene_max", torch.as_tensor(scene_max, dtype=torch.float32))
        self.register_buffer("background", torch.as_tensor(background, dtype=torch.float32))
        self.coarse = BatchedNeRFMLP(scenes, config, self.scene_min, self.scene_max)
        self.fine = (
            BatchedNeRFMLP(scenes, config, self.scene_min, self.scene_max)
            if config.sampling.num_fine > 0
            else None
        )

    def ray_bounds(
        self, origins: torch.Tensor, directions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Near/far ``[S, R]`` of rays clipped to the scene box (zero length where they miss it)."""
        near, far, _ = ray_box_intersection(origins, directions, self.scene_min, self.scene_max)
        return near, far

    def render(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        near: torch.Tensor | None = None,
        far: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> RenderOutput:
        """Render rays ``origins, directions [S, R, 3]`` (scene ``s``'s rays through NeRF ``s``)."""
        if near is None or far is None:
            near, far = self.ray_bounds(origins, directions)
        return render_rays(
            _as_field(self.coarse),
            origins,
            directions,
            near,
            far,
            self.config.sampling,
            fine_field=_as_field(self.fine) if self.fine is not None else None,
            background=self.background,
            generator=generator,
            training=self.training,
        )

    @torch.no_grad()
    def render_views(
        self, K: torch.Tensor, c2w: torch.Tensor, height: int, width: int, chunk_rays: int = 4096
    ) -> dict[str, torch.Tensor]:
        """Whole views ``K [S, V, 3, 3]``, ``c2w [S, V, 4, 4]`` -> ``colour [S, V, H, W, 3]``,
        ``depth [S, V, H, W]`` (expected distance along the ray), ``opacity [S, V, H, W]``."""
        return render_whole_views(self.render, self.ray_bounds, K, c2w, height, width, chunk_rays)


ProbeFn = Callable[[int, PerSceneNeRF], dict[str, float]]
"""``(step, model) -> metrics``: called (model in eval mode, no grad) to track held-out quality."""


@dataclass
class FitResult:
    """A fitted batch of NeRFs and how the optimisation went.

    Attributes:
        model: the fitted :class:`PerSceneNeRF` (eval mode).
        history: rows ``{"step", "wall_s", "cpu_s", "train_psnr", "train_loss", ...probe
            metrics}``; the
            training PSNR is the fine pass's on the step's random context rays, averaged over scenes
            and over the steps since the previous row. ``wall_s`` and ``cpu_s`` exclude the probe.
        wall_s: optimisation wall time for the whole batch of scenes (probe excluded).
        cpu_s: CPU time of this process meanwhile (all threads; on a shared machine with one
            thread, the cost the optimisation would take uncontended).
    """

    model: PerSceneNeRF
    history: list[dict[str, float]]
    wall_s: float
    cpu_s: float = 0.0


class _Stopwatch:
    """Accumulates wall and process CPU time over start/stop intervals."""

    def __init__(self) -> None:
        self.wall_s = self.cpu_s = 0.0
        self._wall = self._cpu = 0.0

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall_s += time.perf_counter() - self._wall
        self.cpu_s += time.process_time() - self._cpu


def learning_rate(step: int, config: PerSceneNeRFConfig) -> float:
    """Exponential decay from ``learning_rate`` at step 0 to ``final_learning_rate`` at the end."""
    fraction = step / max(1, config.steps)
    return config.learning_rate * (config.final_learning_rate / config.learning_rate) ** fraction


def fit_per_scene_nerf(
    images: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    config: PerSceneNeRFConfig,
    scene_min: tuple[float, float, float] | torch.Tensor,
    scene_max: tuple[float, float, float] | torch.Tensor,
    *,
    background: tuple[float, float, float] | torch.Tensor = (0.0, 0.0, 0.0),
    probe: ProbeFn | None = None,
    probe_steps: tuple[int, ...] = (),
) -> FitResult:
    """Optimise one NeRF per scene from scratch on that scene's views.

    Args:
        images: ``[S, V, H, W, 3]`` context views in ``[0, 1]``.
        K: ``[S, V, 3, 3]``; c2w: ``[S, V, 4, 4]`` (OpenCV convention).
        config: architecture, sampling and optimisation settings.
        scene_min, scene_max: ``[3]`` box containing the scenes; rays are sampled inside it.
        background: colour where a ray leaves the box unoccluded (white for NeRF-synthetic).
        probe: optional callback evaluated at ``probe_steps`` (step 0 = before any update; the last
            step is ``config.steps``); its metrics join the history row of that step.
        probe_steps: steps at which to call ``probe``.

    Returns:
        :class:`FitResult`.
    """
    device = images.device
    scenes, views, height, width, _ = images.shape
    generator = torch.Generator(device=device).manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the initial weights
    model = PerSceneNeRF(scenes, config, scene_min, scene_max, background).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)

    origins_all, directions_all = image_rays(K, c2w, height, width)  # [S, V, H, W, 3]
    scene_index = torch.arange(scenes, device=device).unsqueeze(1)
    history: list[dict[str, float]] = []
    probe_at = set(probe_steps)
    clock = _Stopwatch()

    def run_probe(step: int, row: dict[str, float]) -> None:
        if probe is None or step not in probe_at:
            return
        model.eval()
        with torch.no_grad():
            row.update(probe(step, model))
        model.train()

    if probe is not None and 0 in probe_at:
        row: dict[str, float] = {"step": 0, "wall_s": 0.0, "cpu_s": 0.0}
        run_probe(0, row)
        history.append(row)
    clock.start()
    psnr_sum, loss_sum, window = 0.0, 0.0, 0
    model.train()
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        view, row_index, col = sample_ray_indices(
            scenes, views, height, width, config.rays_per_scene, generator=generator, device=device
        )
        origins = origins_all[scene_index, view, row_index, col]  # [S, R, 3]
        directions = directions_all[scene_index, view, row_index, col]
        target = images[scene_index, view, row_index, col]
        output = model.render(origins, directions, generator=generator)
        # Sum of per-scene means: each scene's gradient is independent of how many share the batch.
        fine_mse = (output.final.colour - target).square().mean(dim=(1, 2))  # [S]
        loss = fine_mse.sum()
        if output.fine is not None:
            loss = loss + (output.coarse.colour - target).square().mean(dim=(1, 2)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        psnr_sum += float(psnr_from_mse(fine_mse.detach()).mean())
        loss_sum += float(loss.detach()) / scenes
        window += 1
        done = step + 1
        if done % config.log_every == 0 or done == config.steps or done in probe_at:
            clock.stop()
            row = {
                "step": done,
                "wall_s": clock.wall_s,
                "cpu_s": clock.cpu_s,
                "train_psnr": psnr_sum / window,
                "train_loss": loss_sum / window,
            }
            run_probe(done, row)
            history.append(row)
            clock.start()
            psnr_sum, loss_sum, window = 0.0, 0.0, 0
    model.eval()
    return FitResult(model=model, history=history, wall_s=clock.wall_s, cpu_s=clock.cpu_s)


def default_probe_steps(steps: int, count: int = 8) -> tuple[int, ...]:
    """``count + 1`` steps spread geometrically over ``0..steps`` (early progress is fastest)."""
    if steps <= 0:
        return (0,)
    marks = {0, steps}
    for index in range(1, count):
        marks.add(round(steps ** (index / count)))
    return tuple(sorted(marks))
