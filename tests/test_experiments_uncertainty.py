"""The `uncertainty` and `samples` experiments: the seen/unseen labelling against hand-computed
geometry, both experiments end to end on the tiny run, and clear errors for bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from nerfvae.errors import ConfigError, DataError, NerfVAEError
from nerfvae.evaluation.visibility import label_seen_pixels
from nerfvae.experiments import samples, uncertainty
from nerfvae.experiments.samples import interpolate_latents, spread_views
from nerfvae.geometry import image_rays, intrinsics_matrix

# A hand-built scene: a wall (the plane z = 5) and a square occluder (z = 2, |x|, |y| <= 0.5),
# both facing cameras at z = 0 that look down +z (identity rotation: OpenCV x right, y down).
# 32×32 pixels with focal 16: a 90° field of view, pixel (row, col) centre at u = col + 0.5.
SIZE, FOCAL = 32, 16.0
WALL_Z, OCCLUDER_Z, OCCLUDER_HALF = 5.0, 2.0, 0.5


def camera_at(x: float) -> tuple[torch.Tensor, torch.Tensor]:
    K = intrinsics_matrix(FOCAL, FOCAL, SIZE / 2, SIZE / 2)
    c2w = torch.eye(4)
    c2w[0, 3] = x
    return K, c2w


def ray_cast(K: torch.Tensor, c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth depth ``[H, W]`` (distance along the unit ray) of the wall + occluder scene,
    and whether each pixel hits the occluder ``[H, W]``."""
    origins, directions = image_rays(K, c2w, SIZE, SIZE)
    t_wall = (WALL_Z - origins[..., 2]) / directions[..., 2]
    t_occluder = (OCCLUDER_Z - origins[..., 2]) / directions[..., 2]
    hit_point = origins + t_occluder.unsqueeze(-1) * directions
    on_occluder = (hit_point[..., :2].abs() <= OCCLUDER_HALF).all(-1)
    return torch.where(on_occluder, t_occluder, t_wall), on_occluder


def analytic_seen_from_origin(point: torch.Tensor, on_occluder: torch.Tensor) -> torch.Tensor:
    """Independent answer for a context camera at the origin looking down +z with a 90° field of
    view: a point ``[..., 3]`` is seen if it is within the frustum (|x| < z, |y| < z) and, if it
    is on the wall, the segment to it does not cross the occluder."""
    x, y, z = point.unbind(-1)
    in_frustum = (x.abs() < z) & (y.abs() < z)
    crossing = point[..., :2] * (OCCLUDER_Z / z).unsqueeze(-1)
    blocked = ~on_occluder & (crossing.abs() <= OCCLUDER_HALF).all(-1)
    return in_frustum & ~blocked


def wall_and_occluder_case() -> dict[str, torch.Tensor]:
    context_K, context_c2w = camera_at(0.0)
    target_K, target_c2w = camera_at(1.5)
    context_depth, _ = ray_cast(context_K, context_c2w)
    target_depth, target_on_occluder = ray_cast(target_K, target_c2w)
    seen, valid = label_seen_pixels(
        target_depth[None],
        target_K[None],
        target_c2w[None],
        context_depth[None],
        context_K[None],
        context_c2w[None],
        relative_tolerance=0.03,
    )
    origins, directions = image_rays(target_K, target_c2w, SIZE, SIZE)
    points = origins + target_depth.unsqueeze(-1) * directions
    return {
        "seen": seen[0],
        "valid": valid[0],
        "points": points,
        "on_occluder": target_on_occluder,
    }


