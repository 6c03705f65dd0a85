"""Surface meshes from a scene latent: density on a grid in the scene box, marching cubes
(scikit-image), vertex colours from the field, PLY/OBJ through trimesh.

The grid spans the model's scene box (``model.scene_min`` .. ``model.scene_max``) with nodes on its
faces. The renderer never integrates outside that box, so the field there means nothing; the
outermost layer of nodes is set to zero density, which closes every surface at the box (the meshes
are watertight) and keeps every vertex inside the box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nerfvae.errors import ConfigError
from nerfvae.models import SceneModel

MESH_SUFFIXES = (".ply", ".obj")


def _trimesh():
    try:
        import trimesh
    except ImportError:
        raise ConfigError(
            "mesh export needs the trimesh package: pip install 'nerfvae[viewer]'"
        ) from None
    return trimesh


@dataclass
class MeshExtractionConfig:
    """How a latent becomes a mesh."""

    resolution: int = 128
    """Grid nodes along the scene box's longest side (other sides get the same spacing)."""
    density_threshold: float = 10.0
    """Iso-level of the volume density (1/metre): 10 means a 7 cm thick layer is 50% opaque."""
    chunk_points: int = 65536
    """Grid points per scene-function call (bounds memory)."""
    close_at_box: bool = True
    """Zero the density on the box's faces so surfaces close there (watertight, inside the box)."""
    crop: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    """Only this part ``(min xyz, max xyz)`` of the scene box (e.g. the objects without the
    room's walls); surfaces are closed where the crop cuts them."""


@dataclass
class DensityGrid:
    """Density sampled on a regular grid: ``density [Nx, Ny, Nz]`` at nodes
    ``origin + index * spacing`` (world units)."""

    density: np.ndarray
    origin: np.ndarray
    spacing: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.density.shape)  # type: ignore[return-value]


