"""Evaluation building blocks: view lists, metrics, camera paths, image helpers."""

from __future__ import annotations

import math

import pytest
import torch

from nerfvae.errors import DataError
from nerfvae.evaluation.views import standard_view_lists
from nerfvae.geometry import common_look_at_point, look_at, orbit_cameras
from nerfvae.metrics import mean_view_metrics, mse, nan_mean, psnr, ssim, view_metrics
from nerfvae.visualise import image_grid, write_video


def test_view_lists_are_fixed_and_disjoint():
    views = standard_view_lists(10, 5, (1, 2, 3, 5))
    assert views.context == {1: [0], 2: [0, 1], 3: [0, 1, 2], 5: [0, 1, 2, 3, 4]}
    assert views.id_targets == [5, 6, 7, 8, 9]
    assert views.ood_targets == [10, 11, 12, 13, 14]
    with pytest.raises(DataError, match="at most 9"):
        standard_view_lists(10, 0, (10,))
    with pytest.raises(DataError):
        standard_view_lists(10, 0, (0, 1))


def test_view_lists_with_a_fixed_number_of_id_targets():
    # Runs for K = 1, 3 and for K = 2, 5 with the last 3 ID views held out score the same views.
    low, high = standard_view_lists(10, 5, (1, 3), 3), standard_view_lists(10, 5, (2, 5), 3)
    assert low.id_targets == high.id_targets == [7, 8, 9]
    assert high.context == {2: [0, 1], 5: [0, 1, 2, 3, 4]}
    assert standard_view_lists(10, 5, (7,), 3).id_targets == [7, 8, 9]
    with pytest.raises(DataError, match="at most 7 can be context views, but 8"):
        standard_view_lists(10, 5, (8,), 3)
    with pytest.raises(DataError, match="at least 1"):
        standard_view_lists(10, 5, (1,), 0)


def test_psnr_mse_and_masked_psnr_hand_computed():
    target = torch.zeros(4, 4, 3)
    prediction = torch.full((4, 4, 3), 0.1)
    assert mse(prediction, target) == pytest.approx(0.01)
    assert psnr(prediction, target) == pytest.approx(20.0, abs=1e-4)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, 0] = True
    prediction[0, 0] = 0.01
    assert psnr(prediction, target, mask) == pytest.approx(40.0, abs=1e-3)
    assert math.isnan(psnr(prediction, target, torch.zeros(4, 4, dtype=torch.bool)))


def test_view_metrics_hand_computed():
    target = torch.full((8, 8, 3), 0.5)  # 8 x 8: SSIM needs 7 x 7 windows
    prediction = target.clone()
    object_mask = torch.zeros(8, 8, dtype=torch.bool)
    object_mask[:4, :4] = True
    prediction[object_mask] = 0.7  # error 0.2 on a quarter of the pixels: MSE 0.04 / 4 = 0.01
    true_depth = torch.full((8, 8), 2.0)
    true_depth[:4, 4:], true_depth[4:, :4] = 3.0, 1.0  # |error| 1 on half of the pixels
    values = view_metrics(
        prediction,
        target,
        object_mask=object_mask,
        depth=torch.full((8, 8), 2.0),
        true_depth=true_depth,
        context_colour=torch.tensor([0.4, 0.4, 0.4]),  # error 0.1 everywhere: MSE 0.01
        mean_train_image=target,  # exact: MSE 0, clamped at 1e-10 -> 100 dB
    )
    assert list(values) == [  # the order of the keys in the evaluation JSON
        "psnr", "ssim", "mse", "baseline_mean_context_psnr", "baseline_mean_train_psnr",
        "object_psnr", "baseline_mean_context_object_psnr", "baseline_mean_train_object_psnr",
        "depth_mae",
    ]  # fmt: skip
    assert values["mse"] == pytest.approx(0.01, rel=1e-5)
    assert values["psnr"] == pytest.approx(20.0, abs=1e-4)
    assert values["object_psnr"] == pytest.approx(10 * math.log10(1 / 0.04), abs=1e-4)
    assert values["ssim"] == ssim(prediction, target) and 0 < values["ssim"] < 1
    assert values["baseline_mean_context_psnr"] == pytest.approx(20.0, abs=1e-4)
    assert values["baseline_mean_context_object_psnr"] == pytest.approx(20.0, abs=1e-4)
    assert values["baseline_mean_train_psnr"] == pytest.approx(100.0)
    assert values["baseline_mean_train_object_psnr"] == pytest.approx(100.0)
    assert values["depth_mae"] == pytest.approx(0.5)
    # A model without depth (the GQN baseline renders NaN): depth_mae is NaN; no extras, no keys.
    missing = view_metrics(
        prediction, target, depth=torch.full((8, 8), math.nan), true_depth=true_depth
    )
    assert list(missing) == ["psnr", "ssim", "mse", "depth_mae"]
    assert math.isnan(missing["depth_mae"])
    assert "depth_mae" not in view_metrics(prediction, target, depth=torch.zeros(8, 8))