def test_label_seen_pixels_hand_computed_pixels() -> None:
    case = wall_and_occluder_case()
    seen = case["seen"]
    assert case["valid"].all()
    # Target row 16 (ray y slope 0.5/16), worked by hand for the camera at x = 1.5:
    # col 0: slope -0.969 -> hits the occluder at x = -0.44, which faces the context camera: seen.
    assert bool(case["on_occluder"][16, 0]) and bool(seen[16, 0])
    # col 8: slope -0.469 -> misses the occluder (x = 0.56), wall at x = -0.84, y = 0.16, inside
    # the occluder's shadow from the origin (|x|, |y| < 1.25): occluded, unseen.
    assert not bool(case["on_occluder"][16, 8]) and not bool(seen[16, 8])
    # col 24: slope 0.531 -> wall at x = 4.16 (< 5, inside the context frustum, not shadowed): seen.
    assert bool(seen[16, 24])
    # col 31: slope 0.969 -> wall at x = 6.34 > 5: outside the context frustum, unseen.
    assert not bool(seen[16, 31])


def test_label_seen_pixels_agrees_with_analytic_visibility() -> None:
    case = wall_and_occluder_case()
    points, on_occluder = case["points"], case["on_occluder"]
    expected = analytic_seen_from_origin(points, on_occluder)
    # Compare where the analytic answer is the same for the point moved by about one context pixel
    # (0.35 at the wall) either way: the nearest-pixel test may differ right at a boundary.
    robust = torch.ones_like(expected)
    for dx, dy in ((0.35, 0.0), (-0.35, 0.0), (0.0, 0.35), (0.0, -0.35)):
        moved = points + torch.tensor([dx, dy, 0.0]) * (points[..., 2:3] / WALL_Z)
        robust &= analytic_seen_from_origin(moved, on_occluder) == expected
    assert robust.float().mean() > 0.8
    assert torch.equal(case["seen"][robust], expected[robust])
    # every kind of pixel occurs: seen wall, seen occluder, shadowed wall, outside the frustum
    x = points[..., 0]
    assert (expected & ~on_occluder & robust).any() and (expected & on_occluder & robust).any()
    assert (~expected & (x.abs() < points[..., 2]) & robust).any()
    assert (~expected & (x >= points[..., 2]) & robust).any()


def test_label_seen_pixels_edge_cases() -> None:
    K, c2w = camera_at(0.0)
    depth, _ = ray_cast(K, c2w)
    # The context view itself: every pixel is seen.
    seen, valid = label_seen_pixels(
        depth[None], K[None], c2w[None], depth[None], K[None], c2w[None]
    )
    assert seen.all() and valid.all()
    # Pixels without a surface (depth 0) are neither seen nor unseen.
    holed = depth.clone()
    holed[0, :5] = 0.0
    seen, valid = label_seen_pixels(
        holed[None], K[None], c2w[None], depth[None], K[None], c2w[None]
    )
    assert not valid[0, 0, :5].any() and not seen[0, 0, :5].any() and seen[0, 1:].all()
    # A context camera turned around (looking down -z) sees nothing of the wall.
    back = c2w.clone()
    back[:3, :3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))
    seen, _ = label_seen_pixels(depth[None], K[None], c2w[None], depth[None], K[None], back[None])
    assert not seen.any()
    # A context depth that disagrees by more than the tolerance means occluded: unseen.
    seen, _ = label_seen_pixels(
        depth[None], K[None], c2w[None], 0.9 * depth[None], K[None], c2w[None], 0.03
    )
    assert not seen.any()
    seen, _ = label_seen_pixels(
        depth[None], K[None], c2w[None], 0.9 * depth[None], K[None], c2w[None], 0.2
    )
    assert seen.all()
    # Two context views: seen by either counts (the camera at 1.5 covers what is right of x = 5).
    K2, c2w2 = camera_at(1.5)
    target_K, target_c2w = camera_at(3.0)
    target_depth, _ = ray_cast(target_K, target_c2w)
    contexts = [ray_cast(K, c2w)[0], ray_cast(K2, c2w2)[0]]
    one, _ = label_seen_pixels(
        target_depth[None], target_K[None], target_c2w[None], contexts[0][None], K[None], c2w[None]
    )
    both, _ = label_seen_pixels(
        target_depth[None],
        target_K[None],
        target_c2w[None],
        torch.stack(contexts),
        torch.stack([K, K2]),
        torch.stack([c2w, c2w2]),
    )
    assert (both >= one).all() and both.sum() > one.sum()


