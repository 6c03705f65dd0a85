"""What a scene's own cameras imply: the point they look at (for the importers' scene bounds)
and camera paths around it (for turntable videos and prior samples)."""

from __future__ import annotations

import math

import numpy as np
import torch

from nerfvae.geometry.cameras import look_at

ILL_POSED_EIGENVALUE_RATIO = 1e-3
"""The optical axes meet in no single point when the smallest eigenvalue of their normal matrix is
below this fraction of the largest (the axes are nearly parallel)."""


def optical_axes_point(c2w: np.ndarray) -> tuple[np.ndarray, bool]:
    """The point closest to the optical axes of cameras ``c2w [V, 4, 4]`` (OpenCV, float64), and
    whether the axes single it out.

    Minimises ``sum_i |(I - f_i f_i^T)(p - o_i)|^2`` for camera centres ``o_i`` and forward axes
    ``f_i``. Ill-posed when there is one camera or the axes are (nearly) parallel (see
    :data:`ILL_POSED_EIGENVALUE_RATIO`): then the minimum-norm least-squares point is returned
    with ``False``.

    Written in numpy, float64, as the importers first computed their scene bounds from it: those
    are stored in ``dataset.json``, and torch's summation order and solver differ in the last bits.

    Returns:
        ``point [3]`` float64 and ``well_posed``.
    """
    centres = c2w[:, :3, 3]
    forward = c2w[:, :3, 2] / np.linalg.norm(c2w[:, :3, 2], axis=-1, keepdims=True)
    projectors = np.eye(3) - forward[:, :, None] * forward[:, None, :]  # [V, 3, 3]
    normal_matrix = projectors.sum(axis=0)
    rhs = (projectors @ centres[:, :, None]).sum(axis=0)[:, 0]
    eigenvalues = np.linalg.eigvalsh(normal_matrix)
    if len(c2w) < 2 or eigenvalues[0] < ILL_POSED_EIGENVALUE_RATIO * max(eigenvalues[-1], 1e-12):
        return np.linalg.lstsq(normal_matrix, rhs, rcond=None)[0], False
    return np.linalg.solve(normal_matrix, rhs), True


def common_look_at_point(c2w: torch.Tensor) -> torch.Tensor:
    """Least-squares point ``[3]`` (float32) closest to the optical axes of cameras
    ``c2w [V, 4, 4]``: :func:`optical_axes_point`, for torch cameras."""
    point, _ = optical_axes_point(c2w.detach().double().cpu().numpy())
    return torch.from_numpy(point).float()


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
