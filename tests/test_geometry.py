"""Tests of nerfvae.geometry (OpenCV-convention cameras, rays) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfvae.geometry import (
    check_cameras,
    check_intrinsics,
    check_pose,
    focal_from_fov,
    fov_from_focal,
    image_rays,
    intrinsics_matrix,
    look_at,
    opencv_to_opengl,
    opengl_to_opencv,
    optical_axes_point,
    pixel_centres,
    plucker_coordinates,
    project_points,
    ray_box_intersection,
    rays_through_pixels,
    sample_ray_indices,
)

SQRT_HALF = math.sqrt(0.5)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _c2w(rotation: list[list[float]], translation: list[float]) -> torch.Tensor:
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.tensor(rotation)
    c2w[:3, 3] = torch.tensor(translation)
    return c2w


def _random_cameras(
    count: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random intrinsics (off-centre, non-square) and look-at cameras around the origin."""
    fx = 50 + 100 * torch.rand(count, generator=generator)
    fy = 50 + 100 * torch.rand(count, generator=generator)
    cx = 10 + 50 * torch.rand(count, generator=generator)
    cy = 10 + 30 * torch.rand(count, generator=generator)
    eye = torch.randn(count, 3, generator=generator) * 3
    eye[:, 2] = eye[:, 2].abs() + 0.5  # never straight above the target: up must not be parallel
    target = torch.randn(count, 3, generator=generator) * 0.3
    K = intrinsics_matrix(fx, fy, cx, cy).to(dtype)
    return K, look_at(eye.to(dtype), target.to(dtype))


# ----------------------------------------------------------------------------- intrinsics


def test_intrinsics_matrix_and_fov_round_trip():
    K = intrinsics_matrix(100.0, 50.0, 40.0, 10.0)
    expected = torch.tensor([[100.0, 0.0, 40.0], [0.0, 50.0, 10.0], [0.0, 0.0, 1.0]])
    assert torch.equal(K, expected)
    batched = intrinsics_matrix(torch.tensor([1.0, 2.0]), 3.0, 4.0, 5.0)
    assert batched.shape == (2, 3, 3) and batched[1, 0, 0] == 2.0 and batched[1, 1, 1] == 3.0
    # A 90 degree field of view across 64 pixels has focal length 32 pixels.
    assert focal_from_fov(math.pi / 2, 64) == pytest.approx(32.0)
    assert fov_from_focal(focal_from_fov(0.7, 200), 200) == pytest.approx(0.7)


def test_pixel_centres():
    centres = pixel_centres(2, 3)  # H=2, W=3
    assert centres.shape == (2, 3, 2)
    assert centres[0, 0].tolist() == [0.5, 0.5]
    assert centres[1, 2].tolist() == [2.5, 1.5]  # (u, v) = (col + 0.5, row + 0.5)


# ----------------------------------------------------------------------------- rays


def test_rays_through_pixels_hand_computed_off_centre_non_square():
    # 64x32 image, fx != fy, principal point (40, 10) far from the image centre (32, 16).
    K = intrinsics_matrix(100.0, 50.0, 40.0, 10.0)
    pixels = torch.tensor([[40.0, 10.0], [140.0, 10.0], [40.0, 60.0], [0.0, 0.0]])
    identity = _c2w([[1, 0, 0], [0, 1, 0], [0, 0, 1]], [1.0, 2.0, 3.0])
    origins, directions = rays_through_pixels(pixels, K, identity)
    corner = torch.tensor([-0.4, -0.2, 1.0]) / math.sqrt(0.16 + 0.04 + 1.0)
    expected = torch.stack(
        [
            torch.tensor([0.0, 0.0, 1.0]),  # principal point: straight ahead
            torch.tensor([SQRT_HALF, 0.0, SQRT_HALF]),  # (140-40)/100 = 1 to the right
            torch.tensor([0.0, SQRT_HALF, SQRT_HALF]),  # (60-10)/50 = 1 downwards (+y)
            corner,  # ((0-40)/100, (0-10)/50, 1), normalised
        ]
    )
    torch.testing.assert_close(directions, expected)
    torch.testing.assert_close(origins, torch.tensor([1.0, 2.0, 3.0]).expand(4, 3))

    # The camera turned 90 degrees about world z: its x axis is world +y, its y axis world -x.
    turned = _c2w([[0, -1, 0], [1, 0, 0], [0, 0, 1]], [0.0, 0.0, 0.0])
    _, directions = rays_through_pixels(pixels[1:3], K, turned)
    expected = torch.tensor([[0.0, SQRT_HALF, SQRT_HALF], [-SQRT_HALF, 0.0, SQRT_HALF]])
    torch.testing.assert_close(directions, expected)


