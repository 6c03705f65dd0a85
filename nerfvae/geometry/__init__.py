"""Cameras (OpenCV convention), rays and conventions. Imports nothing else from nerfvae."""

from nerfvae.geometry.cameras import (
    check_cameras,
    check_intrinsics,
    check_pose,
    focal_from_fov,
    fov_from_focal,
    intrinsics_matrix,
    look_at,
    opencv_to_opengl,
    opengl_to_opencv,
    project_points,
)
from nerfvae.geometry.paths import common_look_at_point, optical_axes_point, orbit_cameras
from nerfvae.geometry.rays import (
    image_rays,
    indexed_pixel_rays,
    pixel_centres,
    plucker_coordinates,
    random_pixel_rays,
    ray_box_intersection,
    rays_through_pixels,
    sample_ray_indices,
)

__all__ = [
    "check_cameras",
    "check_intrinsics",
    "check_pose",
    "common_look_at_point",
    "focal_from_fov",
    "fov_from_focal",
    "image_rays",
    "indexed_pixel_rays",
    "intrinsics_matrix",
    "look_at",
    "opencv_to_opengl",
    "opengl_to_opencv",
    "optical_axes_point",
    "orbit_cameras",
    "pixel_centres",
    "plucker_coordinates",
    "project_points",
    "random_pixel_rays",
    "ray_box_intersection",
    "rays_through_pixels",
    "sample_ray_indices",
]
