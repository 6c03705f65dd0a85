"""Mesh export: marching cubes on analytic fields, ground-truth object surfaces, Chamfer
distance, and ``nerfvae export mesh`` on a tiny trained run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nerfvae.cli.main import main as nerfvae_main
from nerfvae.errors import ConfigError, DataError
from nerfvae.evaluation.scene_priors import StandardPrior, prior_sample
from nerfvae.evaluation.views import parse_view_indices
from nerfvae.export import (
    MeshExtractionConfig,
    chamfer_distance,
    density_grid,
    extract_mesh,
    grid_axes,
    mesh_object_chamfer,
    object_signed_distance,
    object_surface_area,
    objects_region,
    sample_mesh_surface,
    sample_object_surfaces,
    write_mesh,
    write_mesh_preview,
)
from nerfvae.models import DiagonalGaussian

trimesh = pytest.importorskip("trimesh")  # the `viewer` extra

SPHERE_CENTRE = (0.2, -0.1, 0.6)
SPHERE_RADIUS = 0.4
SPHERE_COLOUR = (0.8, 0.2, 0.1)


class SphereField(nn.Module):
    """A scene whose density falls linearly with distance from a sphere's centre and crosses
    50 on the sphere, coloured uniformly; ``solid=True`` fills the whole box with 100."""

    def __init__(self, solid: bool = False) -> None:
        super().__init__()
        self.register_buffer("scene_min", torch.tensor([-1.0, -1.0, 0.0]))
        self.register_buffer("scene_max", torch.tensor([1.0, 1.0, 1.5]))
        self.solid = solid
        self.calls = 0

    def scene_function(self, points, directions, latent):
        self.calls += 1
        assert torch.allclose(directions.norm(dim=-1), torch.ones(()))
        distance = (points - torch.tensor(SPHERE_CENTRE)).norm(dim=-1)
        density = (50 + 500 * (SPHERE_RADIUS - distance)).clamp(min=0)
        if self.solid:
            density = torch.full_like(distance, 100.0)
        colour = torch.tensor(SPHERE_COLOUR).expand(*points.shape[:-1], 3)
        return density, colour

    def prior(self, scenes: int) -> DiagonalGaussian:
        return DiagonalGaussian(torch.zeros(scenes, 2, 3), torch.zeros(scenes, 2, 3))


def test_grid_axes_cover_box_with_even_spacing():
    axes, spacing = grid_axes(torch.tensor([-3.0, -3.0, 0.0]), torch.tensor([3.0, 3.0, 2.5]), 61)
    assert [len(axis) for axis in axes] == [61, 61, 26]  # 0.1 m along every axis
    assert torch.allclose(spacing, torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64))
    assert float(axes[2][0]) == 0.0 and float(axes[2][-1]) == 2.5
    with pytest.raises(ConfigError, match="at least 2"):
        grid_axes(torch.zeros(3), torch.ones(3), 1)


def test_sphere_mesh_is_the_analytic_sphere():
    field = SphereField()
    config = MeshExtractionConfig(resolution=49, density_threshold=50.0, chunk_points=5000)
    mesh = extract_mesh(field, torch.zeros(1, 1, 1), config)
    assert field.calls > 2  # chunked evaluation
    radius = np.linalg.norm(mesh.vertices - np.array(SPHERE_CENTRE), axis=-1)
    voxel = 2.0 / 48
    # linear interpolation along grid edges of a field linear in distance: exact up to the
    # curvature of the sphere across one edge (voxel^2 / 8R)
    assert np.abs(radius - SPHERE_RADIUS).max() < voxel**2 / (8 * SPHERE_RADIUS) + 1e-6
    assert mesh.is_watertight
    # faces wind counter-clockwise seen from outside: positive enclosed volume
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * SPHERE_RADIUS**3, rel=0.02)
    outward = np.sum(mesh.vertex_normals * (mesh.vertices - np.array(SPHERE_CENTRE)), axis=-1)
    assert (outward > 0).all()
    expected_colour = np.round(np.array(SPHERE_COLOUR) * 255)
    assert (mesh.visual.vertex_colors[:, :3] == expected_colour).all()


def test_solid_box_closes_at_the_box_and_stays_inside():
    field = SphereField(solid=True)
    mesh = extract_mesh(field, torch.zeros(1, 1, 1), MeshExtractionConfig(resolution=17))
    lo, hi = field.scene_min.numpy(), field.scene_max.numpy()
    assert mesh.is_watertight
    assert (mesh.vertices >= lo - 1e-6).all() and (mesh.vertices <= hi + 1e-6).all()
    # the surface lies between the boundary nodes (0) and the next layer (100), where 10 is
    step = 2.0 / 16
    assert mesh.vertices[:, 0].min() == pytest.approx(lo[0] + 0.1 * step, abs=1e-4)  # level 10


def test_crop_keeps_part_of_the_box_and_closes_the_cut():
    field = SphereField()
    crop = ((-1.0, -1.0, 0.0), (1.0, 1.0, SPHERE_CENTRE[2]))  # the sphere's lower half
    mesh = extract_mesh(field, torch.zeros(1, 1, 1), MeshExtractionConfig(49, 50.0, crop=crop))
    assert mesh.vertices[:, 2].max() <= SPHERE_CENTRE[2] + 1e-6
    assert mesh.is_watertight  # the cut is capped
    # the cap lies within about a voxel below the cut (the density is zeroed on the crop's faces)
    half_ball = 2 / 3 * math.pi * SPHERE_RADIUS**3
    voxel = 2.0 / 48
    assert half_ball - math.pi * SPHERE_RADIUS**2 * 2 * voxel < mesh.volume < half_ball
    with pytest.raises(ConfigError, match="does not overlap the scene box"):
        extract_mesh(field, torch.zeros(1, 1, 1), MeshExtractionConfig(crop=((2, 2, 2), (3, 3, 3))))


def test_mesh_preview_draws_the_coloured_mesh(tmp_path):
    import imageio.v3 as iio

    mesh = extract_mesh(SphereField(), torch.zeros(1, 1, 1), MeshExtractionConfig(17, 50.0))
    path = write_mesh_preview(mesh, tmp_path / "sphere.png", size_pixels=200)
    image = iio.imread(path)
    assert image.shape[:2] == (200, 200)
    red = (image[..., 0] > 100) & (image[..., 1] < 80) & (image[..., 2] < 60)
    assert red.sum() > 500  # the orange-red sphere, shaded


def test_threshold_outside_the_density_range_is_a_clear_error():
    field = SphereField()
    with pytest.raises(ConfigError, match="never crosses the threshold 500"):
        extract_mesh(field, torch.zeros(1, 1, 1), MeshExtractionConfig(16, density_threshold=500))


def test_density_grid_rejects_batched_latents():
    with pytest.raises(ValueError, match="one scene"):
        density_grid(SphereField(), torch.zeros(2, 1, 1))


@pytest.mark.parametrize("suffix", [".ply", ".obj"])
def test_write_mesh_round_trips_vertices_and_colours(tmp_path, suffix):
    mesh = extract_mesh(SphereField(), torch.zeros(1, 1, 1), MeshExtractionConfig(17, 50.0))
    path = write_mesh(mesh, tmp_path / f"sphere{suffix}")
    loaded = trimesh.load(path, process=False)
    assert loaded.vertices.shape == mesh.vertices.shape
    assert np.allclose(loaded.vertices, mesh.vertices, atol=1e-5)
    assert (loaded.visual.vertex_colors[:, :3] == mesh.visual.vertex_colors[:, :3]).all()
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(ConfigError, match="unsupported mesh format"):
        write_mesh(mesh, tmp_path / "sphere.stl")


OBJECTS = [
    {"shape": "sphere", "position": [0.5, 0.2, 0.3], "radius": 0.3, "rotation_z_deg": 10.0},
    {"shape": "cube", "position": [-0.6, 0.1, 0.25], "half_size": 0.25, "rotation_z_deg": 30.0},
    {"shape": "cylinder", "position": [0.0, -0.8, 0.4], "radius": 0.2, "half_height": 0.4,
     "rotation_z_deg": 75.0},
]  # fmt: skip


def test_object_surface_samples_lie_on_the_surfaces_uniformly():
    rng = np.random.default_rng(0)
    points = sample_object_surfaces(OBJECTS, 30000, rng)
    assert points.shape == (30000, 3)
    assert np.abs(object_signed_distance(OBJECTS, points)).max() < 1e-9
    # the share of points on each object follows its area
    areas = np.array([object_surface_area(obj) for obj in OBJECTS])
    per_object = np.abs(
        np.stack([object_signed_distance([obj], points) for obj in OBJECTS])
    ).argmin(0)
    shares = np.bincount(per_object, minlength=3) / len(points)
    assert np.allclose(shares, areas / areas.sum(), atol=0.01)
    # a rotated cube: points spread evenly over its six faces (local max-axis per point)
    cube = OBJECTS[1]
    on_cube = points[per_object == 1] - np.array(cube["position"])
    theta = math.radians(-cube["rotation_z_deg"])
    local_x = math.cos(theta) * on_cube[:, 0] - math.sin(theta) * on_cube[:, 1]
    assert np.abs(np.abs(local_x) - cube["half_size"]).min() < 1e-9
    face_share = (np.abs(np.abs(local_x) - cube["half_size"]) < 1e-9).mean()
    assert face_share == pytest.approx(2 / 6, abs=0.03)


def test_signed_distance_matches_the_generators_definition():
    from nerfvae.data.rooms import ObjectSpec, object_signed_distances

    specs = [
        ObjectSpec(
            shape=obj["shape"], position=tuple(obj["position"]),
            rotation_z_deg=obj["rotation_z_deg"], colour_name="red", colour_rgb=(1, 0, 0),
            material="matte", roughness=1.0, radius=obj.get("radius"),
            half_size=obj.get("half_size"), half_height=obj.get("half_height"),
        )
        for obj in OBJECTS
    ]  # fmt: skip
    points = np.random.default_rng(1).uniform(-1.5, 1.5, size=(500, 3))
    expected = object_signed_distances(specs, points).min(axis=0)
    assert np.allclose(object_signed_distance(OBJECTS, points), expected)


def test_bad_object_lists_raise_data_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="no objects"):
        sample_object_surfaces([], 10, rng)
    with pytest.raises(DataError, match="unknown shape 'torus'"):
        sample_object_surfaces([{"shape": "torus", "position": [0, 0, 0]}], 10, rng)
    with pytest.raises(DataError, match="has no 'half_size'"):
        sample_object_surfaces([{"shape": "cube", "position": [0, 0, 0]}], 10, rng)


def test_chamfer_distance_of_concentric_spheres_is_the_gap():
    rng = np.random.default_rng(0)
    inner = sample_object_surfaces(
        [{"shape": "sphere", "position": [0, 0, 0], "radius": 1.0}], 20000, rng
    )
    same = chamfer_distance(inner, inner)
    assert same == {"accuracy": 0.0, "completeness": 0.0, "chamfer": 0.0}
    outer = inner * 1.05  # every point moved 5 cm outwards
    score = chamfer_distance(outer, inner)
    assert score["chamfer"] == pytest.approx(0.05, abs=0.005)
    assert chamfer_distance(np.zeros((0, 3)), inner)["chamfer"] == math.inf


def test_mesh_chamfer_of_an_exact_mesh_is_near_zero():
    field = SphereField()
    mesh = extract_mesh(field, torch.zeros(1, 1, 1), MeshExtractionConfig(65, 50.0))
    sphere = [{"shape": "sphere", "position": list(SPHERE_CENTRE), "radius": SPHERE_RADIUS}]
    score = mesh_object_chamfer(mesh, sphere, points=5000, margin=0.1, floor_clearance=0.0)
    # vertices lie within ~1 mm of the sphere; the flat triangles in between bulge inwards by
    # at most voxel^2 / (8 R) ~ 0.3 mm; completeness adds the mesh sampling's spacing
    assert score["accuracy"] < 0.001
    assert score["chamfer"] < 0.003
    shifted = [{**sphere[0], "position": [SPHERE_CENTRE[0] + 0.1, *SPHERE_CENTRE[1:]]}]
    assert mesh_object_chamfer(mesh, shifted, points=5000)["chamfer"] > 0.03
    samples = sample_mesh_surface(mesh, 1000)
    assert np.abs(np.linalg.norm(samples - SPHERE_CENTRE, axis=-1) - SPHERE_RADIUS).max() < 0.02


def test_objects_region_excludes_the_floor():
    box_min, box_max = objects_region(OBJECTS, margin=0.2, floor_clearance=0.05)
    assert box_min[2] == pytest.approx(0.05)
    assert box_max[2] == pytest.approx(0.8 + 0.2)
    assert box_min[0] == pytest.approx(-0.6 - math.sqrt(2) * 0.25 - 0.2)


def test_parse_view_indices():
    assert parse_view_indices("1,3, 5", 6) == [1, 3, 5]
    for text, message in [("1,x", "comma-separated"), ("", "empty"), ("0,9", r"\[9\] do not"),
                          ("2,2", "twice"), ("-1", r"\[-1\]")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            parse_view_indices(text, 6, "--context")


def test_prior_sample_matches_the_sample_command():
    field = SphereField()
    all_three = field.prior(3).rsample(torch.Generator().manual_seed(7))
    assert torch.equal(prior_sample(StandardPrior(field), 2, seed=7), all_three[2:3])
    with pytest.raises(ConfigError):
        prior_sample(StandardPrior(field), -1)


# -- the command on a tiny trained run ---------------------------------------------------------


def _export(*args: str) -> int:
    return nerfvae_main(["export", "mesh", *args])


def test_export_mesh_command_writes_a_mesh_inside_the_scene_box(
    tiny_dataset, tiny_run, tmp_path, capsys
):
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.inference import infer_scene
    from nerfvae.training.loading import load_trained_model

    data, run = tiny_dataset, tiny_run
    dataset = MultiSceneDataset(data, "test")
    model, _, _ = load_trained_model(run)
    scene = dataset.load_scene(1)
    # A 2-step model has little structure: pick an iso-level its density does cross.
    latent = infer_scene(model, scene.images, scene.K, scene.c2w, [0, 2]).mean
    density = density_grid(model, latent, MeshExtractionConfig(resolution=24)).density
    level = float(np.quantile(density[1:-1, 1:-1, 1:-1], 0.5))
    out = tmp_path / "scene.ply"
    picture = tmp_path / "scene.png"
    code = _export("--run", str(run), "--data", str(data), "--scene", "1", "--context", "0,2",
                   "--out", str(out), "--resolution", "24", "--density-threshold", f"{level}",
                   "--preview", str(picture))  # fmt: skip
    assert code == 0 and picture.stat().st_size > 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "Chamfer distance to the ground-truth objects" in printed
    mesh = trimesh.load(out, process=False)
    assert len(mesh.faces) > 0 and mesh.is_watertight
    lo, hi = (np.array(bound) for bound in dataset.meta.scene_bounds)
    assert (mesh.vertices >= lo - 1e-5).all() and (mesh.vertices <= hi + 1e-5).all()
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)

    refined = tmp_path / "refined.ply"
    code = _export("--run", str(run), "--data", str(data), "--scene", "1", "--context", "0,2",
                   "--out", str(refined), "--resolution", "24", "--density-threshold", f"{level}",
                   "--test-time.steps", "3", "--test-time.rays-per-scene", "64")  # fmt: skip
    assert code == 0
    refined_mesh = trimesh.load(refined, process=False)
    # the refined posterior is what was meshed
    assert refined_mesh.vertices.shape != mesh.vertices.shape or not np.allclose(
        refined_mesh.vertices, mesh.vertices
    )

    obj = tmp_path / "prior.obj"
    prior_latent = prior_sample(StandardPrior(model), 1)
    prior_density = density_grid(model, prior_latent, MeshExtractionConfig(resolution=16)).density
    prior_level = float(np.quantile(prior_density[1:-1, 1:-1, 1:-1], 0.5))
    code = _export("--run", str(run), "--prior-sample", "1", "--out", str(obj),
                   "--resolution", "16", "--density-threshold", f"{prior_level}")  # fmt: skip
    assert code == 0 and len(trimesh.load(obj, process=False).faces) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scene", "7", "--context", "0"], "--scene 7: split 'test' has 2 scenes"),
        (["--scene", "0", "--context", "0,9"], "view(s) [9] do not exist"),
        (["--scene", "0", "--context", "a"], "comma-separated view indices"),
        (["--scene", "0", "--prior-sample", "1"], "exactly one of --scene"),
        ([], "exactly one of --scene"),
        (["--scene", "0", "--crop", "1,2,3"], "expected six numbers"),
        (["--scene", "0", "--crop", "0,0,0,-1,1,1"], "minimum must be below"),
        (["--scene", "0", "--preview", "x.jpg"], "the preview is a .png"),
    ],
)
def test_export_mesh_bad_choices_are_one_line_errors(
    tiny_dataset, tiny_run, tmp_path, capsys, args, message
):
    data, run = tiny_dataset, tiny_run
    code = _export("--run", str(run), "--data", str(data), "--out", str(tmp_path / "m.ply"), *args)
    assert code == 1
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "m.ply").exists()


def test_export_usage(capsys):
    assert nerfvae_main(["export"]) == 2
    assert "mesh" in capsys.readouterr().out
    assert nerfvae_main(["export", "volume"]) == 2
    assert "unknown export 'volume'" in capsys.readouterr().err
