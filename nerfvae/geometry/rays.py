"""Camera rays: generation through pixel centres, random subsets, scene-box clipping, Plücker coordinates.

All directions returned here are unit vectors, so a distance ``t`` along a ray is metric distance
from the camera centre (the quantity the dataset stores as depth).
"""

from __future__ import annotations

import torch


def pixel_centres(
    height: int, width: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Pixel-centre coordinates ``[H, W, 2]`` as ``(u, v) = (col + 0.5, row + 0.5)``."""
    rows = torch.arange(height, dtype=torch.float32, device=device) + 0.5
    cols = torch.arange(width, dtype=torch.float32, device=device) + 0.5
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([u, v], dim=-1)


def rays_through_pixels(
    pixels: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through continuous pixel positions.

    Args:
        pixels: ``[..., N, 2]`` pixel coordinates ``(u, v)``; a pixel centre is ``col + 0.5``.
        K: ``[..., 3, 3]`` intrinsics, broadcast over ``N``.
        c2w: ``[..., 4, 4]`` OpenCV camera-to-world, broadcast over ``N``.

    Returns:
        ``origins [..., N, 3]`` (camera centres) and unit ``directions [..., N, 3]`` in world space.
    """
    fx, fy = K[..., 0, 0].unsqueeze(-1), K[..., 1, 1].unsqueeze(-1)
    cx, cy = K[..., 0, 2].unsqueeze(-1), K[..., 1, 2].unsqueeze(-1)
    skew = K[..., 0, 1].unsqueeze(-1)
    y = (pixels[..., 1] - cy) / fy
    x = (pixels[..., 0] - cx - skew * y) / fx  # u = fx x + skew y + cx, as in project_points
    camera_dirs = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    directions = camera_dirs @ c2w[..., :3, :3].transpose(-1, -2)
    directions = torch.nn.functional.normalize(directions, dim=-1)
    origins = c2w[..., :3, 3].unsqueeze(-2).expand_as(directions)
    return origins, directions


def image_rays(
    K: torch.Tensor, c2w: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """All pixel-centre rays of whole images.

    Args:
        K: ``[*batch, 3, 3]`` (e.g. ``[scenes, views, 3, 3]``).
        c2w: ``[*batch, 4, 4]``.

    Returns:
        ``origins, directions``, each ``[*batch, H, W, 3]``.
    """
    grid = pixel_centres(height, width, device=K.device).reshape(-1, 2).to(K.dtype)
    batch = torch.broadcast_shapes(K.shape[:-2], c2w.shape[:-2])
    pixels = grid.expand(*batch, height * width, 2)
    origins, directions = rays_through_pixels(pixels, K, c2w)
    shape = (*batch, height, width, 3)
    return origins.reshape(shape), directions.reshape(shape)


def sample_ray_indices(
    scenes: int,
    views: int,
    height: int,
    width: int,
    rays_per_scene: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw a random subset of (view, row, col) per scene, uniformly over all its target pixels.

    Without replacement when ``rays_per_scene <= views * H * W``.

    Returns:
        ``view_index, row, col``, each ``[scenes, rays_per_scene]`` (int64).
    """
    total = views * height * width
    if rays_per_scene <= total:
        scores = torch.rand(scenes, total, generator=generator, device=device)
        flat = scores.topk(rays_per_scene, dim=-1).indices
    else:
        flat = torch.randint(total, (scenes, rays_per_scene), generator=generator, device=device)
    view_index = flat // (height * width)
    pixel = flat % (height * width)
    return view_index, pixel // width, pixel % width


def indexed_pixel_rays(
    K: torch.Tensor, c2w: torch.Tensor, view: torch.Tensor, row: torch.Tensor, col: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through the centres of chosen pixels of each scene's views, one camera per ray.

    Args:
        K: ``[S, V, 3, 3]``; c2w: ``[S, V, 4, 4]``.
        view, row, col: ``[S, R]`` indices (e.g. from :func:`sample_ray_indices`).

    Returns:
        ``origins, directions [S, R, 3]``.
    """
    scene = torch.arange(K.shape[0], device=K.device).unsqueeze(1)
    pixels = torch.stack([col, row], dim=-1).to(K.dtype) + 0.5  # [S, R, 2]
    # each ray its own "batch" of one pixel, so that it gets its own camera
    origins, directions = rays_through_pixels(
        pixels.unsqueeze(-2), K[scene, view], c2w[scene, view]
    )
    return origins.squeeze(-2), directions.squeeze(-2)


def random_pixel_rays(
    images: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    rays_per_scene: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random pixel-centre rays of each scene's views and the pixel values they see.

    Args:
        images: ``[S, V, H, W, C]`` per-pixel values (colours).
        K: ``[S, V, 3, 3]``; c2w: ``[S, V, 4, 4]``.
        rays_per_scene: rays drawn per scene, uniformly over its ``V * H * W`` pixels (see
            :func:`sample_ray_indices`).

    Returns:
        ``origins, directions [S, R, 3]`` and ``values [S, R, C]``.
    """
    scenes, views, height, width, _ = images.shape
    view, row, col = sample_ray_indices(
        scenes, views, height, width, rays_per_scene, generator=generator, device=images.device
    )
    origins, directions = indexed_pixel_rays(K, c2w, view, row, col)
    scene = torch.arange(scenes, device=images.device).unsqueeze(1)
    return origins, directions, images[scene, view, row, col]


def ray_box_intersection(
    origins: torch.Tensor,
    directions: torch.Tensor,
    box_min: torch.Tensor,
    box_max: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab-method intersection of rays with an axis-aligned box.

    Args:
        origins, directions: ``[..., 3]``.
        box_min, box_max: ``[3]`` or broadcastable to ``[..., 3]``.

    Returns:
        ``t_near [...]`` (clamped at 0, so a ray starting inside the box starts at its origin),
        ``t_far [...]`` and ``hit [...]`` (bool; ``t_far > t_near``). Where there is no hit,
        ``t_near == t_far``.
    """
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    inverse = 1.0 / safe
    t0 = (box_min - origins) * inverse
    t1 = (box_max - origins) * inverse
    t_near = torch.minimum(t0, t1).amax(dim=-1).clamp_min(0.0)
    t_far = torch.maximum(t0, t1).amin(dim=-1)
    hit = t_far > t_near
    t_far = torch.where(hit, t_far, t_near)
    return t_near, t_far, hit


def plucker_coordinates(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Plücker coordinates ``[..., 6] = (d, o × d)`` of rays; independent of the point chosen on the ray."""
    directions = torch.nn.functional.normalize(directions, dim=-1)
    moment = torch.linalg.cross(origins, directions, dim=-1)
    return torch.cat([directions, moment], dim=-1)
