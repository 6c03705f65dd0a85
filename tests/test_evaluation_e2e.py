"""eval / render / sample on a tiny trained run: the files and JSON they promise."""

from __future__ import annotations

import itertools
import json
import math

import imageio.v3 as iio
import pytest
import torch

from nerfvae.cli.main import main


def test_eval_writes_documented_json_table_and_figure(tiny_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    code = main(
        ["eval", "--run", str(tiny_run), "--data", str(tiny_dataset), "--split", "test",
         "--context", "1,2,3,5", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["schema_version"] == 1 and result["split"] == "test"
    assert result["num_scenes"] == 2 and result["checkpoint_step"] == 8
    assert result["view_lists"] == {
        "context": {"1": [0], "2": [0, 1], "3": [0, 1, 2], "5": [0, 1, 2, 3, 4]},
        "id_targets": [5],
        "ood_targets": [6, 7],
    }
    for k in ("1", "2", "3", "5"):
        for kind, views in (("id", 2), ("ood", 4)):
            entry = result["results"][k][kind]
            assert entry["num_views"] == views
            for key in ("psnr", "ssim", "mse", "depth_mae", "baseline_mean_train_psnr",
                        "baseline_mean_context_psnr"):  # fmt: skip
                assert math.isfinite(entry[key]), (k, kind, key)
            assert "object_psnr" in entry
            # a tiny run may absorb no ray by half: then the surface error is null, but present
            assert "surface_depth_mae" in entry and 0.0 <= entry["opacity"] <= 1.0
        assert math.isfinite(result["results"][k]["id"]["nelbo_bits_per_dim"])
        assert result["timing"][k]["inference_s_per_scene"] > 0
    assert -10 * math.log10(result["results"]["1"]["id"]["mse"]) <= 60
    table = out.with_suffix(".md").read_text()
    assert "| 5 | OOD |" in table and "object PSNR" in table
    assert iio.imread(tmp_path / "metrics_psnr_vs_k.png").ndim == 3
    assert "| 1 | ID |" in capsys.readouterr().out
    assert result["refinement"]["steps"] == 0
    assert "no test-time refinement" in table


def test_eval_with_refinement_records_it_and_scores_the_refined_posterior(
    tiny_run, tiny_dataset, tmp_path, capsys
):
    base = ["eval", "--run", str(tiny_run), "--data", str(tiny_dataset), "--context", "2"]
    refine = [
        "--test-time.steps",
        "3",
        "--test-time.rays-per-scene",
        "32",
        "--test-time.learning-rate",
        "0.1",
    ]
    assert main([*base, "--out", str(tmp_path / "plain.json")]) == 0
    assert main([*base, *refine, "--out", str(tmp_path / "refined.json")]) == 0
    plain = json.loads((tmp_path / "plain.json").read_text())
    refined = json.loads((tmp_path / "refined.json").read_text())
    assert refined["refinement"] == {"steps": 3, "rays_per_scene": 32, "learning_rate": 0.1}
    assert "then 3 Adam steps" in (tmp_path / "refined.md").read_text()
    for kind in ("id", "ood"):
        assert math.isfinite(refined["results"]["2"][kind]["psnr"])
        # the refined posterior is what was rendered
        assert refined["results"]["2"][kind]["mse"] != plain["results"]["2"][kind]["mse"]
    # the deprecated flags still work, each with a one-line message
    capsys.readouterr()
    old = ["--refine.steps", "3", "--refine.rays-per-scene=32", "--refine.learning-rate", "0.1"]
    assert main([*base, *old, "--out", str(tmp_path / "old.json")]) == 0
    deprecations = [
        line for line in capsys.readouterr().err.splitlines() if "is deprecated" in line
    ]
    assert deprecations == [
        f"nerfvae eval: --refine.{name} is deprecated and will be removed in the next release; "
        f"use --test-time.{name}"
        for name in ("steps", "rays-per-scene", "learning-rate")
    ]
    assert json.loads((tmp_path / "old.json").read_text())["results"] == refined["results"]


def test_eval_hands_each_batchs_posterior_to_on_posterior(tiny_run, tiny_dataset):
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.evaluation.evaluate import evaluate
    from nerfvae.inference import infer_posterior
    from nerfvae.training.loading import load_trained_model

    model, _, _ = load_trained_model(tiny_run, precision="fp32")
    dataset = MultiSceneDataset(tiny_dataset, "test")
    assert len(dataset) >= 2
    seen = []
    evaluate(model, dataset, context_sizes=(1, 2), max_scenes=2, scenes_per_batch=1,
             progress=False, on_posterior=lambda k, first, q: seen.append((k, first, q)))  # fmt: skip
    assert [(k, first, q.mean.shape[0]) for k, first, q in seen] == [
        (1, 0, 1), (2, 0, 1), (1, 1, 1), (2, 1, 1),
    ]  # fmt: skip
    # the posterior of scene 1 from views 0-1 is the encoder's (no refinement)
    scene = dataset.load_scene(1)
    expected = infer_posterior(
        model, scene.images[None, :2].float() / 255, scene.K[None, :2], scene.c2w[None, :2]
    )
    assert torch.allclose(seen[3][2].mean, expected.mean, atol=1e-5)


def test_eval_of_a_dataset_without_a_train_split_leaves_out_only_the_mean_training_image(
    tiny_run, tiny_dataset, tmp_path
):
    """A dataset of held-out scenes alone (no train split) evaluates like any other: every
    metric but the mean-training-image predictor's, as the baseline and the experiments do."""
    import shutil

    data = tmp_path / "no-train"
    shutil.copytree(tiny_dataset, data, ignore=shutil.ignore_patterns("train"))
    meta = json.loads((data / "dataset.json").read_text())
    del meta["splits"]["train"]
    (data / "dataset.json").write_text(json.dumps(meta))
    out = tmp_path / "metrics.json"
    argv = ["eval", "--run", str(tiny_run), "--data", str(data), "--context", "1"]
    assert main([*argv, "--max-scenes", "1", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["results"]["1"]["id"]
    assert 5.0 < entry["psnr"] < 60.0 and 0.0 < entry["baseline_mean_context_psnr"] < 60.0
    assert "baseline_mean_train_psnr" not in entry


def test_eval_rejects_bad_context(tiny_run, tiny_dataset, tmp_path, capsys):
    code = main(
        ["eval", "--run", str(tiny_run), "--data", str(tiny_dataset), "--context", "1,6",
         "--out", str(tmp_path / "m.json")]
    )  # fmt: skip
    assert code == 1
    assert "at most 5 can be context views" in capsys.readouterr().err
    # no scene to score is an error, not an empty result (eval and the per-scene NeRF alike)
    for command in (["eval", "--run", str(tiny_run)], ["baseline", "nerf"]):
        out = tmp_path / "empty.json"
        argv = [*command, "--data", str(tiny_dataset), "--max-scenes", "0", "--out", str(out)]
        assert main(argv) == 1
        assert "--max-scenes must be at least 1, got 0" in capsys.readouterr().err
        assert not out.exists()


def test_render_writes_views_uncertainty_and_turntable(tiny_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "render"
    code = main(
        ["render", "--run", str(tiny_run), "--data", str(tiny_dataset), "--scene", "1",
         "--context", "0,1", "--views", "5,6", "--samples", "3", "--turntable-frames", "4",
         "--test-time.steps", "2", "--test-time.rays-per-scene", "32", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    expected = ["context_00.png", "context_01.png", "sheet.png", "turntable.gif"]
    for view, kind in ((5, "id"), (6, "ood")):
        for suffix in ("gt", "rgb", "depth", "opacity", "sample_mean", "sample_std"):
            expected.append(f"view_{view:02d}_{kind}_{suffix}.png")
    for name in expected:
        assert (out / name).is_file(), name
    assert iio.imread(out / "view_05_id_rgb.png").shape == (32, 32, 3)
    plain = tmp_path / "plain"
    code = main(
        ["render", "--run", str(tiny_run), "--data", str(tiny_dataset), "--scene", "1",
         "--context", "0,1", "--views", "5", "--samples", "0", "--turntable-frames", "0",
         "--out", str(plain)]
    )  # fmt: skip
    assert code == 0  # the refined posterior is what was rendered
    assert not (
        iio.imread(plain / "view_05_id_rgb.png") == iio.imread(out / "view_05_id_rgb.png")
    ).all()
    assert iio.imread(out / "turntable.gif", index=None).shape == (4, 32, 32, 3)
    # the std heat maps' scale is the 99th percentile of the rendered stds, printed
    assert "posterior std heat maps: black = 0, white = " in capsys.readouterr().out


def test_render_and_sample_reject_bad_input(tiny_run, tiny_dataset, tmp_path, capsys):
    base = ["--run", str(tiny_run), "--data", str(tiny_dataset), "--out", str(tmp_path / "x")]
    assert main(["render", *base, "--scene", "9"]) == 1
    assert "split 'test' has scenes 0..1" in capsys.readouterr().err
    assert main(["render", *base, "--context", "0,42"]) == 1
    assert "the scene has views 0..7" in capsys.readouterr().err
    assert main(["render", *base, "--std-scale", "0"]) == 1
    assert "--std-scale must be a positive number" in capsys.readouterr().err
    assert main(["render", *base, "--test-time.steps", "-1"]) == 1
    assert "refine steps must be >= 0" in capsys.readouterr().err
    assert main(["sample", *base, "--split", "nope"]) == 1
    assert "no split 'nope'" in capsys.readouterr().err
    for command, flag, value, message in (
        ("render", "--samples", "1", "need 0 (none) or at least 2 posterior samples"),
        ("render", "--samples", "-1", "--samples -1: need at least 0"),
        ("render", "--turntable-frames", "-1", "--turntable-frames -1: need at least 0"),
        ("sample", "--num", "0", "--num 0: need at least one prior sample"),
        ("sample", "--views", "0", "--views 0: need at least one camera"),
        ("sample", "--turntable-frames", "-1", "--turntable-frames -1: need at least 0"),
    ):
        assert main([command, *base, flag, value]) == 1
        assert message in capsys.readouterr().err
    # checked before any work: the demo renders nothing, export loads nothing
    demo = ["demo", "--run", str(tiny_run), "--out", str(tmp_path / "demo")]
    for flag, value, message in (
        ("--scenes", "0", "--scenes 0: need at least one test scene"),
        ("--samples", "1", "--samples 1: need at least 2 posterior samples"),
        ("--workers", "0", "--workers 0: need at least one render process"),
    ):
        assert main([*demo, flag, value]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
    mesh = ["export", "mesh", *base, "--scene", "0", "--chunk-points", "0"]
    assert main(mesh) == 1
    assert "--chunk-points 0: need at least one grid point" in capsys.readouterr().err


def test_sample_writes_prior_samples_and_turntables(tiny_run, tiny_dataset, tmp_path):
    out = tmp_path / "samples"
    code = main(
        ["sample", "--run", str(tiny_run), "--data", str(tiny_dataset), "--num", "2",
         "--views", "2", "--turntable-frames", "3", "--video-format", "mp4", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    for name in ("samples.png", "sample_00_view_00.png", "sample_01_view_01.png",
                 "sample_00_turntable.mp4", "sample_01_turntable.mp4"):  # fmt: skip
        assert (out / name).is_file(), name
    assert (out / "sample_00_turntable.mp4").stat().st_size > 500
    size = 32  # the tiny dataset's views
    views = {(n, j): iio.imread(out / f"sample_{n:02d}_view_{j:02d}.png").astype(float)
             for n in range(2) for j in range(2)}  # fmt: skip
    for image in views.values():
        # a rendered room, not a blank or saturated image
        assert image.shape == (size, size, 3) and 0 < image.mean() < 255 and image.std() > 1
    # samples.png is the grid of those views: row n = sample n, column j = camera j
    grid = iio.imread(out / "samples.png").astype(float)
    tile = size + 2
    for (n, j), image in views.items():
        top, left = 2 + n * tile, 2 + j * tile
        assert (grid[top : top + size, left : left + size] == image).all(), (n, j)
    # two draws from the prior are two scenes: seen from the same camera they differ
    assert abs(views[0, 0] - views[1, 0]).mean() > 0.1
    assert abs(views[0, 0] - views[0, 1]).mean() > 0.5  # one scene from two cameras differs too
    # each turntable moves the camera: 3 frames of the views' size, no two alike
    turntables = [iio.imread(out / f"sample_{n:02d}_turntable.mp4", index=None) for n in range(2)]
    for frames in turntables:
        assert frames.shape == (3, size, size, 3)
        frames = frames.astype(float)
        for a, b in itertools.combinations(range(3), 2):
            assert abs(frames[a] - frames[b]).mean() > 0.5, (a, b)
    assert abs(turntables[0].astype(float) - turntables[1]).mean() > 0.1  # one per sample


def test_demo_pipeline_writes_report(tiny_run, tmp_path, monkeypatch):
    import nerfvae.demo as demo
    from nerfvae.data.generate import make_settings
    from nerfvae.demo import run_demo
    from nerfvae.inference import RefinementConfig

    def no_second_refinement(*args, **kwargs):
        raise AssertionError("the figures refine again instead of showing the scored posteriors")

    monkeypatch.setattr(demo, "refine_posterior", no_second_refinement)

    settings = make_settings("tiny", scenes=2, eval_scenes=2, views=6, ood_views=2, spp=4, seed=7)
    report = run_demo(
        tmp_path / "demo", tiny_run, settings, workers=1, samples=2, progress=False,
        refinement=RefinementConfig(steps=2, rays_per_scene=32),
    )  # fmt: skip
    text = report.read_text()
    for image in ("scene_0.png", "scene_1.png", "turntable.gif", "prior_samples.png",
                  "metrics_psnr_vs_k.png"):  # fmt: skip
        assert (tmp_path / "demo" / image).is_file(), image
        assert f"({image})" in text
    assert "| 5 | OOD |" in text and "checkpoint step 8" in text
    assert "Std colour scale (magma): black = 0, white = " in text
    # 6 columns (each target: ground truth | render | refined render | true depth | rendered
    # depth | std) and 5 rows (the context views, then 2 ID and 2 OOD targets), 2-pixel gaps
    figure = iio.imread(tmp_path / "demo" / "scene_0.png")
    tile = settings.resolution + 2
    assert figure.shape[:2] == (5 * tile + 2, 6 * tile + 2)
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert set(metrics["results"]) == {"1", "2", "3", "5"}
    assert metrics["refinement"]["steps"] == 0
    refined = json.loads((tmp_path / "demo" / "metrics_refined.json").read_text())
    assert set(refined["results"]) == {"3"} and refined["refinement"]["steps"] == 2
    assert refined["checkpoint_step"] == 8 and refined["run"] == metrics["run"]
    assert "## Metrics with test-time refinement" in text and "then 2 Adam steps" in text
    assert "the figures run the field at 5 samples per ray placed by a density grid" in text


def test_render_latents_bakes_one_density_grid_per_call_and_runs_the_field_at_its_samples(
    tiny_run, monkeypatch
):
    from nerfvae.geometry import intrinsics_matrix, look_at
    from nerfvae.rendering import DensityGridConfig
    from nerfvae.training.loading import load_trained_model
    from nerfvae.visualise import render_latents

    model, _, _ = load_trained_model(tiny_run, precision="fp32")
    latents = torch.randn(
        2, *model.prior(1).mean.shape[1:], generator=torch.Generator().manual_seed(0)
    )
    K = intrinsics_matrix(8.0, 8.0, 4.0, 4.0).expand(3, 3, 3)
    c2w = look_at(torch.tensor([[2.0, -2.0, 1.4], [-2.0, 2.0, 1.4], [2.0, 2.0, 1.4]]),
                  torch.tensor([0.0, 0.0, 0.5]))  # fmt: skip
    own = render_latents(model, latents, K, c2w, 8, 8)
    off = render_latents(model, latents, K, c2w, 8, 8, density_grid=DensityGridConfig(resolution=0))
    assert torch.equal(own["colour"], off["colour"])
    points, bakes = [], []
    forward, grid_sampling = model.scene_function.forward, model.grid_sampling
    monkeypatch.setattr(model.scene_function, "forward",
                        lambda p, *rest: points.append(p.shape[1]) or forward(p, *rest))  # fmt: skip
    monkeypatch.setattr(model, "grid_sampling",
                        lambda *a, **k: bakes.append(1) or grid_sampling(*a, **k))  # fmt: skip
    gridded = render_latents(model, latents, K, c2w, 8, 8, density_grid=DensityGridConfig(16, 3))
    assert len(bakes) == 1  # one grid for both latents, all three views
    assert points[-1] == 3 * 8 * 8 * 3  # per scene: 3 views x 64 rays x 3 field samples
    assert gridded["colour"].shape == own["colour"].shape == (2, 3, 8, 8, 3)
    assert torch.isfinite(gridded["colour"]).all()
    # samples of one posterior: one grid, baked from the mean, places every sample's points
    from nerfvae.models import DiagonalGaussian
    from nerfvae.visualise import posterior_statistics

    calls, points[:] = [], []
    monkeypatch.setattr(model, "grid_sampling",
                        lambda z, config: calls.append(z) or grid_sampling(z, config))  # fmt: skip
    posterior = DiagonalGaussian(latents[:1], torch.full_like(latents[:1], -3.0))
    stats = posterior_statistics(model, posterior, K, c2w, 8, 8, num_samples=4,
                                 density_grid=DensityGridConfig(16, 3))  # fmt: skip
    assert len(calls) == 1 and calls[0] is posterior.mean  # one bake, for mean and samples
    assert points[-1] == 3 * 8 * 8 * 3  # each of the 4 samples at the grid's 3 field samples
    assert stats["sample_std"].shape == (3, 8, 8)


def test_demo_std_column_shares_one_scale():
    from nerfvae.demo import add_std_column
    from nerfvae.visualise import std_colour_scale

    stds = [torch.linspace(0, 1, 200).reshape(2, 10, 10), torch.zeros(2, 10, 10)]
    # the 99th percentile of 200 evenly spaced values in [0, 1] and 200 zeros
    assert std_colour_scale(stds) == pytest.approx(
        torch.quantile(torch.cat([stds[0].flatten(), stds[1].flatten()]), 0.99).item()
    )
    assert std_colour_scale([torch.zeros(1, 2, 2)]) == 1e-6  # no division by zero
    rows = [[torch.zeros(10, 10, 3)], [torch.zeros(10, 10, 3)], [torch.zeros(10, 10, 3)]]
    add_std_column(rows, stds[0], vmax=0.5)
    assert [len(row) for row in rows] == [1, 2, 2]
    # values at or above the scale are white-ish (magma's top), zero is black-ish
    assert rows[2][1][-1, -1].min() > 0.7 and rows[1][1][0, 0].max() < 0.05
    with pytest.raises(ValueError):
        add_std_column(rows[:2], stds[0], vmax=0.5)  # a std map without a row


def test_training_curves_figure_and_table(tiny_run, tmp_path):
    from nerfvae.evaluation.curves import plot, run_curves, table

    curves = run_curves(tiny_run)
    assert [int(r["step"]) for r in curves["metrics"]] == [2, 4, 6, 8]
    minutes = [r["minutes"] for r in curves["metrics"]]
    assert minutes == sorted(minutes) and minutes[0] > 0
    plot([tiny_run], tmp_path / "curves.png")
    assert iio.imread(tmp_path / "curves.png").ndim == 3
    plot([tiny_run], tmp_path / "curves_by_step.png", x="step")
    assert iio.imread(tmp_path / "curves_by_step.png").ndim == 3
    text = table([tiny_run])
    assert "| tiny | 8 |" in text
