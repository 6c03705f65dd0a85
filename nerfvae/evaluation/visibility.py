"""Which pixels of a target view show a surface that a context view saw, from ground-truth depth:
the geometry behind the uncertainty experiment's seen / unseen comparison."""

from __future__ import annotations

import torch

from nerfvae.geometry import image_rays, project_points


def label_seen_pixels(
    target_depth: torch.Tensor,
    target_K: torch.Tensor,
    target_c2w: torch.Tensor,
    context_depth: torch.Tensor,
    context_K: torch.Tensor,
    context_c2w: torch.Tensor,
    relative_tolerance: float = 0.03,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which target pixels show a surface point that some context view saw (ground-truth geometry):
    ``seen [V, H, W]`` and ``valid [V, H, W]`` (pixels with a surface; unseen = ``valid & ~seen``).

    Target pixel ``(v, row, col)`` shows ``origin + depth * direction`` on its unit pixel-centre
    ray; a context view sees it if it lies in front of that camera, projects inside its image and
    its distance from the camera centre is within ``relative_tolerance ×`` the context depth at
    that pixel (nothing nearer occludes it). Depths are distances along unit rays (0 or non-finite:
    no surface): target ``[V, H, W]`` with ``K [V, 3, 3]``, ``c2w [V, 4, 4]`` (OpenCV), context
    ``[C, H_c, W_c]`` with ``[C, 3, 3]``, ``[C, 4, 4]``."""
    if target_depth.dim() != 3 or context_depth.dim() != 3:
        raise ValueError(
            f"depths must be [views, H, W], got target {tuple(target_depth.shape)} and context "
            f"{tuple(context_depth.shape)}"
        )
    views, height, width = target_depth.shape
    contexts, context_height, context_width = context_depth.shape
    target_depth = target_depth.float()
    context_depth = context_depth.float()
    valid = torch.isfinite(target_depth) & (target_depth > 0)
    origins, directions = image_rays(target_K.float(), target_c2w.float(), height, width)
    points = origins + torch.where(valid, target_depth, 0.0).unsqueeze(-1) * directions
    points = points.reshape(1, views * height * width, 3).expand(contexts, -1, -1)  # [C, N, 3]
    projected = project_points(points, context_K.float(), context_c2w.float())  # [C, N, 3]
    u, v, z = projected.unbind(-1)
    inside = (z > 0) & (u >= 0) & (u < context_width) & (v >= 0) & (v < context_height)
    col = torch.where(inside, u, 0.0).floor().long().clamp(0, context_width - 1)
    row = torch.where(inside, v, 0.0).floor().long().clamp(0, context_height - 1)
    context_at = context_depth.reshape(contexts, -1).gather(1, row * context_width + col)
    distance = (points - context_c2w[:, None, :3, 3].float()).norm(dim=-1)  # [C, N]
    agrees = (distance - context_at).abs() <= relative_tolerance * context_at
    seen_by_any = (inside & (context_at > 0) & torch.isfinite(context_at) & agrees).any(dim=0)
    return seen_by_any.reshape(views, height, width) & valid, valid