def test_image_rays_shape_and_pixel_order():
    scenes, views, height, width = 2, 3, 4, 5
    K, c2w = _random_cameras(scenes * views, _generator(1))
    K, c2w = K.reshape(scenes, views, 3, 3), c2w.reshape(scenes, views, 4, 4)
    origins, directions = image_rays(K, c2w, height, width)
    assert origins.shape == directions.shape == (scenes, views, height, width, 3)
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(scenes, views, height, width))
    # Entry [s, v, row, col] is the ray through pixel centre (col + 0.5, row + 0.5) of that camera.
    s, v, row, col = 1, 2, 3, 1
    fx, fy, cx, cy = K[s, v, 0, 0], K[s, v, 1, 1], K[s, v, 0, 2], K[s, v, 1, 2]
    camera_dir = torch.stack([(col + 0.5 - cx) / fx, (row + 0.5 - cy) / fy, torch.tensor(1.0)])
    expected = torch.nn.functional.normalize(c2w[s, v, :3, :3] @ camera_dir, dim=0)
    torch.testing.assert_close(directions[s, v, row, col], expected)
    torch.testing.assert_close(origins[s, v, row, col], c2w[s, v, :3, 3])


def test_project_points_inverts_rays_through_pixels():
    generator = _generator(2)
    # float64 cameras: project_points inverts R by R^T, exact only for an orthonormal R.
    K, c2w = _random_cameras(3, generator, torch.float64)
    pixels = torch.rand(3, 50, 2, generator=generator, dtype=torch.float64) * 64
    origins, directions = rays_through_pixels(pixels, K, c2w)
    distance = 0.5 + 5 * torch.rand(3, 50, 1, generator=generator, dtype=torch.float64)
    points = origins + distance * directions
    projected = project_points(points, K, c2w)
    torch.testing.assert_close(projected[..., :2], pixels)
    # Camera-frame depth is the distance times the cosine to the optical axis.
    cosine = (directions * c2w[:, None, :3, 2]).sum(-1)
    torch.testing.assert_close(projected[..., 2], distance[..., 0] * cosine)


def test_rays_through_pixels_honours_skew():
    # K[0, 1] (skew) shifts u by s * y: u = fx x + s y + cx. project_points applies it, so the
    # rays must undo it, or the two functions disagree for calibrations with non-zero skew.
    K = intrinsics_matrix(100.0, 80.0, 32.0, 20.0).double()
    K[0, 1] = 10.0
    c2w = torch.eye(4, dtype=torch.float64)
    pixels = torch.tensor([[50.0, 60.0], [0.0, 0.0]], dtype=torch.float64)
    _, directions = rays_through_pixels(pixels, K, c2w)
    # Hand-computed: y = (60 - 20) / 80 = 0.5, x = (50 - 32 - 10 * 0.5) / 100 = 0.13.
    expected = torch.nn.functional.normalize(
        torch.tensor([0.13, 0.5, 1.0], dtype=torch.float64), dim=0
    )
    torch.testing.assert_close(directions[0], expected)
    torch.testing.assert_close(project_points(3.0 * directions, K, c2w)[:, :2], pixels)


# ----------------------------------------------------------------------------- conventions


def test_opengl_opencv_round_trip_flips_y_and_z():
    K_unused, c2w = _random_cameras(5, _generator(3))
    del K_unused
    opengl = opencv_to_opengl(c2w)
    torch.testing.assert_close(opengl_to_opencv(opengl), c2w)
    torch.testing.assert_close(opengl[:, :3, 0], c2w[:, :3, 0])
    torch.testing.assert_close(opengl[:, :3, 1:3], -c2w[:, :3, 1:3])
    torch.testing.assert_close(opengl[:, :, 3], c2w[:, :, 3])


def test_known_blender_camera_maps_to_opencv():
    # Blender camera at (0, -4, 0) with rotation_euler (90°, 0, 0): R = Rx(90°). Blender cameras
    # look down their local -z with local +y up, so this one looks along world +y, up is world +z.
    blender_c2w = _c2w([[1, 0, 0], [0, 0, -1], [0, 1, 0]], [0.0, -4.0, 0.0])
    opencv = opengl_to_opencv(blender_c2w)
    torch.testing.assert_close(opencv[:3, 0], torch.tensor([1.0, 0.0, 0.0]))  # image right
    torch.testing.assert_close(opencv[:3, 1], torch.tensor([0.0, 0.0, -1.0]))  # image down
    torch.testing.assert_close(opencv[:3, 2], torch.tensor([0.0, 1.0, 0.0]))  # forward
    torch.testing.assert_close(opencv, look_at(torch.tensor([0.0, -4.0, 0.0]), torch.zeros(3)))
    # The world origin lands on the principal point at depth 4; a point above it lands higher.
    K = intrinsics_matrix(100.0, 100.0, 32.0, 24.0)
    projected = project_points(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), K, opencv)
    torch.testing.assert_close(projected[0], torch.tensor([32.0, 24.0, 4.0]))
    torch.testing.assert_close(projected[1], torch.tensor([32.0, 24.0 - 25.0, 4.0]))


