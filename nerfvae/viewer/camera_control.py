"""Cameras between the browser and the model.

The browser viewport (viser) reports a camera as an orientation quaternion ``wxyz``, a position, a
vertical field of view and an aspect ratio, in the OpenCV convention (x right, y down, z forward)
that nerfvae uses too, so ``c2w = [R(wxyz) | position]`` with no axis flips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from nerfvae.geometry import focal_from_fov, fov_from_focal, intrinsics_matrix


@dataclass(frozen=True)
class ViewCamera:
    """A pinhole camera to render: ``K [3, 3]``, OpenCV ``c2w [4, 4]`` (float32) and image size."""

    K: torch.Tensor
    c2w: torch.Tensor
    height: int
    width: int

    def scaled(self, scale: float) -> ViewCamera:
        """The same view at ``scale`` times the resolution (at least 4 pixels each way): focal
        lengths and principal point scale with the image, so the picture covers the same field."""
        height = max(4, round(self.height * scale))
        width = max(4, round(self.width * scale))
        factors = torch.tensor([width / self.width, height / self.height, 1.0])
        return ViewCamera(self.K * factors[:, None], self.c2w, height, width)


def quaternion_to_matrix(wxyz: np.ndarray) -> np.ndarray:
    """Unit quaternion ``[4]`` (w, x, y, z; normalised here) -> rotation matrix ``[3, 3]``."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[3, 3]`` -> unit quaternion ``[4]`` (w, x, y, z) with w >= 0.

    Uses the largest of the four squared components for the division (Shepperd's method), so it
    stays accurate for rotations near 180 degrees."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    squares = np.array(
        [1 + trace, 1 + 2 * m[0, 0] - trace, 1 + 2 * m[1, 1] - trace, 1 + 2 * m[2, 2] - trace]
    )
    largest = int(np.argmax(squares))
    root = math.sqrt(max(squares[largest], 1e-12))
    if largest == 0:
        q = [root / 2, (m[2, 1] - m[1, 2]) / (2 * root), (m[0, 2] - m[2, 0]) / (2 * root),
             (m[1, 0] - m[0, 1]) / (2 * root)]  # fmt: skip
    elif largest == 1:
        q = [(m[2, 1] - m[1, 2]) / (2 * root), root / 2, (m[0, 1] + m[1, 0]) / (2 * root),
             (m[0, 2] + m[2, 0]) / (2 * root)]  # fmt: skip
    elif largest == 2:
        q = [(m[0, 2] - m[2, 0]) / (2 * root), (m[0, 1] + m[1, 0]) / (2 * root), root / 2,
             (m[1, 2] + m[2, 1]) / (2 * root)]  # fmt: skip
    else:
        q = [(m[1, 0] - m[0, 1]) / (2 * root), (m[0, 2] + m[2, 0]) / (2 * root),
             (m[1, 2] + m[2, 1]) / (2 * root), root / 2]  # fmt: skip
    quaternion = np.array(q)
    quaternion /= np.linalg.norm(quaternion)
    return quaternion if quaternion[0] >= 0 else -quaternion


def viewport_camera(
    wxyz: np.ndarray, position: np.ndarray, fov_y: float, aspect: float, height: int
) -> ViewCamera:
    """The camera of a browser viewport: orientation ``wxyz``, ``position [3]``, vertical field
    of view ``fov_y`` (radians) and ``aspect`` (width / height), rendered ``height`` pixels high
    with square pixels and the principal point at the image centre."""
    wxyz = np.asarray(wxyz, dtype=np.float64)
    position = np.asarray(position, dtype=np.float64)
    if wxyz.shape != (4,) or not np.isfinite(wxyz).all() or np.linalg.norm(wxyz) < 1e-6:
        raise ValueError(f"viewport orientation must be a finite non-zero quaternion, got {wxyz}")
    if position.shape != (3,) or not np.isfinite(position).all():
        raise ValueError(f"viewport position must be 3 finite numbers, got {position}")
    if not (math.isfinite(fov_y) and 0 < fov_y < math.pi):
        raise ValueError(f"viewport field of view must lie in (0, pi), got {fov_y}")
    if not (math.isfinite(aspect) and aspect > 0):
        raise ValueError(f"viewport aspect must be positive, got {aspect}")
    width = max(4, round(height * aspect))
    focal = focal_from_fov(fov_y, height)
    K = intrinsics_matrix(
        torch.tensor(focal), torch.tensor(focal), torch.tensor(width / 2), torch.tensor(height / 2)
    ).float()
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.from_numpy(quaternion_to_matrix(wxyz)).float()
    c2w[:3, 3] = torch.from_numpy(position).float()
    return ViewCamera(K, c2w, height, width)


def pose_of(c2w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV ``c2w [4, 4]`` -> (``wxyz [4]``, ``position [3]``) as the viewport takes them."""
    matrix = c2w.double().cpu().numpy()
    return matrix_to_quaternion(matrix[:3, :3]), matrix[:3, 3].copy()


def vertical_fov(K: torch.Tensor, height: int) -> float:
    """Vertical field of view (radians) of intrinsics ``K [3, 3]`` for images ``height`` high."""
    return float(fov_from_focal(float(K[1, 1]), height))


def matching_view(
    c2w: torch.Tensor,
    dataset_c2w: torch.Tensor,
    position_tolerance: float = 0.02,
    angle_tolerance_deg: float = 1.0,
) -> int | None:
    """Index of the dataset camera (``dataset_c2w [V, 4, 4]``) at the pose ``c2w [4, 4]``: within
    ``position_tolerance`` (world units) and ``angle_tolerance_deg``; the nearest if several, None
    if none. The browser round-trips poses as float32 quaternions, hence the tolerances."""
    if dataset_c2w.shape[0] == 0:
        return None
    c2w = c2w.double()
    cameras = dataset_c2w.double()
    distance = (cameras[:, :3, 3] - c2w[:3, 3]).norm(dim=-1)
    # angle of the relative rotation R_v^T R: trace = 1 + 2 cos(angle)
    relative = cameras[:, :3, :3].transpose(-1, -2) @ c2w[:3, :3]
    cosine = ((relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    angle = torch.rad2deg(torch.arccos(cosine))
    close = (distance <= position_tolerance) & (angle <= angle_tolerance_deg)
    if not bool(close.any()):
        return None
    return int(torch.where(close, distance, torch.full_like(distance, math.inf)).argmin())
