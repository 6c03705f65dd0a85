"""Viewer logic without a browser: camera conversions, the session (scene, context, latents,
display modes) and progressive rendering."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nerfvae.data.rooms import ID_CAMERAS, OOD_CAMERAS, sample_cameras
from nerfvae.data.storage import SceneRecord
from nerfvae.errors import ConfigError
from nerfvae.geometry import image_rays, look_at
from nerfvae.models import NeRFVAE
from nerfvae.training.config import preset
from nerfvae.viewer import (
    MODES,
    ProgressiveRenderer,
    RenderAborted,
    ViewCamera,
    ViewerSession,
    matching_view,
    matrix_to_quaternion,
    pose_of,
    quaternion_to_matrix,
    vertical_fov,
    viewport_camera,
)

HEIGHT = WIDTH = 12


class InMemoryDataset:
    """Two rooms with random images and the generator's cameras (4 ID + 1 OOD views)."""

    def __init__(self) -> None:
        self.meta = SimpleNamespace(
            image_height=HEIGHT,
            image_width=WIDTH,
            scene_bounds=((-3.0, -3.0, 0.0), (3.0, 3.0, 2.5)),
            near=0.1,
            far=8.8,
        )

    def __len__(self) -> int:
        return 2

    def load_scene(self, index: int) -> SceneRecord:
        rng = np.random.default_rng(index)
        K_id, c2w_id = sample_cameras(rng, ID_CAMERAS, 4, HEIGHT, WIDTH)
        K_ood, c2w_ood = sample_cameras(rng, OOD_CAMERAS, 1, HEIGHT, WIDTH)
        images = rng.integers(0, 256, size=(5, HEIGHT, WIDTH, 3), dtype=np.uint8)
        return SceneRecord(
            images=torch.from_numpy(images),
            K=torch.cat([K_id, K_ood]),
            c2w=torch.cat([c2w_id, c2w_ood]),
            view_is_ood=torch.tensor([False] * 4 + [True]),
            scene_id=f"memory-{index}",
        )


@pytest.fixture(scope="module")
def session() -> ViewerSession:
    torch.manual_seed(0)
    config = replace(preset("tiny").nerfvae, scene_min=(-3.0, -3.0, 0.0), scene_max=(3.0, 3.0, 2.5))
    model = NeRFVAE(config).eval()
    with torch.no_grad():  # the posterior head starts at zero: make it depend on the images
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return ViewerSession(model, InMemoryDataset(), std_samples=3, seed=5)


# -- cameras ---------------------------------------------------------------------------------


def test_quaternion_round_trip_including_half_turns():
    rng = np.random.default_rng(0)
    quaternions = rng.normal(size=(50, 4))
    quaternions /= np.linalg.norm(quaternions, axis=1, keepdims=True)
    # rotations by exactly 180 degrees (w = 0) are where naive formulas divide by zero
    quaternions[:3] = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0.6, 0, 0.8]]
    for quaternion in quaternions:
        rotation = quaternion_to_matrix(quaternion)
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        back = matrix_to_quaternion(rotation)
        assert np.allclose(back, quaternion) or np.allclose(back, -quaternion)
    # 90 degrees about +z: x -> y
    half = math.sqrt(0.5)
    assert np.allclose(quaternion_to_matrix(np.array([half, 0, 0, half])) @ [1, 0, 0], [0, 1, 0])


def test_viewport_camera_reproduces_a_dataset_camera(session):
    scene = session.scene
    K, c2w = scene.K[1], scene.c2w[1]
    wxyz, position = pose_of(c2w)
    camera = viewport_camera(wxyz, position, vertical_fov(K, HEIGHT), WIDTH / HEIGHT, HEIGHT)
    assert (camera.height, camera.width) == (HEIGHT, WIDTH)
    assert torch.allclose(camera.K, K, atol=1e-4)
    assert torch.allclose(camera.c2w, c2w, atol=1e-5)
    origins, directions = image_rays(camera.K, camera.c2w, HEIGHT, WIDTH)
    expected_origins, expected_directions = image_rays(K, c2w, HEIGHT, WIDTH)
    assert torch.allclose(directions, expected_directions, atol=1e-5)
    assert torch.allclose(origins, expected_origins, atol=1e-5)


def test_viewport_camera_rejects_nonsense():
    pose = (np.array([1.0, 0, 0, 0]), np.zeros(3))
    for fov, aspect in [(float("nan"), 1.0), (0.0, 1.0), (4.0, 1.0), (1.0, 0.0), (1.0, math.inf)]:
        with pytest.raises(ValueError):
            viewport_camera(*pose, fov, aspect, 16)
    with pytest.raises(ValueError, match="quaternion"):
        viewport_camera(np.zeros(4), np.zeros(3), 1.0, 1.0, 16)
    with pytest.raises(ValueError, match="position"):
        viewport_camera(pose[0], np.array([0, math.nan, 0]), 1.0, 1.0, 16)


