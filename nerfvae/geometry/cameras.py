"""Pinhole cameras and camera conventions.

nerfvae uses the **OpenCV convention** everywhere: a camera looks down its +z axis, +x points right in
the image and +y points down. A camera is described by

* ``K`` — intrinsics ``[..., 3, 3]`` mapping camera-frame points to pixels: ``u = fx * x / z + cx``,
  ``v = fy * y / z + cy``, pixel ``(u, v)`` covering ``[u, u+1) × [v, v+1)`` so that the centre of
  the top-left pixel is ``(0.5, 0.5)``;
* ``c2w`` — camera-to-world rigid transform ``[..., 4, 4]`` whose rotation columns are the camera's x,
  y, z axes in world coordinates and whose translation is the camera centre.

Blender / NeRF-synthetic and nerfstudio files store OpenGL camera-to-world matrices (+y up, camera
looking down −z); :func:`opengl_to_opencv` converts them. The conversion flips the camera's y and z
axes, so it is its own inverse.
"""

from __future__ import annotations

import math

import torch

_FLIP_YZ = (1.0, -1.0, -1.0, 1.0)


def opengl_to_opencv(c2w: torch.Tensor) -> torch.Tensor:
    """Convert OpenGL/Blender camera-to-world matrices ``[..., 4, 4]`` to the OpenCV convention."""
    flip = torch.tensor(_FLIP_YZ, dtype=c2w.dtype, device=c2w.device)
    return c2w * flip  # scales columns: c2w @ diag(1, -1, -1, 1)


def opencv_to_opengl(c2w: torch.Tensor) -> torch.Tensor:
    """Convert OpenCV camera-to-world matrices ``[..., 4, 4]`` to the OpenGL/Blender convention."""
    return opengl_to_opencv(c2w)


def intrinsics_matrix(
    fx: torch.Tensor | float,
    fy: torch.Tensor | float,
    cx: torch.Tensor | float,
    cy: torch.Tensor | float,
) -> torch.Tensor:
    """Build ``K [..., 3, 3]`` from focal lengths and principal point (all in pixels, broadcastable)."""
    fx, fy, cx, cy = (torch.as_tensor(v, dtype=torch.float32) for v in (fx, fy, cx, cy))
    fx, fy, cx, cy = torch.broadcast_tensors(fx, fy, cx, cy)
    zeros, ones = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [
        torch.stack([fx, zeros, cx], dim=-1),
        torch.stack([zeros, fy, cy], dim=-1),
        torch.stack([zeros, zeros, ones], dim=-1),
    ]
    return torch.stack(rows, dim=-2)


def focal_from_fov(fov_radians: float, size_pixels: int) -> float:
    """Focal length in pixels of a pinhole camera with full field of view ``fov`` across ``size``."""
    return 0.5 * size_pixels / math.tan(0.5 * fov_radians)


def fov_from_focal(focal_pixels: float, size_pixels: int) -> float:
    """Full field of view (radians) across ``size`` pixels for a focal length in pixels."""
    return 2.0 * math.atan(0.5 * size_pixels / focal_pixels)


def look_at(
    eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None
) -> torch.Tensor:
    """OpenCV camera-to-world ``[..., 4, 4]`` for cameras at ``eye [..., 3]`` looking at ``target``.

    ``up`` (default world +z) is the world direction that should appear upwards in the image; the
    camera's +y (image down) axis is therefore built from ``-up``.
    """
    eye, target = torch.broadcast_tensors(eye, target)
    if up is None:
        up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device)
    up = up.expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(forward, up, dim=-1)
    if bool((right.norm(dim=-1) < 1e-6).any()):
        raise ValueError("look_at: viewing direction is parallel to the up vector")
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[..., :3, 0] = right
    c2w[..., :3, 1] = down
    c2w[..., :3, 2] = forward
    c2w[..., :3, 3] = eye
    c2w[..., 3, 3] = 1.0
    return c2w


MAX_COORDINATE = 1e6
"""Largest camera coordinate (scene units) accepted: far beyond any scene, far below float32's
limit, so ray arithmetic on it cannot overflow."""
MAX_FOCAL_PER_PIXEL = 1e3
"""Largest focal length accepted, in image widths (heights): a field of view above 0.06°."""