def test_sample_helpers() -> None:
    assert spread_views(8, 3) == [0, 4, 7]
    assert spread_views(8, 1) == [0]
    assert spread_views(3, 3) == [0, 1, 2]
    start, end = torch.zeros(4, 2), torch.ones(4, 2)
    path = interpolate_latents(start, end, 5)
    assert path.shape == (5, 4, 2)
    assert torch.allclose(path[0], start) and torch.allclose(path[-1], end)
    assert torch.allclose(path[2], torch.full((4, 2), 0.5))


def _check_provenance(block: dict, run: Path) -> None:
    assert block["command"].startswith("nerfvae experiment")
    assert block["runs"][0]["run"] == str(run) and block["runs"][0]["steps"] == 8
    assert "cpu" in block["hardware"]


def test_uncertainty_end_to_end(tiny_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "uncertainty"
    argv = ["--run", str(tiny_run), "--data", str(tiny_dataset), "--max-scenes", "1"]
    argv += ["--samples", "3", "--figure-scenes", "1", "--out", str(out)]
    assert uncertainty.run(argv, prog="nerfvae experiment uncertainty") == 0
    result = json.loads((out / "uncertainty.json").read_text())
    assert result["num_scenes"] == 1 and result["settings"]["samples"] == 3
    assert result["view_lists"] == {
        "context": [0],
        "id_targets": [1, 2, 3, 4, 5],
        "ood_targets": [6, 7],
    }
    for group in ("id", "ood", "all"):
        entry = result["results"][group]
        assert 0.0 <= entry["fraction_seen"] <= 1.0
        assert entry["num_pixels"] > 0
        for name in ("colour_std", "depth_std", "colour_error"):
            for region in ("seen", "unseen"):
                value = entry[f"{name}_{region}"]
                assert value is None or (math.isfinite(value) and value >= 0)
            fraction = entry[f"{name}_scenes_unseen_higher"]
            assert fraction is None or 0.0 <= fraction <= 1.0
    assert result["results"]["all"]["num_views"] == 7
    assert result["results"]["all"]["num_pixels"] <= 7 * 32 * 32
    # the OOD cameras of the rooms are elsewhere than the ring: some pixels unseen, some seen
    assert 0.0 < result["results"]["all"]["fraction_seen"] < 1.0
    assert len(result["per_scene"]) == 1 and result["per_scene"][0]["scene"] == 0
    _check_provenance(result["provenance"], tiny_run)
    assert (out / "uncertainty.png").stat().st_size > 0
    report = (out / "uncertainty.md").read_text()
    assert "| ID |" in report and "| OOD |" in report and "nerfvae experiment uncertainty" in report
    assert "8 steps" in report
    assert result["headline"][0]["label"] == "ID targets, 1 context view"
    assert result["settings"]["refinement"]["steps"] == 0 and "refinement steps" not in report


def test_uncertainty_with_refinement(tiny_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    argv = ["--run", str(tiny_run), "--data", str(tiny_dataset), "--max-scenes", "1"]
    argv += ["--samples", "2", "--figure-scenes", "0"]
    runs = {}
    for name, extra in (("plain", []), ("refined", ["--test-time.steps", "2"])):
        out = tmp_path / name
        assert uncertainty.run([*argv, *extra, "--out", str(out)], prog="nerfvae") == 0
        runs[name] = json.loads((out / "uncertainty.json").read_text())
    assert runs["refined"]["settings"]["refinement"]["steps"] == 2
    assert "then 2 test-time refinement steps" in (tmp_path / "refined/uncertainty.md").read_text()
    # the refined posterior is what was sampled
    plain, refined = runs["plain"]["results"]["all"], runs["refined"]["results"]["all"]
    assert plain["colour_error_seen"] != refined["colour_error_seen"]


def test_samples_end_to_end(tiny_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples"
    argv = ["--run", str(tiny_run), "--data", str(tiny_dataset), "--num-prior", "2"]
    argv += ["--scenes", "0,1", "--context", "2", "--steps", "3", "--cameras", "2"]
    argv += ["--out", str(out)]
    assert samples.run(argv, prog="nerfvae experiment samples") == 0
    result = json.loads((out / "samples.json").read_text())
    settings = result["settings"]
    assert settings["scenes"] == [0, 1] and settings["context_views"] == [0, 1]
    assert settings["cameras"]["views"] == [2, 7]  # held-out ID view 2 (K = 2), OOD view 7
    assert settings["cameras"]["view_is_ood"] == [False, True]
    prior, interp = result["prior"], result["interpolation"]
    assert len(prior["mean_colour"]) == 2 and len(prior["mean_depth"]) == 2
    assert prior["image_std"] >= 0 and len(prior["image_std_per_camera"]) == 2
    assert interp["t"] == [0.0, 0.5, 1.0]
    assert len(interp["mean_colour"]) == 3 and len(interp["step_change"]) == 2
    assert all(0.0 <= c <= 1.0 for row in interp["mean_colour"] for c in row)
    assert interp["latent_distance"] > 0 and math.isfinite(interp["start_psnr"])
    _check_provenance(result["provenance"], tiny_run)
    for name in ("prior_samples.png", "interpolation.png", "samples.md"):
        assert (out / name).stat().st_size > 0
    assert "nerfvae experiment samples" in (out / "samples.md").read_text()
    # an orbit instead of dataset cameras
    orbit = tmp_path / "orbit"
    argv = ["--run", str(tiny_run), "--data", str(tiny_dataset), "--num-prior", "1"]
    argv += ["--steps", "2", "--cameras", "2", "--camera-path", "orbit", "--out", str(orbit)]
    assert samples.run(argv, prog="nerfvae experiment samples") == 0
    result = json.loads((orbit / "samples.json").read_text())
    assert result["settings"]["cameras"]["path"] == "orbit"
    assert "start_psnr" not in result["interpolation"]


def _expect_error(module, argv: list[str], error: type[NerfVAEError], *words: str) -> None:
    with pytest.raises(error) as caught:
        module.run(argv, prog="nerfvae experiment x")
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_bad_input_errors(tiny_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    base = ["--data", str(tiny_dataset), "--out", str(tmp_path / "never")]
    run = ["--run", str(tiny_run)]
    missing = str(tmp_path / "no-such-run")
    _expect_error(uncertainty, ["--run", missing, *base], ConfigError, "no-such-run")
    _expect_error(samples, ["--run", missing, *base], ConfigError, "no-such-run")
    _expect_error(uncertainty, [*run, *base, "--split", "nope"], DataError, "nope")
    _expect_error(samples, [*run, *base, "--split", "nope"], DataError, "nope")
    _expect_error(uncertainty, [*run, *base, "--context-view", "6"], ConfigError, "--context-view")
    _expect_error(uncertainty, [*run, *base, "--samples", "1"], ConfigError, "--samples")
    _expect_error(samples, [*run, *base, "--scenes", "0,5"], ConfigError, "scene(s) [5]", "0..1")
    _expect_error(samples, [*run, *base, "--scenes", "1,1"], ConfigError, "--scenes", "twice")
    _expect_error(samples, [*run, *base, "--scenes", "0"], ConfigError, "two")
    _expect_error(samples, [*run, *base, "--context", "7"], ConfigError, "--context")
    _expect_error(samples, [*run, *base, "--cameras", "6"], ConfigError, "--cameras", "5 views")
    # a dataset without depth (as imported real data often is)
    no_depth = tmp_path / "no-depth"
    shutil.copytree(tiny_dataset, no_depth)
    meta = json.loads((no_depth / "dataset.json").read_text())
    meta["has_depth"] = False
    (no_depth / "dataset.json").write_text(json.dumps(meta))
    argv = [*run, "--data", str(no_depth), "--out", str(tmp_path / "never")]
    _expect_error(uncertainty, argv, DataError, "depth")
    assert not (tmp_path / "never").exists()