def test_scaled_camera_covers_the_same_field():
    camera = ViewCamera(
        torch.tensor([[20.0, 0, 16], [0, 20, 12], [0, 0, 1]]), torch.eye(4), height=24, width=32
    )
    small = camera.scaled(0.25)
    assert (small.height, small.width) == (6, 8)
    # the image corners unproject to the same directions at both resolutions
    for corner, small_corner in [([0, 0], [0, 0]), ([32, 24], [8, 6])]:
        full_ray = torch.linalg.solve(camera.K, torch.tensor([*corner, 1.0]))
        small_ray = torch.linalg.solve(small.K, torch.tensor([*small_corner, 1.0]))
        assert torch.allclose(full_ray, small_ray, atol=1e-6)


def test_matching_view_finds_dataset_cameras_within_tolerance():
    eyes = torch.tensor([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [-2.0, 0.0, 1.0]])
    cameras = look_at(eyes, torch.zeros(3, 3))
    assert matching_view(cameras[1], cameras) == 1
    moved = cameras[2].clone()
    moved[:3, 3] += torch.tensor([0.0, 0.0, 0.01])
    assert matching_view(moved, cameras) == 2
    moved[:3, 3] += torch.tensor([0.0, 0.05, 0.0])
    assert matching_view(moved, cameras) is None
    # a 2 degree turn about the camera's own y axis: too far; 0.5 degrees: still a match
    for degrees, expected in [(2.0, None), (0.5, 0)]:
        angle = math.radians(degrees)
        turn = torch.tensor(
            [
                [math.cos(angle), 0, math.sin(angle)],
                [0, 1, 0],
                [-math.sin(angle), 0, math.cos(angle)],
            ]
        )
        turned = cameras[0].clone()
        turned[:3, :3] = turned[:3, :3] @ turn
        assert matching_view(turned, cameras) == expected


# -- session ---------------------------------------------------------------------------------


def test_session_starts_on_the_first_scene_with_id_context(session):
    session.select_scene(0)
    assert session.context == [0, 1, 2]
    assert session.latent.shape[0] == 1
    assert "scene 0 (memory-0): posterior mean from views 0, 1, 2" == session.describe()


def test_render_maps_agree_with_the_models_render_views(session):
    session.select_scene(0)
    camera = session.dataset_camera(3)
    maps = session.render_maps(session.latent, camera, exact=True)
    expected = session.model.render_views(
        session.latent, camera.K[None, None], camera.c2w[None, None], HEIGHT, WIDTH
    )
    assert torch.allclose(maps["colour"], expected["colour"][:, 0], atol=1e-5)
    assert torch.allclose(maps["depth"], expected["depth"][:, 0], atol=1e-4)


def test_full_frames_run_the_field_at_the_density_grids_samples(session, monkeypatch):
    import nerfvae.models.ray_model as ray_model

    session.select_scene(0)
    bakes = []
    original_bake = ray_model.bake_density_grid

    def counted_bake(field, box_min, box_max, scenes, resolution, **options):
        bakes.append((scenes, resolution))
        return original_bake(field, box_min, box_max, scenes, resolution, **options)

    monkeypatch.setattr(ray_model, "bake_density_grid", counted_bake)
    points = []
    original_forward = session.model.scene_function.forward

    def counted_forward(p, *rest):
        points.append(p[..., 0].numel())
        return original_forward(p, *rest)

    monkeypatch.setattr(session.model.scene_function, "forward", counted_forward)
    camera = session.dataset_camera(3)
    exact = session.render_maps(session.latent, camera, exact=True)
    assert bakes == []  # the model's own sampling, no grid
    points.clear()
    full = session.render_maps(session.latent, camera)
    assert bakes == [(1, session.density_grid.resolution)]
    # after the bake's queries, one query of field_samples per ray for the whole (small) frame
    assert points[-1] == HEIGHT * WIDTH * session.density_grid.field_samples
    assert full["colour"].shape == exact["colour"].shape
    assert torch.isfinite(full["colour"]).all() and not torch.equal(full["depth"], exact["depth"])
    session.render_maps(session.latent, session.dataset_camera(4))  # same latent: no new bake
    assert len(bakes) == 1
    session.new_posterior_sample()
    session.render_maps(session.latent, camera)
    assert len(bakes) == 2
    # the std mode renders the posterior samples where their mean's grid puts the samples: the
    # grid already baked for the mean's own frame, no new bake
    session.show_posterior_mean()
    session.render_maps(session._spread, camera, grid_latent=session.posterior.mean)
    assert len(bakes) == 2
    assert (
        points[-1] == session._spread.shape[0] * HEIGHT * WIDTH * session.density_grid.field_samples
    )
    session.density_grid = replace(session.density_grid, resolution=0)
    try:  # switched off: full frames are the model's own renders
        off = session.render_maps(session.latent, camera)
        assert torch.equal(off["colour"], exact["colour"]) and len(bakes) == 2
    finally:
        session.density_grid = replace(session.density_grid, resolution=64)