def test_surface_depth_mae_divides_by_opacity_on_absorbed_rays():
    image = torch.full((8, 8, 3), 0.5)
    true_depth = torch.full((8, 8), 4.0)
    opacity = torch.full((8, 8), 0.5)
    opacity[:, :2] = 0.25  # 16 of 64 rays less than half absorbed: left out of the surface error
    depth = opacity * true_depth  # a half-transparent ray at the right surface
    depth[:4, 2:] = opacity[:4, 2:] * 5.0  # 24 rays whose surface is 1 unit too far
    values = view_metrics(image, image, depth=depth, true_depth=true_depth, opacity=opacity)
    assert list(values)[-3:] == ["depth_mae", "surface_depth_mae", "opacity"]
    assert values["opacity"] == pytest.approx((16 * 0.25 + 48 * 0.5) / 64)
    assert values["surface_depth_mae"] == pytest.approx(24 / 48)
    # the expected depth: |0.25*4 - 4| = 3 on 16 rays, |0.5*5 - 4| = 1.5 on 24, |2 - 4| = 2 on 24
    assert values["depth_mae"] == pytest.approx((16 * 3 + 24 * 1.5 + 24 * 2) / 64)
    # No ray half absorbed: no surface to measure (NaN, skipped by the mean over views).
    faint = view_metrics(image, image, depth=depth, true_depth=true_depth, opacity=opacity * 0.1)
    assert math.isnan(faint["surface_depth_mae"])
    # The GQN baseline's NaN opacity gives NaN for both.
    nan = torch.full((8, 8), math.nan)
    gqn = view_metrics(image, image, depth=nan, true_depth=true_depth, opacity=nan)
    assert math.isnan(gqn["surface_depth_mae"]) and math.isnan(gqn["opacity"])


def test_mean_view_metrics_skips_nan_and_counts_views():
    assert nan_mean([1.0, math.nan, 3.0]) == 2.0 and math.isnan(nan_mean([math.nan]))
    results = mean_view_metrics(
        {
            (1, "id"): {"psnr": [10.0, 20.0], "depth_mae": [math.nan, math.nan]},
            (3, "ood"): {"psnr": [math.nan, 30.0, 33.0]},
        }
    )
    assert set(results) == {"1", "3"} and set(results["1"]) == {"id"}
    assert results["1"]["id"]["psnr"] == 15.0 and results["1"]["id"]["num_views"] == 2
    assert math.isnan(results["1"]["id"]["depth_mae"])
    assert results["3"]["ood"] == {"psnr": 31.5, "num_views": 3}


def test_ssim_identity_and_degradation():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(16, 16, 3, generator=generator)
    assert ssim(image, image) == pytest.approx(1.0)
    noisy = (image + 0.3 * torch.randn(16, 16, 3, generator=generator)).clamp(0, 1)
    assert ssim(noisy, image) < 0.9


def test_common_look_at_point_and_orbit():
    target = torch.tensor([0.3, -0.2, 0.5])
    eyes = torch.tensor([[3.0, 0.0, 1.5], [0.0, 3.0, 1.0], [-3.0, 0.5, 2.0]])
    c2w = look_at(eyes, target.expand_as(eyes))
    torch.testing.assert_close(common_look_at_point(c2w), target, atol=1e-4, rtol=0)
    path = orbit_cameras(c2w, 12)
    assert path.shape == (12, 4, 4)
    offsets = path[:, :3, 3] - target
    horizontal = offsets[:, :2].norm(dim=-1)
    torch.testing.assert_close(horizontal, horizontal.mean().expand(12), atol=1e-4, rtol=0)
    # every camera looks at the target
    forward = torch.nn.functional.normalize(-offsets, dim=-1)
    torch.testing.assert_close(path[:, :3, 2], forward, atol=1e-5, rtol=0)
    # the first frame sits at the first reference camera's azimuth
    first = torch.nn.functional.normalize(offsets[0, :2], dim=0)
    reference = torch.nn.functional.normalize(eyes[0, :2] - target[:2], dim=0)
    torch.testing.assert_close(first, reference, atol=1e-5, rtol=0)


def test_image_grid_and_videos(tmp_path):
    grid = image_grid([[torch.zeros(4, 4, 3)], [torch.ones(4, 4, 3), torch.zeros(4, 4, 3)]], pad=1)
    assert grid.shape == (2 * 5 + 1, 2 * 5 + 1, 3)
    frames = torch.rand(3, 16, 16, 3)
    for suffix in ("gif", "mp4"):
        path = tmp_path / f"turntable.{suffix}"
        write_video(path, frames)
        assert path.stat().st_size > 100
    with pytest.raises(ValueError, match="unsupported"):
        write_video(tmp_path / "x.avi", frames)


def test_per_scene_metrics_average_each_scenes_views_in_scene_order():
    from nerfvae.evaluation.evaluate import per_scene_metrics

    per_view = {
        (3, "id"): {"psnr": [10.0, 12.0, 20.0, 22.0, 30.0, 34.0], "nelbo_bits_per_dim": [1, 2, 3]},
        (3, "ood"): {"psnr": [5.0, 7.0, 9.0], "object_psnr": [float("nan"), 4.0, 6.0]},
    }
    out = per_scene_metrics(per_view, num_scenes=3)
    assert out["3"]["id"]["psnr"] == [11.0, 21.0, 32.0]
    assert out["3"]["id"]["nelbo_bits_per_dim"] == [1.0, 2.0, 3.0]
    assert out["3"]["ood"]["psnr"] == [5.0, 7.0, 9.0]
    first, *rest = out["3"]["ood"]["object_psnr"]
    assert math.isnan(first) and rest == [4.0, 6.0]