def test_look_at_orthonormal_right_handed_facing_target_with_world_up():
    generator = _generator(4)
    eye = torch.randn(20, 3, generator=generator) * 4
    target = torch.randn(20, 3, generator=generator)
    c2w = look_at(eye, target)
    rotation = c2w[:, :3, :3]
    torch.testing.assert_close(rotation.transpose(1, 2) @ rotation, torch.eye(3).expand(20, 3, 3))
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(20))
    torch.testing.assert_close(
        rotation[:, :, 2], torch.nn.functional.normalize(target - eye, dim=-1)
    )
    torch.testing.assert_close(c2w[:, :3, 3], eye)
    assert torch.equal(c2w[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(20, 4))
    world_up = torch.tensor([0.0, 0.0, 1.0])
    # The image's x axis is horizontal and its up (-y) axis leans towards world up.
    torch.testing.assert_close(rotation[:, :, 0] @ world_up, torch.zeros(20), atol=1e-6, rtol=0)
    assert ((-rotation[:, :, 1]) @ world_up > 0).all()
    # A custom up vector works the same way.
    custom_up = torch.tensor([0.0, 1.0, 0.0])
    rotation_y_up = look_at(eye, target, custom_up)[:, :3, :3]
    assert ((-rotation_y_up[:, :, 1]) @ custom_up > 0).all()
    with pytest.raises(ValueError, match="parallel"):
        look_at(torch.tensor([0.0, 0.0, 5.0]), torch.zeros(3))


# ----------------------------------------------------------------------------- ray utilities


def test_ray_box_intersection_hand_computed():
    box_min, box_max = -torch.ones(3), torch.ones(3)
    cases = [
        # origin, direction, t_near, t_far, hit
        ([-3.0, 0.0, 0.0], [1.0, 0.0, 0.0], 2.0, 4.0, True),  # straight through
        ([0.0, 0.0, 0.0], [0.0, 1.0, 0.0], 0.0, 1.0, True),  # from inside: starts at origin
        ([0.5, 0.2, -0.3], [0.0, 0.0, -1.0], 0.0, 0.7, True),  # inside, towards a face
        ([-3.0, 2.0, 0.0], [1.0, 0.0, 0.0], None, None, False),  # misses, passing above
        ([-3.0, 0.5, 0.0], [1.0, 0.0, 0.0], 2.0, 4.0, True),  # parallel to y faces, inside slab
        ([-3.0, 1.5, 0.0], [1.0, 0.0, 0.0], None, None, False),  # parallel, outside slab
        ([3.0, 0.0, 0.0], [1.0, 0.0, 0.0], None, None, False),  # box behind the origin
        ([-3.0, -3.0, 0.0], [SQRT_HALF, SQRT_HALF, 0.0], 2 * math.sqrt(2), 4 * math.sqrt(2), True),
    ]
    origins = torch.tensor([case[0] for case in cases])
    directions = torch.tensor([case[1] for case in cases])
    t_near, t_far, hit = ray_box_intersection(origins, directions, box_min, box_max)
    assert hit.tolist() == [case[4] for case in cases]
    for index, (_, _, near, far, did_hit) in enumerate(cases):
        if did_hit:
            assert t_near[index].item() == pytest.approx(near, abs=1e-6)
            assert t_far[index].item() == pytest.approx(far, abs=1e-6)
        else:
            assert t_near[index] == t_far[index]


def test_plucker_coordinates_invariant_along_ray():
    generator = _generator(5)
    origins = torch.randn(10, 3, generator=generator, dtype=torch.float64)
    directions = torch.randn(10, 3, generator=generator, dtype=torch.float64)
    shift = torch.randn(10, 1, generator=generator, dtype=torch.float64) * 5
    reference = plucker_coordinates(origins, directions)
    moved = plucker_coordinates(origins + shift * directions, 3.0 * directions)
    torch.testing.assert_close(moved, reference)
    assert reference.shape == (10, 6)
    unit = torch.nn.functional.normalize(directions, dim=-1)
    torch.testing.assert_close(reference[:, :3], unit)
    # The moment is perpendicular to the direction and its norm is the ray's distance to 0.
    torch.testing.assert_close(
        (reference[:, :3] * reference[:, 3:]).sum(-1), torch.zeros(10, dtype=torch.float64)
    )
    closest = origins - (origins * unit).sum(-1, keepdim=True) * unit
    torch.testing.assert_close(reference[:, 3:].norm(dim=-1), closest.norm(dim=-1))


def test_sample_ray_indices_unique_per_scene_without_replacement():
    scenes, views, height, width = 4, 2, 3, 5
    total = views * height * width
    for rays in (10, total):
        view, row, col = sample_ray_indices(scenes, views, height, width, rays, _generator(6))
        assert view.shape == row.shape == col.shape == (scenes, rays)
        assert view.dtype == torch.int64
        assert (view >= 0).all() and (view < views).all()
        assert (row >= 0).all() and (row < height).all()
        assert (col >= 0).all() and (col < width).all()
        flat = (view * height + row) * width + col
        for scene_flat in flat:  # a handful of scenes, not rays
            assert scene_flat.unique().numel() == rays
    # More rays than pixels: drawn with replacement, still in range.
    view, row, col = sample_ray_indices(2, 1, 2, 2, 9, _generator(7))
    assert view.shape == (2, 9) and (row < 2).all() and (col < 2).all() and (view == 0).all()
    first = sample_ray_indices(2, 2, 3, 3, 5, _generator(8))
    again = sample_ray_indices(2, 2, 3, 3, 5, _generator(8))
    assert all(torch.equal(a, b) for a, b in zip(first, again))


# ----------------------------------------------------------------------------- validation


def test_check_cameras_accepts_valid_and_rejects_invalid():
    K, c2w = _random_cameras(4, _generator(9))
    check_cameras(K, c2w)

    nan_K = K.clone()
    nan_K[1, 0, 2] = float("nan")
    with pytest.raises(ValueError, match="intrinsics contain NaN"):
        check_cameras(nan_K, c2w)
    nan_c2w = c2w.clone()
    nan_c2w[2, 1, 3] = float("nan")
    with pytest.raises(ValueError, match="camera pose contains NaN"):
        check_cameras(K, nan_c2w)
    scaled = c2w.clone()
    scaled[0, :3, :3] *= 1.1
    with pytest.raises(ValueError, match="not orthonormal"):
        check_cameras(K, scaled)
    sheared = c2w.clone()
    sheared[3, :3, 0] += 0.1 * sheared[3, :3, 1]
    with pytest.raises(ValueError, match="not orthonormal"):
        check_cameras(K, sheared)
    reflected = c2w.clone()
    reflected[1, :3, 0] *= -1  # orthonormal, but left-handed
    with pytest.raises(ValueError, match="reflection"):
        check_cameras(K, reflected)
    bad_focal = K.clone()
    bad_focal[0, 1, 1] = 0.0
    with pytest.raises(ValueError, match="focal"):
        check_cameras(bad_focal, c2w)
    bad_row = c2w.clone()
    bad_row[0, 3, 0] = 1.0
    with pytest.raises(ValueError, match="last row"):
        check_cameras(K, bad_row)
    with pytest.raises(ValueError, match=r"\[..., 3, 3\]"):
        check_cameras(K[..., :2], c2w)
    with pytest.raises(ValueError, match=r"\[..., 4, 4\]"):
        check_cameras(K, c2w[..., :3, :])


def test_camera_checks_name_the_first_bad_camera_and_run_on_single_cameras():
    K, c2w = _random_cameras(3, _generator(10))
    check_intrinsics(K[0])
    check_pose(c2w[0])
    bad_focal = K.clone()
    bad_focal[2, 0, 0] = -5.0
    with pytest.raises(ValueError, match=r"focal length must be positive, got fx=-5\.0, fy="):
        check_intrinsics(bad_focal)
    bad_row = c2w.clone()
    bad_row[1, 3, 2] = 0.5
    with pytest.raises(
        ValueError, match=r"last row must be \[0, 0, 0, 1\], got \[0\.0, 0\.0, 0\.5"
    ):
        check_pose(bad_row)
    with pytest.raises(ValueError, match="scaled or sheared"):
        check_pose(c2w[0] * torch.tensor([2.0, 2.0, 2.0, 1.0]))


def test_optical_axes_point_is_the_common_target_and_flags_ill_posed_axes():
    target = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    eyes = torch.tensor([[3.0, 0.0, 1.5], [0.0, 3.0, 1.0], [-3.0, 0.5, 2.0]], dtype=torch.float64)
    c2w = look_at(eyes, target.expand_as(eyes)).numpy()
    point, well_posed = optical_axes_point(c2w)
    assert well_posed and point.dtype == np.float64
    np.testing.assert_allclose(point, target.numpy(), atol=1e-12)
    # one camera: any point on its axis will do; the minimum-norm one is returned, flagged
    point, well_posed = optical_axes_point(c2w[:1])
    assert not well_posed
    forward, centre = c2w[0, :3, 2], c2w[0, :3, 3]
    np.testing.assert_allclose(np.cross(point - centre, forward), 0.0, atol=1e-9)
    # parallel axes (two cameras side by side, looking the same way) single out no point
    side_by_side = np.stack([c2w[0], c2w[0]])
    side_by_side[1, :3, 3] += side_by_side[1, :3, 0]
    assert not optical_axes_point(side_by_side)[1]