def test_preview_frames_use_fewer_samples_per_ray(session):
    session.select_scene(0)
    camera = session.dataset_camera(2)
    full = session.render_maps(session.latent, camera, exact=True)
    assert session.model.config.sampling.num_fine == 0  # the tiny preset: a coarse pass only
    session.preview_samples = session.model.config.sampling.num_coarse
    try:  # as many samples as the model's own pass: the same picture
        same = session.render_maps(session.latent, camera, preview=True)
        assert torch.allclose(same["colour"], full["colour"], atol=1e-6)
        session.preview_samples = 4
        coarse = session.render_maps(session.latent, camera, preview=True)
        assert coarse["colour"].shape == full["colour"].shape
        assert not torch.allclose(coarse["depth"], full["depth"])
    finally:
        session.preview_samples = 16


def test_preview_frames_keep_the_models_opaque_far(session):
    session.select_scene(0)
    camera = session.dataset_camera(2)
    sampling = session.model.config.sampling
    sampling.opaque_far = True
    try:  # every ray that crosses the box ends on a surface, in previews as in full frames
        full = session.render_maps(session.latent, camera)
        preview = session.render_maps(session.latent, camera, preview=True)
        crosses = full["opacity"] > 0.999
        assert crosses.any()
        assert (preview["opacity"][crosses] > 0.999).all()
    finally:
        sampling.opaque_far = False


def test_preview_of_a_planes_model_runs_its_field_at_fewer_proposal_placed_samples():
    torch.manual_seed(0)
    base = preset("planes").nerfvae
    config = replace(
        base,
        latent=replace(base.latent, grid=4),
        scene_min=(-3.0, -3.0, 0.0),
        scene_max=(3.0, 3.0, 2.5),
    )
    model = NeRFVAE(config).eval()
    planes_session = ViewerSession(model, InMemoryDataset(), std_samples=2, seed=5)
    planes_session.select_scene(0)
    camera = planes_session.dataset_camera(2)
    calls = []
    original = model.scene_function.forward

    def counted(points, directions, code):
        calls.append(points.shape[1])
        return original(points, directions, code)

    model.scene_function.forward = counted
    # its own proposal density is cheaper than a grid
    assert planes_session.grid_sampling(planes_session.latent) == {}
    full = planes_session.render_maps(planes_session.latent, camera)
    full_points, calls[:] = sum(calls), []
    preview = planes_session.render_maps(planes_session.latent, camera, preview=True)
    assert preview["colour"].shape == full["colour"].shape
    assert torch.isfinite(preview["colour"]).all()
    # 8 field samples per ray instead of the preset's 24
    assert sum(calls) * config.sampling.num_fine == full_points * 8


def test_every_display_mode_renders_an_image(session):
    session.select_scene(0)
    camera = session.dataset_camera(0).scaled(0.5)
    images = {}
    for mode in MODES:
        session.set_mode(mode)
        images[mode] = session.render_image(camera)
        assert images[mode].shape == (6, 6, 3) and images[mode].dtype == np.uint8
    session.set_mode("RGB")
    # depth and opacity are grey; the std heat map is not
    for mode in ("Depth", "Opacity"):
        assert (images[mode][..., 0] == images[mode][..., 1]).all()
    assert not (images["Posterior std"][..., 0] == images["Posterior std"][..., 2]).all()
    with pytest.raises(ConfigError, match="unknown display mode"):
        session.set_mode("Normals")


def test_latent_choices_are_reproducible_and_distinct(session):
    session.select_scene(1)
    mean = session.latent.clone()
    version = session.version
    session.new_posterior_sample()
    first_sample = session.latent.clone()
    assert session.version > version and not torch.equal(first_sample, mean)
    assert "posterior sample #1" in session.describe()
    session.new_prior_sample()
    assert "prior sample #1" in session.describe()
    assert not torch.equal(session.latent, first_sample)
    session.show_posterior_mean()
    assert torch.equal(session.latent, mean)
    # the same scene and seed give the same sample #1 again
    session.select_scene(1)
    session.new_posterior_sample()
    assert torch.equal(session.latent, first_sample)