def check_intrinsics(K: torch.Tensor, image_size: tuple[int, int] | None = None) -> None:
    """Raise ``ValueError`` naming the problem if intrinsics ``K [..., 3, 3]`` are invalid: the
    shape, NaN or inf, a focal length that is not positive (the first such camera's is named), a
    row other than ``[0, fy, cy]`` / ``[0, 0, 1]`` below the first (skew is allowed) and, with
    ``image_size`` ``(H, W)``, a principal point more than an image size outside the image or a
    focal length above :data:`MAX_FOCAL_PER_PIXEL` image sizes."""
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"intrinsics must have shape [..., 3, 3], got {tuple(K.shape)}")
    if not torch.isfinite(K).all():
        raise ValueError("intrinsics contain NaN or inf")
    cameras = K.reshape(-1, 3, 3).double()
    focal = cameras[:, [0, 1], [0, 1]]  # [cameras, 2]: fx, fy
    bad = (focal <= 0).any(dim=-1)
    if bad.any():
        fx, fy = (float(value) for value in focal[bad][0])
        raise ValueError(f"focal length must be positive, got fx={fx}, fy={fy}")
    lower = cameras[:, 1:, :].reshape(-1, 6)[:, [0, 3, 4, 5]]  # K10, K20, K21, K22
    expected = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64, device=K.device)
    off = (lower - expected).abs().amax(dim=-1) > 1e-6
    if off.any():
        rows = [[float(v) for v in row] for row in cameras[off][0, 1:]]
        raise ValueError(f"intrinsics rows 2-3 must be [0, fy, cy] and [0, 0, 1], got {rows}")
    if image_size is None:
        return
    height, width = image_size
    size = torch.tensor([width, height], dtype=torch.float64, device=K.device)
    centre = cameras[:, [0, 1], 2]  # [cameras, 2]: cx, cy
    outside = ((centre < -size) | (centre > 2 * size)).any(dim=-1)
    if outside.any():
        cx, cy = (float(value) for value in centre[outside][0])
        raise ValueError(
            f"principal point ({cx:.6g}, {cy:.6g}) lies far outside the {height}x{width} image"
        )
    too_long = (focal > MAX_FOCAL_PER_PIXEL * size).any(dim=-1)
    if too_long.any():
        fx, fy = (float(value) for value in focal[too_long][0])
        raise ValueError(
            f"focal length fx={fx:.6g}, fy={fy:.6g} exceeds {MAX_FOCAL_PER_PIXEL:g} image sizes "
            f"({height}x{width})"
        )


def check_pose(c2w: torch.Tensor, atol: float = 1e-3) -> None:
    """Raise ``ValueError`` naming the problem if camera-to-world ``c2w [..., 4, 4]`` is not a rigid
    transform: the shape, NaN or inf, a rotation that is not orthonormal (scaled or sheared) or is
    a reflection, a last row other than ``[0, 0, 0, 1]`` (within ``atol``; checked in float64), or
    a camera centre beyond :data:`MAX_COORDINATE`."""
    if c2w.shape[-2:] != (4, 4):
        raise ValueError(f"camera pose must have shape [..., 4, 4], got {tuple(c2w.shape)}")
    if not torch.isfinite(c2w).all():
        raise ValueError("camera pose contains NaN or inf")
    poses = c2w.reshape(-1, 4, 4).double()
    rotation = poses[:, :3, :3]
    eye = torch.eye(3, dtype=torch.float64, device=rotation.device)
    deviation = (rotation.transpose(-1, -2) @ rotation - eye).abs()
    error = float(deviation.amax()) if deviation.numel() else 0.0
    if not error <= atol:
        raise ValueError(
            f"camera rotation is not orthonormal (max |R^T R - I| = {error:.2e}); "
            "scaled or sheared poses are not supported"
        )
    if (torch.linalg.det(rotation) < 0).any():
        raise ValueError("camera rotation is a reflection (det < 0), not a rotation")
    last_row = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64, device=rotation.device)
    off = (poses[:, 3, :] - last_row).abs().amax(dim=-1) > atol  # [cameras]
    if off.any():
        row = [float(value) for value in poses[off][0, 3]]
        raise ValueError(f"camera pose last row must be [0, 0, 0, 1], got {row}")
    far = poses[:, :3, 3].abs().amax(dim=-1) > MAX_COORDINATE
    if far.any():
        centre = [float(value) for value in poses[far][0, :3, 3]]
        raise ValueError(
            f"camera position {centre} is beyond {MAX_COORDINATE:g} scene units from the origin"
        )


def check_cameras(
    K: torch.Tensor,
    c2w: torch.Tensor,
    atol: float = 1e-3,
    image_size: tuple[int, int] | None = None,
) -> None:
    """Raise ``ValueError`` naming the problem if ``K [..., 3, 3]`` (:func:`check_intrinsics`, with
    ``image_size`` ``(H, W)`` when given) or ``c2w [..., 4, 4]`` (:func:`check_pose`) are invalid.

    These are the only camera checks: the importers run them on each view they read
    (numpy arrays wrapped with ``torch.from_numpy``), the dataset reader on each scene it loads.
    """
    check_intrinsics(K, image_size)
    check_pose(c2w, atol)


def project_points(points: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """Project world points ``[..., N, 3]`` into cameras (``K [..., 3, 3]``, ``c2w [..., 4, 4]``).

    Returns ``[..., N, 3]``: pixel ``u``, ``v`` (continuous, pixel-centre at +0.5) and camera-frame
    depth ``z``.
    """
    rotation = c2w[..., :3, :3]
    centre = c2w[..., :3, 3]
    camera_points = (
        points - centre.unsqueeze(-2)
    ) @ rotation  # R^T (p - c), batched as row vectors
    z = camera_points[..., 2:3]
    uv = camera_points[..., :2] / z
    pixels = uv @ K[..., :2, :2].transpose(-1, -2) + K[..., :2, 2].unsqueeze(-2)
    return torch.cat([pixels, z], dim=-1)
