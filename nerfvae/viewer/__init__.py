"""Interactive browser viewer for trained runs (``nerfvae viewer``): pick a scene and its
context views, orbit the inferred scene, compare with ground truth, draw posterior and prior
samples. :class:`ViewerSession` holds the state and renders; :mod:`nerfvae.viewer.app` is the
viser page around it."""

from nerfvae.viewer.camera_control import (
    ViewCamera,
    matching_view,
    matrix_to_quaternion,
    pose_of,
    quaternion_to_matrix,
    vertical_fov,
    viewport_camera,
)
from nerfvae.viewer.progressive import FrameTimes, ProgressiveRenderer
from nerfvae.viewer.server import start_viewer
from nerfvae.viewer.session import MODES, LatentChoice, RenderAborted, ViewerSession

__all__ = [
    "MODES",
    "FrameTimes",
    "LatentChoice",
    "ProgressiveRenderer",
    "RenderAborted",
    "ViewCamera",
    "ViewerSession",
    "matching_view",
    "matrix_to_quaternion",
    "pose_of",
    "quaternion_to_matrix",
    "start_viewer",
    "vertical_fov",
    "viewport_camera",
]