def test_context_changes_and_bad_choices(session):
    session.select_scene(0)
    before = session.posterior.mean.clone()
    session.set_context([3, 4])
    assert session.context == [3, 4]
    assert not torch.equal(session.posterior.mean, before)
    with pytest.raises(ConfigError, match="empty"):
        session.set_context([])
    with pytest.raises(ConfigError, match="do not exist"):
        session.set_context([7])
    assert session.context == [3, 4]  # a rejected choice changes nothing
    with pytest.raises(ConfigError, match="has 2 scenes"):
        session.select_scene(2)


def test_render_stops_when_asked(session):
    session.select_scene(0)
    session.chunk_rays = 16
    checks = []

    def abort_on_third_check() -> bool:
        checks.append(1)
        return len(checks) >= 3

    try:
        with pytest.raises(RenderAborted):
            session.render_image(session.dataset_camera(0), should_abort=abort_on_third_check)
    finally:
        session.chunk_rays = 4096
    assert len(checks) == 3


# -- progressive rendering -------------------------------------------------------------------


class FakeRenders:
    """Render function recording calls; a full render takes ``full_seconds`` in small steps."""

    def __init__(self, full_seconds: float = 0.0, fail_on: object = None) -> None:
        self.full_seconds = full_seconds
        self.fail_on = fail_on
        self.published: list[tuple[object, bool]] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def render(self, request, full, should_abort):
        if request == self.fail_on:
            raise RuntimeError("broken request")
        deadline = time.monotonic() + (self.full_seconds if full else 0.0)
        while time.monotonic() < deadline:
            if should_abort():
                raise RenderAborted
            time.sleep(0.005)
        return request

    def publish(self, frame, full):
        with self.lock:
            self.published.append((frame, full))


def test_preview_first_then_full_resolution():
    fake = FakeRenders()
    renderer = ProgressiveRenderer(fake.render, fake.publish, settle_seconds=0.05)
    try:
        renderer.request("a")
        assert renderer.wait_idle(5.0)
        assert fake.published == [("a", False), ("a", True)]
        assert renderer.frames_published == 2
        assert len(renderer.times.preview_all) == 1 and len(renderer.times.full_all) == 1
    finally:
        renderer.stop()
    assert not renderer.alive


def test_a_moving_camera_gets_previews_and_only_the_last_pose_in_full():
    fake = FakeRenders()
    renderer = ProgressiveRenderer(fake.render, fake.publish, settle_seconds=0.3)
    try:
        for step in range(5):
            renderer.request(step)
            time.sleep(0.02)  # faster than the settle time: still moving
        assert renderer.wait_idle(5.0)
        full_frames = [frame for frame, full in fake.published if full]
        assert full_frames == [4]
        assert all(not full for _, full in fake.published[:-1])
    finally:
        renderer.stop()


def test_a_new_request_aborts_the_full_render():
    fake = FakeRenders(full_seconds=2.0)
    renderer = ProgressiveRenderer(fake.render, fake.publish, settle_seconds=0.01)
    try:
        renderer.request("first")
        deadline = time.monotonic() + 5.0
        while ("first", False) not in fake.published and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # the full render of "first" is under way
        fake.full_seconds = 0.0
        renderer.request("second")
        assert renderer.wait_idle(5.0)
        assert renderer.times.aborted == 1
        assert ("first", True) not in fake.published
        assert fake.published[-1] == ("second", True)
    finally:
        renderer.stop()


def test_a_failing_render_is_reported_and_the_thread_lives_on():
    fake = FakeRenders(fail_on="bad")
    renderer = ProgressiveRenderer(
        fake.render, fake.publish, settle_seconds=0.01, on_error=fake.errors.append
    )
    try:
        renderer.request("bad")
        assert renderer.wait_idle(5.0)
        assert len(fake.errors) == 1 and "broken request" in str(fake.errors[0])
        renderer.request("good")
        assert renderer.wait_idle(5.0)
        assert fake.published[-1] == ("good", True) and renderer.alive
    finally:
        renderer.stop()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"port": 99999}, "--port must lie in 0..65535"),
        ({"port": -1}, "--port must lie in 0..65535"),
        ({"std_samples": 1}, "--std-samples 1: need at least 2"),
        ({"settle_seconds": float("nan")}, "--settle-seconds must be 0 or more"),
        ({"preview_scale": 0.0}, "--preview-scale must lie in (0, 1]"),
    ],
)
def test_start_viewer_refuses_bad_options_before_serving(session, options, message):
    pytest.importorskip("viser")  # the `viewer` extra
    from nerfvae.viewer.server import start_viewer

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        start_viewer(session.model, InMemoryDataset(), verbose=False, **options)