def grid_axes(
    box_min: torch.Tensor, box_max: torch.Tensor, resolution: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Node coordinates along x, y, z (each ``[N_axis]``, first and last on the box faces) and the
    per-axis spacing ``[3]``: ``resolution`` nodes along the longest side, as close to that
    spacing as the box allows along the others (at least 2 nodes per axis)."""
    if resolution < 2:
        raise ConfigError(f"mesh resolution must be at least 2, got {resolution}")
    if resolution > 1024:
        raise ConfigError(f"mesh resolution {resolution} is too large (at most 1024)")
    extent = (box_max - box_min).double()
    step = float(extent.max()) / (resolution - 1)
    counts = [max(2, round(float(size) / step) + 1) for size in extent]
    axes = [
        torch.linspace(float(box_min[i]), float(box_max[i]), counts[i], dtype=torch.float64)
        for i in range(3)
    ]
    spacing = extent / torch.tensor([count - 1 for count in counts], dtype=torch.float64)
    return axes, spacing


@torch.no_grad()
def density_grid(
    model: SceneModel,
    latent: torch.Tensor,
    config: MeshExtractionConfig | None = None,
) -> DensityGrid:
    """Evaluate ``model.scene_function``'s density for one scene's ``latent [1, T, C]`` on a grid
    over the scene box (or its ``config.crop``), ``config.chunk_points`` points per call."""
    config = config or MeshExtractionConfig()
    if latent.ndim != 3 or latent.shape[0] != 1:
        raise ValueError(f"expected one scene's latent [1, T, C], got {tuple(latent.shape)}")
    device = model.scene_min.device
    box_min, box_max = model.scene_min.cpu().double(), model.scene_max.cpu().double()
    if config.crop is not None:
        box_min = torch.maximum(box_min, torch.tensor(config.crop[0], dtype=torch.float64))
        box_max = torch.minimum(box_max, torch.tensor(config.crop[1], dtype=torch.float64))
        if bool((box_min >= box_max).any()):
            raise ConfigError(
                f"--crop {config.crop} does not overlap the scene box "
                f"{model.scene_min.tolist()} .. {model.scene_max.tolist()}"
            )
    axes, spacing = grid_axes(box_min, box_max, config.resolution)
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # [Nx, Ny, Nz, 3]
    points = grid.reshape(1, -1, 3).float()
    # Density does not depend on the viewing direction; any unit vector will do.
    direction = torch.tensor([0.0, 0.0, -1.0], device=device)
    latent = latent.to(device)
    chunks = []
    for start in range(0, points.shape[1], config.chunk_points):
        chunk = points[:, start : start + config.chunk_points].to(device)
        density, _ = model.scene_function(chunk, direction.expand_as(chunk), latent)
        chunks.append(density.float().cpu())
    density = torch.cat(chunks, dim=1).reshape(grid.shape[:3]).numpy()
    if config.close_at_box:
        density[[0, -1], :, :] = 0.0
        density[:, [0, -1], :] = 0.0
        density[:, :, [0, -1]] = 0.0
    return DensityGrid(
        density=density.astype(np.float32),
        origin=np.array([float(axis[0]) for axis in axes]),
        spacing=spacing.numpy(),
    )


@torch.no_grad()
def field_colours(
    model: SceneModel,
    latent: torch.Tensor,
    points: np.ndarray,
    view_directions: np.ndarray,
    chunk_points: int = 65536,
) -> np.ndarray:
    """Colour ``[P, 3]`` (uint8) of the field of ``latent [1, T, C]`` at ``points [P, 3]`` seen
    along unit ``view_directions [P, 3]``."""
    device = model.scene_min.device
    latent = latent.to(device)
    points_tensor = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))[None]
    directions_tensor = torch.from_numpy(np.ascontiguousarray(view_directions, dtype=np.float32))[
        None
    ]
    chunks = []
    for start in range(0, points_tensor.shape[1], chunk_points):
        stop = start + chunk_points
        _, colour = model.scene_function(
            points_tensor[:, start:stop].to(device),
            directions_tensor[:, start:stop].to(device),
            latent,
        )
        chunks.append(colour.float().cpu())
    if not chunks:
        return np.zeros((0, 3), dtype=np.uint8)
    colour = torch.cat(chunks, dim=1)[0]
    return (colour.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def marching_cubes(grid: DensityGrid, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iso-surface of ``grid.density`` at ``level``: vertices ``[V, 3]`` (world), faces ``[F, 3]``
    (counter-clockwise seen from outside, i.e. from lower density) and outward unit normals
    ``[V, 3]``."""
    from skimage.measure import marching_cubes as skimage_marching_cubes

    low, high = float(grid.density.min()), float(grid.density.max())
    if not low < level < high:
        raise ConfigError(
            f"the density never crosses the threshold {level:g} in the scene box (it spans "
            f"{low:.3g} .. {high:.3g}); choose a --density-threshold inside that range"
        )
    # With gradient_direction="ascent", scikit-image winds the faces counter-clockwise seen from
    # the low side, here the outside (checked on an analytic sphere: positive enclosed volume).
    vertices, faces, normals, _ = skimage_marching_cubes(
        grid.density, level=level, spacing=tuple(grid.spacing), gradient_direction="ascent"
    )
    vertices = vertices + grid.origin
    return vertices.astype(np.float32), faces.astype(np.int64), normals.astype(np.float32)


def extract_mesh(
    model: SceneModel,
    latent: torch.Tensor,
    config: MeshExtractionConfig | None = None,
):
    """The ``trimesh.Trimesh`` surface of the scene with ``latent [1, T, C]``: marching cubes on
    the density at ``config.density_threshold``, each vertex coloured by the field seen from
    outside along its normal."""
    trimesh = _trimesh()
    config = config or MeshExtractionConfig()
    grid = density_grid(model, latent, config)
    vertices, faces, normals = marching_cubes(grid, config.density_threshold)
    # A camera looking at the surface from outside sees it along the inward normal.
    colours = field_colours(model, latent, vertices, -normals, config.chunk_points)
    alpha = np.full((len(colours), 1), 255, dtype=np.uint8)
    return trimesh.Trimesh(
        vertices=vertices,
        faces=faces,
        vertex_normals=normals,
        vertex_colors=np.concatenate([colours, alpha], axis=1),
        process=False,
    )


def write_mesh(mesh, path: str | Path) -> Path:
    """Write a trimesh mesh with vertex colours as PLY (binary) or OBJ, chosen by the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ConfigError(
            f"--out {path}: unsupported mesh format (use {' or '.join(MESH_SUFFIXES)})"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".ply":
        data = mesh.export(file_type="ply", encoding="binary")
    else:
        data = mesh.export(file_type="obj", include_color=True, include_normals=True)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_bytes(data if isinstance(data, bytes) else data.encode())
    temporary.replace(path)  # a crash never leaves a truncated mesh under the final name
    return path
