"""The camera convention proven: Mitsuba renders of a known room against analytic ray casting.

A sphere stands on the floor of the (closed: walls + sky) room. Rays from nerfvae.geometry through
every pixel centre of a camera with an off-centre principal point and a non-square image are cast
analytically against the sphere, the floor, the four walls and the sky plane; the renderer's depth
must equal the nearest hit distance and its object mask must be the sphere's silhouette. The
colour pass must agree too: pixels whose whole area lies on the sphere are red, pixels whose whole
area misses it are grey.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfvae.data import mitsuba as render_module  # sets up Mitsuba's LLVM path before import
from nerfvae.data.rooms import TEXTURE_SIZE, Lighting, ObjectSpec, Room, RoomLayout, Surface
from nerfvae.geometry import image_rays, intrinsics_matrix, look_at, rays_through_pixels

pytest.importorskip("mitsuba")

HEIGHT, WIDTH = 24, 32
SPHERE_CENTRE = np.array([0.3, -0.2, 0.45])
SPHERE_RADIUS = 0.45


def _plain(colour: float) -> Surface:
    texture = np.full((TEXTURE_SIZE, TEXTURE_SIZE, 3), colour, dtype=np.float32)
    return Surface("plain", (colour,) * 3, (colour,) * 3, 1.0, texture)  # type: ignore[arg-type]


def _room() -> Room:
    sphere = ObjectSpec(
        shape="sphere",
        position=tuple(SPHERE_CENTRE.tolist()),  # type: ignore[arg-type]
        rotation_z_deg=0.0,
        colour_name="red",
        colour_rgb=(0.8, 0.02, 0.02),
        material="matte",
        roughness=1.0,
        radius=SPHERE_RADIUS,
    )
    lighting = Lighting(
        sky_rgb=(0.8, 0.8, 0.8),
        area_centre=(0.0, 0.0, 2.45),
        area_half_size=0.5,
        area_rgb=(8.0, 8.0, 8.0),
    )
    return Room(
        RoomLayout(), floor=_plain(0.5), walls=_plain(0.4), lighting=lighting, objects=[sphere]
    )


def _camera() -> tuple[torch.Tensor, torch.Tensor]:
    eye = torch.tensor([2.1, 0.9, 1.4], dtype=torch.float64)
    target = torch.tensor([0.1, 0.0, 0.4], dtype=torch.float64)
    c2w = look_at(eye, target).float()
    # off-centre principal point (both axes, non-integer) and a non-square image
    K = intrinsics_matrix(30.0, 30.0, WIDTH / 2 + 3.3, HEIGHT / 2 - 2.1)
    return K, c2w


def _analytic_hits(
    origins: torch.Tensor, directions: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit distance ``[...]`` and whether it is the sphere, for rays ``[..., 3]``."""
    o = origins.double().numpy()
    d = directions.double().numpy()
    layout = RoomLayout()
    w, h = layout.half_width, layout.wall_height
    candidates = []
    # planes: floor z=0, sky z=h, walls x=±w, y=±w (rays start inside the room)
    for axis, value in ((2, 0.0), (2, h), (0, w), (0, -w), (1, w), (1, -w)):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (value - o[..., axis]) / d[..., axis]
        candidates.append(np.where(t > 1e-9, t, np.inf))
    plane_t = np.min(np.stack(candidates), axis=0)
    offset = o - SPHERE_CENTRE
    b = np.sum(offset * d, axis=-1)
    c = np.sum(offset * offset, axis=-1) - SPHERE_RADIUS**2
    disc = b * b - c
    sphere_t = np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    sphere_t = np.where(sphere_t > 0, sphere_t, np.inf)
    return np.minimum(plane_t, sphere_t), sphere_t < plane_t


@pytest.fixture(scope="module")
def rendered() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    renderer = render_module.RoomRenderer(HEIGHT, WIDTH, spp=16, threads=1)
    renderer.set_room(_room())
    K, c2w = _camera()
    return renderer.render_view(K.numpy(), c2w.numpy())


def test_depth_matches_analytic_ray_casting(rendered: tuple[np.ndarray, ...]) -> None:
    _rgb, depth, _mask = rendered
    K, c2w = _camera()
    origins, directions = image_rays(K, c2w, HEIGHT, WIDTH)  # [H, W, 3]
    expected, _on_sphere = _analytic_hits(origins, directions)
    assert depth.shape == (HEIGHT, WIDTH) and depth.dtype == np.float32
    assert np.isfinite(expected).all()
    # metric distance along the unit ray, to float32 precision of Mitsuba's hit positions
    np.testing.assert_allclose(depth, expected, rtol=1e-4, atol=1e-4)
    # it is distance along the ray, not camera z (which is smaller off the optical axis)
    camera_z = expected * (directions.double().numpy() @ c2w[:3, 2].double().numpy())
    assert np.abs(depth - camera_z).max() > 0.05


def test_object_mask_is_the_sphere_silhouette(rendered: tuple[np.ndarray, ...]) -> None:
    _rgb, _depth, mask = rendered
    K, c2w = _camera()
    origins, directions = image_rays(K, c2w, HEIGHT, WIDTH)
    _t, on_sphere = _analytic_hits(origins, directions)
    assert mask.dtype == np.uint8
    assert on_sphere.sum() > 40  # the sphere is well inside the picture
    np.testing.assert_array_equal(mask, on_sphere.astype(np.uint8))


def test_colour_pass_uses_the_same_camera(rendered: tuple[np.ndarray, ...]) -> None:
    rgb, _depth, _mask = rendered
    K, c2w = _camera()
    # pixel coverage by the sphere from 8x8 sub-pixel rays
    sub = (torch.arange(8, dtype=torch.float32) + 0.5) / 8
    rows, cols = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
    su, sv = torch.meshgrid(sub, sub, indexing="ij")
    u = cols[..., None] + su.reshape(-1)
    v = rows[..., None] + sv.reshape(-1)
    pixels = torch.stack([u, v], dim=-1).reshape(-1, 2)
    origins, directions = rays_through_pixels(pixels, K, c2w)
    _t, on_sphere = _analytic_hits(origins, directions)
    coverage = on_sphere.reshape(HEIGHT, WIDTH, 64).mean(axis=-1)
    red = rgb[..., 0].astype(float)
    green = rgb[..., 1].astype(float) + 1.0
    inside, outside = coverage == 1.0, coverage == 0.0
    assert inside.sum() > 20 and outside.sum() > 200
    lit_inside = inside & (red > 20)  # the sphere's shadowed underside may be black
    assert lit_inside.sum() > 10
    assert (red[lit_inside] / green[lit_inside]).min() > 2.0
    assert (red[outside] / green[outside]).max() < 1.5


def test_mitsuba_camera_mapping_formulas() -> None:
    K, c2w = _camera()
    camera = render_module.mitsuba_camera(K.numpy(), c2w.numpy(), HEIGHT, WIDTH)
    assert math.isclose(camera["fov_x_deg"], math.degrees(2 * math.atan(WIDTH / 60)))
    assert math.isclose(camera["ppo_x"], -3.3 / WIDTH, rel_tol=1e-5) and math.isclose(
        camera["ppo_y"], 2.1 / HEIGHT, rel_tol=1e-5
    )
    to_world = np.array(camera["to_world"])
    np.testing.assert_allclose(to_world[:3, 2], c2w[:3, 2].numpy(), atol=1e-6)  # both look down +z
    np.testing.assert_allclose(to_world[:3, 0], -c2w[:3, 0].numpy(), atol=1e-6)  # Mitsuba +x = left
