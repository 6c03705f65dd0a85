"""Camera paths derived from a scene's own cameras (for turntable videos and prior samples)."""

from __future__ import annotations

import math

import torch

from nerfvae.geometry.cameras import look_at


def common_look_at_point(c2w: torch.Tensor) -> torch.Tensor:
    """Least-squares point ``[3]`` closest to the optical axes of cameras ``c2w [V, 4, 4]``."""
    centres = c2w[:, :3, 3].double()
    axes = torch.nn.functional.normalize(c2w[:, :3, 2].double(), dim=-1)
    projector = torch.eye(3, dtype=torch.float64) - axes.unsqueeze(-1) * axes.unsqueeze(-2)
    lhs = projector.sum(0)
    rhs = (projector @ centres.unsqueeze(-1)).sum(0).squeeze(-1)
    return torch.linalg.lstsq(lhs, rhs).solution.float()


def orbit_cameras(
    reference_c2w: torch.Tensor, frames: int, up: torch.Tensor | None = None
) -> torch.Tensor:
    """A full circle of ``frames`` cameras ``[frames, 4, 4]`` around the reference cameras'
    common look-at point, at their mean distance and height (measured along ``up``, default +z),
    starting at the first reference camera's azimuth."""
    up = torch.tensor([0.0, 0.0, 1.0]) if up is None else up.float()
    target = common_look_at_point(reference_c2w)
    offsets = reference_c2w[:, :3, 3].float() - target
    heights = offsets @ up
    horizontal = offsets - heights.unsqueeze(-1) * up
    radius = horizontal.norm(dim=-1).mean()
    # An orthonormal basis of the horizontal plane, with the first camera at azimuth 0.
    first = torch.nn.functional.normalize(horizontal[0], dim=0)
    second = torch.linalg.cross(up, first)
    angles = torch.arange(frames, dtype=torch.float32) * (2 * math.pi / frames)
    eyes = (
        target
        + radius * (angles.cos().unsqueeze(-1) * first + angles.sin().unsqueeze(-1) * second)
        + heights.mean() * up
    )
    return look_at(eyes, target.expand_as(eyes), up)
