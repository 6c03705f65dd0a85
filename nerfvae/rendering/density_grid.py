"""A field's density baked once per scene onto a grid, to place a few field samples per ray.

Rendering a latent-conditioned field from many cameras (a viewer, a turntable) queries the same
scene again and again, and most of a ray's samples land in empty space. Baking the density onto a
coarse grid over the scene box once (a few hundred thousand field queries, the cost of one or two
views) gives a proposal density that costs a trilinear lookup per sample; the proposal sampler
(:func:`nerfvae.rendering.render_with_proposal`) then runs the field itself only at a handful of
samples per ray around the surfaces. NerfAcc's occupancy grid does the same for a per-scene NeRF
(kept up to date during training); here the grid is computed per latent at render time, so it
works for any :data:`FieldFn`, whatever model or conditioning is behind it.

The colour is never baked: the field's own colour along the true view direction is composited,
so view-dependent effects are kept and only where the samples go is approximated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from nerfvae.errors import check_bounds, check_config_fields, check_range
from nerfvae.rendering.renderer import FieldFn, RaySamplingConfig


@dataclass
class DensityGridConfig:
    """How a baked density grid places the field's samples along each ray."""

    resolution: int = 64
    """Grid nodes along the longest side of the scene box (the other sides get the same spacing);
    0 = no grid: render with the model's own sampling. The grid only places the samples, so a
    coarse one does (`benchmarks/density_grid.py` compares resolutions)."""
    field_samples: int = 5
    """Field evaluations per ray, placed by the grid's weights (the `small` preset's own sampling
    runs 48)."""
    grid_samples: int = 128
    """Evenly spaced grid lookups per ray that the field's samples are drawn from."""

    def __post_init__(self) -> None:
        self.check()

    def check(self, where: str = "density_grid") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        check_bounds(
            self,
            where,
            {"resolution": (0, 1024), "field_samples": (1, 4096), "grid_samples": (2, 4096)},
        )
        check_range(
            self.resolution != 1, where, "resolution", "0 (off) or >= 2 nodes", self.resolution
        )

    @property
    def enabled(self) -> bool:
        return self.resolution > 0

    def sampling(self, base: RaySamplingConfig) -> RaySamplingConfig:
        """``base`` (the model's sampling: ``opaque_far`` and the like carry over) turned into
        deterministic proposal sampling: ``grid_samples`` grid lookups, ``field_samples`` field
        queries per ray."""
        return replace(
            base,
            sampler="proposal",
            num_coarse=self.grid_samples,
            num_fine=self.field_samples,
            perturb=False,
        )


def grid_shape(box_min: torch.Tensor, box_max: torch.Tensor, resolution: int) -> tuple[int, ...]:
    """Nodes ``(n_x, n_y, n_z)`` of a grid over the box ``[box_min, box_max]`` (``[3]`` each) with
    ``resolution`` nodes along its longest side and the same spacing along the others (at least
    two nodes per side, so every side has both faces)."""
    size = (box_max - box_min).double()
    spacing = float(size.max()) / (resolution - 1)
    return tuple(max(2, round(float(side) / spacing) + 1) for side in size)


@dataclass
class DensityGrid:
    """The density of ``S`` scenes on a regular grid over a box; called as a :data:`DensityFn`.

    Attributes:
        density: ``[S, 1, n_z, n_y, n_x]`` the field's density at the nodes (the layout
            ``F.grid_sample`` reads, nodes on the box's faces).
        box_min, box_max: ``[3]`` the box the nodes span.
    """

    density: torch.Tensor
    box_min: torch.Tensor
    box_max: torch.Tensor

    def expand(self, scenes: int) -> DensityGrid:
        """This one scene's grid for ``scenes`` scenes (samples of one posterior rendered at the
        same sample positions, so that their spread is the field's and not the quadrature's)."""
        return DensityGrid(self.density.expand(scenes, -1, -1, -1, -1), self.box_min, self.box_max)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """Trilinearly interpolated density ``[S, ...]`` at ``points [S, ..., 3]`` (points outside
        the box read the nearest face)."""
        scenes = points.shape[0]
        normalised = (points.to(self.density.dtype) - self.box_min) / (self.box_max - self.box_min)
        coordinates = (2.0 * normalised - 1.0).reshape(scenes, -1, 1, 1, 3)
        sampled = F.grid_sample(
            self.density, coordinates, mode="bilinear", padding_mode="border", align_corners=True
        )  # [S, 1, P, 1, 1]
        return sampled.reshape(points.shape[:-1])


@torch.no_grad()
def bake_density_grid(
    field: FieldFn,
    box_min: torch.Tensor,
    box_max: torch.Tensor,
    scenes: int,
    resolution: int,
    chunk_points: int = 32768,
) -> DensityGrid:
    """Query ``field`` (scenes on dim 0) at every node of a grid over ``[box_min, box_max]``.

    The field is queried with one fixed view direction: a radiance field's density does not
    depend on it (NeRF's architecture, and every scene function here). At most ``chunk_points``
    nodes (over all scenes) are queried at a time.
    """
    shape = grid_shape(box_min, box_max, resolution)
    axes = [
        torch.linspace(float(box_min[i]), float(box_max[i]), shape[i], device=box_min.device)
        for i in range(3)
    ]
    z, y, x = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    nodes = torch.stack([x, y, z], dim=-1).reshape(1, -1, 1, 3)  # [1, n_z * n_y * n_x, 1, 3]
    direction = torch.tensor([0.0, 0.0, -1.0], device=box_min.device)
    per_scene = max(1, chunk_points // max(1, scenes))
    pieces = []
    for start in range(0, nodes.shape[1], per_scene):
        points = nodes[:, start : start + per_scene].expand(scenes, -1, -1, -1)
        density, _ = field(points, direction.expand_as(points))
        pieces.append(density.float().reshape(scenes, -1))
    density = torch.cat(pieces, dim=1).reshape(scenes, 1, shape[2], shape[1], shape[0])
    return DensityGrid(density, box_min.float(), box_max.float())
