"""Baselines: the per-scene NeRF (batched weights, fitting, runner, CLI) and the GQN-style model
(contract, camera code, whole-view batches, training through the trainer, `nerfvae eval`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from nerfvae.cli.main import main
from nerfvae.data.image_batches import image_batches, make_image_batch
from nerfvae.data.loader import MultiSceneDataset, make_training_batch
from nerfvae.data.storage import DatasetMeta, DatasetWriter, SceneRecord, SplitMeta
from nerfvae.geometry import image_rays, intrinsics_matrix, look_at
from nerfvae.models import RaySceneModel, SceneModel
from nerfvae.models.baselines.gqn import GQN, GQNConfig, camera_code
from nerfvae.models.baselines.nerf import (
    BatchedLinear,
    PerSceneNeRF,
    PerSceneNeRFConfig,
    default_probe_steps,
    fit_per_scene_nerf,
    learning_rate,
)
from nerfvae.rendering import RaySamplingConfig, render_rays

SIZE = 12
BOX = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))


def ring_cameras(views: int, size: int = SIZE, phase: float = 0.0, height: float = 0.8):
    azimuth = torch.arange(views) * (2 * math.pi / max(views, 1)) + phase
    eye = torch.stack(
        [2.5 * azimuth.cos(), 2.5 * azimuth.sin(), torch.full_like(azimuth, height)], -1
    )
    c2w = look_at(eye, torch.zeros(views, 3))
    K = intrinsics_matrix(size * 1.1, size * 1.1, size / 2, size / 2).expand(views, 3, 3).clone()
    return K, c2w


def ball_field(centre: torch.Tensor):
    """A dense ball of radius 0.5 coloured by position (an analytic, view-consistent scene)."""

    def field(points: torch.Tensor, directions: torch.Tensor):
        inside = (points - centre).norm(dim=-1) < 0.5
        density = 30.0 * inside.float()
        colour = (0.5 + 0.5 * (points - centre) / 0.5).clamp(0, 1)
        return density, colour

    return field


def render_ball(centre: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor, size: int = SIZE):
    """``images [V, H, W, 3]``, ``depth [V, H, W]``, ``mask [V, H, W]`` of a ball scene."""
    origins, directions = image_rays(K, c2w, size, size)
    output = render_rays(
        ball_field(centre),
        origins.reshape(1, -1, 3),
        directions.reshape(1, -1, 3),
        1.0,
        4.5,
        RaySamplingConfig(num_coarse=192, num_fine=0),
        training=False,
    ).final
    shape = (K.shape[0], size, size)
    return (
        output.colour.reshape(*shape, 3),
        output.depth.reshape(shape),
        output.opacity.reshape(shape) > 0.5,
    )


def ball_scene(index: int, id_views: int, ood_views: int) -> SceneRecord:
    generator = torch.Generator().manual_seed(index)
    centre = (torch.rand(3, generator=generator) - 0.5) * 0.6
    K_id, c2w_id = ring_cameras(id_views, phase=0.3 * index)
    K_ood, c2w_ood = ring_cameras(ood_views, phase=0.1, height=2.0)  # higher: OOD elevation
    K, c2w = torch.cat([K_id, K_ood]), torch.cat([c2w_id, c2w_ood])
    images, depth, mask = render_ball(centre, K, c2w)
    return SceneRecord(
        images=(images * 255).round().to(torch.uint8),
        K=K,
        c2w=c2w,
        view_is_ood=torch.arange(id_views + ood_views) >= id_views,
        depth=depth,
        object_mask=mask.to(torch.uint8),
        objects=[{"shape": "sphere", "position": centre.tolist()}],
        scene_id=f"ball-{index}",
    )


@pytest.fixture(scope="module")
def ball_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("balls")
    id_views, ood_views = 6, 2
    meta = DatasetMeta(
        name="balls",
        image_height=SIZE,
        image_width=SIZE,
        scene_bounds=BOX,
        near=1.0,
        far=4.5,
        splits={
            "train": SplitMeta(id_views=id_views),
            "test": SplitMeta(id_views=id_views, ood_views=ood_views),
        },
    )
    writer = DatasetWriter(root, meta)
    writer.write_shard("train", 0, 0, [ball_scene(i, id_views, 0) for i in range(4)])
    writer.write_shard("test", 0, 0, [ball_scene(100 + i, id_views, ood_views) for i in range(2)])
    writer.finalize()
    return root


# -- per-scene NeRF ---------------------------------------------------------------------------


def tiny_nerf_config(**overrides) -> PerSceneNeRFConfig:
    config = PerSceneNeRFConfig(
        width=32,
        depth=3,
        skip_layer=2,
        point_frequencies=3,
        direction_frequencies=1,
        sampling=RaySamplingConfig(num_coarse=16, num_fine=16),
        steps=60,
        rays_per_scene=128,
        learning_rate=5e-3,
        final_learning_rate=1e-3,
        log_every=20,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def test_batched_linear_is_one_linear_layer_per_scene() -> None:
    torch.manual_seed(0)
    layer = BatchedLinear(3, 5, 4)
    x = torch.randn(3, 7, 5)
    expected = torch.stack([x[s] @ layer.weight[s] + layer.bias[s, 0] for s in range(3)])
    torch.testing.assert_close(layer(x), expected)
    # independent initialisation per scene
    assert not torch.equal(layer.weight[0], layer.weight[1])


def test_per_scene_nerf_shapes_and_separate_coarse_fine() -> None:
    torch.manual_seed(0)
    model = PerSceneNeRF(2, tiny_nerf_config(), *BOX).eval()
    assert model.fine is not None and model.fine is not model.coarse
    K, c2w = ring_cameras(3)
    views = model.render_views(K.expand(2, 3, 3, 3), c2w.expand(2, 3, 4, 4), SIZE, SIZE + 2, 50)
    assert views["colour"].shape == (2, 3, SIZE, SIZE + 2, 3)
    assert views["depth"].shape == views["opacity"].shape == (2, 3, SIZE, SIZE + 2)
    origins = c2w[:2, :3, 3].unsqueeze(1).expand(2, 5, 3)
    directions = torch.nn.functional.normalize(-origins, dim=-1)
    output = model.render(origins, directions)
    assert output.coarse.colour.shape == output.fine.colour.shape == (2, 5, 3)


def test_scenes_do_not_share_gradients() -> None:
    """Scene 1's loss moves only scene 1's weights: batching scenes is exactly separate NeRFs."""
    torch.manual_seed(0)
    model = PerSceneNeRF(3, tiny_nerf_config(), *BOX)
    K, c2w = ring_cameras(3)
    origins, directions = image_rays(K[:1], c2w[:1], 4, 4)
    origins = origins.reshape(1, -1, 3).expand(3, -1, 3)
    directions = directions.reshape(1, -1, 3).expand(3, -1, 3)
    output = model.render(origins, directions, generator=torch.Generator().manual_seed(0))
    (output.fine.colour[1].sum() + output.coarse.colour[1].sum()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad[[0, 2]].abs().max() == 0, name
    assert model.fine.hidden[0].weight.grad[1].abs().max() > 0


def test_learning_rate_schedule_and_probe_steps() -> None:
    config = tiny_nerf_config(steps=100, learning_rate=1e-3, final_learning_rate=1e-5)
    assert learning_rate(0, config) == pytest.approx(1e-3)
    assert learning_rate(50, config) == pytest.approx(1e-4)  # geometric mean half-way
    assert learning_rate(100, config) == pytest.approx(1e-5)
    assert default_probe_steps(1000, 3) == (0, 10, 100, 1000)


def test_per_scene_nerf_fits_a_ball() -> None:
    """Optimising on 6 views of an analytic ball: the loss falls and held-out PSNR rises."""
    torch.set_num_threads(1)
    scene = ball_scene(0, 6, 2)
    images = scene.images.float().unsqueeze(0) / 255.0
    K, c2w = scene.K.unsqueeze(0), scene.c2w.unsqueeze(0)

    def probe(step, model):
        rendered = model.render_views(K[:, 6:], c2w[:, 6:], SIZE, SIZE)["colour"]
        error = (rendered - images[:, 6:]).square().mean()
        return {"held_out_psnr": float(-10 * torch.log10(error))}

    config = tiny_nerf_config(steps=100, rays_per_scene=192, log_every=25)
    fit = fit_per_scene_nerf(
        images[:, :6], K[:, :6], c2w[:, :6], config, *BOX, probe=probe, probe_steps=(0, 100)
    )
    history = fit.history
    assert [row["step"] for row in history] == [0, 25, 50, 75, 100]
    assert history[-1]["train_loss"] < 0.5 * history[1]["train_loss"]
    assert history[-1]["train_psnr"] > history[1]["train_psnr"] + 4.0
    assert history[-1]["held_out_psnr"] > history[0]["held_out_psnr"] + 4.0
    assert fit.wall_s > 0 and not fit.model.training


def test_baseline_nerf_cli_writes_eval_like_report(ball_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "nerf.json"
    code = main(
        [
            "baseline", "nerf", "--data", str(ball_dataset), "--context", "1,2", "--out",
            str(out), "--steps", "6", "--width", "16", "--depth", "2", "--skip-layer", "-1",
            "--point-frequencies", "2", "--direction-frequencies", "1", "--num-coarse", "8",
            "--num-fine", "8", "--rays-per-scene", "32", "--log-every", "3", "--probe-views",
            "1", "--probe-points", "2", "--threads", "1",
        ]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["view_lists"]["id_targets"] == [2, 3, 4, 5]
    assert result["view_lists"]["ood_targets"] == [6, 7]
    assert result["probe_views"] == 1
    for k in ("1", "2"):
        assert result["results"][k]["id"]["num_views"] == 2 * 4
        assert result["results"][k]["ood"]["num_views"] == 2 * 2
        for key in ("psnr", "ssim", "object_psnr", "depth_mae", "baseline_mean_train_psnr"):
            assert math.isfinite(result["results"][k]["id"][key]), key
        assert [row["step"] for row in result["history"][k]] == [0, 2, 3, 6]
        assert "probe_psnr_ood" in result["history"][k][0]
        assert result["timing"][k]["fit_s_per_scene"] > 0
    assert (tmp_path / "nerf.md").read_text().count("| 1 | ID |") == 1
    assert (tmp_path / "nerf_psnr_vs_steps.png").stat().st_size > 0
    assert not (tmp_path / "nerf.parts").exists()  # the finished run's saved batches are gone


def test_per_scene_nerf_resumes_from_saved_batches(
    ball_dataset: Path, tmp_path: Path, monkeypatch
) -> None:
    """A run stopped after its first batch of scenes fits only the second when started again,
    with the same result as an uninterrupted run; other settings in the same folder: refused."""
    import nerfvae.evaluation.per_scene_nerf as per_scene
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.errors import DataError

    dataset = MultiSceneDataset(ball_dataset, "test")
    options = dict(context_sizes=(1, 2), scenes_per_batch=1, probe_views=1, probe_points=2)
    config = tiny_nerf_config(steps=4, log_every=2)
    whole = per_scene.evaluate_per_scene_nerf(dataset, config, progress=False, **options)

    real_fit, calls = per_scene.fit_per_scene_nerf, []

    def stop_in_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # batch 0 fits K = 1, 2; batch 1 stops at its first fit
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(per_scene, "fit_per_scene_nerf", stop_in_second_batch)
    parts = tmp_path / "nerf.parts"
    with pytest.raises(KeyboardInterrupt):
        per_scene.evaluate_per_scene_nerf(dataset, config, progress=False, parts=parts, **options)
    assert sorted(p.name for p in parts.iterdir()) == ["batch-00000.json", "settings.json"]

    calls.clear()
    monkeypatch.setattr(
        per_scene, "fit_per_scene_nerf", lambda *a, **k: (calls.append(1), real_fit(*a, **k))[1]
    )
    resumed = per_scene.evaluate_per_scene_nerf(
        dataset, config, progress=False, parts=parts, **options
    )
    assert len(calls) == 2  # the second batch only, K = 1 and 2
    for key in ("results", "per_scene"):  # identical numbers (NaN included): each fit is seeded
        assert json.dumps(resumed[key], sort_keys=True) == json.dumps(whole[key], sort_keys=True)
    assert [row["step"] for row in resumed["history"]["2"]] == [
        row["step"] for row in whole["history"]["2"]
    ]
    with pytest.raises(DataError, match="made with other settings"):
        per_scene.evaluate_per_scene_nerf(
            dataset, tiny_nerf_config(steps=5), progress=False, parts=parts, **options
        )
    per_scene.remove_parts(parts)
    assert not parts.exists()


def test_baseline_nerf_context_all_scores_held_out_views(ball_dataset: Path, tmp_path: Path):
    out = tmp_path / "all.json"
    code = main(
        [
            "baseline", "nerf", "--data", str(ball_dataset), "--context", "all", "--out",
            str(out), "--steps", "2", "--width", "8", "--depth", "1", "--skip-layer", "-1",
            "--num-coarse", "4", "--num-fine", "0", "--rays-per-scene", "16", "--probe-views",
            "0", "--max-scenes", "1", "--background", "white",
        ]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["view_lists"]["context"] == {"6": [0, 1, 2, 3, 4, 5]}
    assert set(result["results"]["6"]) == {"ood"}
    assert result["background"] == [1.0, 1.0, 1.0]


def test_baseline_cli_errors_are_one_line(ball_dataset: Path, capsys) -> None:
    assert main(["baseline", "nerf", "--data", str(ball_dataset), "--context", "6"]) == 1
    assert "at most 5 can be context views" in capsys.readouterr().err
    assert main(["baseline", "gqn"]) == 1
    assert "unknown baseline 'gqn'" in capsys.readouterr().err
    argv = ["baseline", "nerf", "--data", str(ball_dataset), "--id-targets", "2"]
    assert main([*argv, "--context", "5"]) == 1
    assert "last 2 of the scenes' 6 in-distribution views" in capsys.readouterr().err
    assert main([*argv, "--context", "all"]) == 1
    assert "--id-targets has no effect with --context all" in capsys.readouterr().err
    assert main([*argv, "--context", "1", "--probe-views", "-2", "--max-scenes", "1"]) == 1
    assert "--probe-views must be -1 (all targets), 0 or positive" in capsys.readouterr().err


# -- GQN-style baseline -----------------------------------------------------------------------


def tiny_gqn_config(latent_layout: str = "spatial") -> GQNConfig:
    return GQNConfig(
        tower_channels=(8, 16),
        representation_channels=16,
        latent_channels=4,
        latent_grid=3,
        latent_layout=latent_layout,
        generator_channels=16,
        generator_blocks=1,
        upsample_stages=2,
    )


def test_camera_code_of_a_known_camera() -> None:
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([1.0, 0.0, 3.0])
    K = intrinsics_matrix(20.0, 10.0, 8.0, 5.0)
    code = camera_code(
        K, c2w, 10, 16, torch.tensor([-1.0, -1.0, 1.0]), torch.tensor([3.0, 1.0, 5.0])
    )
    expected = torch.tensor([0.0, 0.0, 0.0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1.25, 1.0, 0.0, 0.0])
    torch.testing.assert_close(code, expected)


@pytest.mark.parametrize("layout, tokens", [("spatial", 9), ("global", 1)])
def test_gqn_contract_shapes_and_invariances(layout: str, tokens: int) -> None:
    torch.manual_seed(0)
    model = GQN(tiny_gqn_config(layout)).eval()
    K, c2w = ring_cameras(4)
    K, c2w = K.expand(2, 4, 3, 3), c2w.expand(2, 4, 4, 4)
    images = torch.rand(2, 4, SIZE, SIZE, 3)
    posterior = model.infer(images, K, c2w)
    assert posterior.mean.shape == (2, tokens, 4) == model.prior(2).mean.shape
    # the head starts at the prior: KL 0, so early training is decoding
    torch.testing.assert_close(posterior.kl_to_standard_normal(), torch.zeros(2))
    torch.nn.init.normal_(model.posterior_head.weight, std=0.1)
    posterior = model.infer(images, K, c2w)
    reordered = model.infer(images[:, [2, 0, 3, 1]], K[:, [2, 0, 3, 1]], c2w[:, [2, 0, 3, 1]])
    torch.testing.assert_close(posterior.mean, reordered.mean, atol=1e-5, rtol=1e-5)
    views = model.render_views(posterior.mean, K[:, :3], c2w[:, :3], 10, 14)
    assert views["colour"].shape == (2, 3, 10, 14, 3)
    assert bool(((views["colour"] >= 0) & (views["colour"] <= 1)).all())
    assert views["depth"].shape == (2, 3, 10, 14) and bool(views["depth"].isnan().all())
    model.config.max_views_per_decode = 2  # decoding in chunks gives the same images
    chunked = model.render_views(posterior.mean, K[:, :3], c2w[:, :3], 10, 14)
    torch.testing.assert_close(chunked["colour"], views["colour"])
    # no rays: GQN fulfils the base contract, not the ray models' (no render, no field)
    assert isinstance(model, SceneModel) and not isinstance(model, RaySceneModel)
    assert not hasattr(model, "render") and not hasattr(model, "field")
    # the latent reaches the image: two latents, two different renders of the same camera
    other = model.render_views(posterior.mean + 1.0, K[:, :1], c2w[:, :1], 10, 14)
    assert not torch.allclose(other["colour"], views["colour"][:, :1])


def test_gqn_loss_is_the_elbo_and_needs_whole_views() -> None:
    torch.manual_seed(0)
    model = GQN(tiny_gqn_config())
    K, c2w = ring_cameras(3)
    K, c2w = K.expand(2, 3, 3, 3), c2w.expand(2, 3, 4, 4)
    images = torch.rand(2, 3, SIZE, SIZE, 3)
    batch = {
        "context_images": images[:, :2], "context_K": K[:, :2], "context_c2w": c2w[:, :2],
        "target_images": images[:, 2:], "target_K": K[:, 2:], "target_c2w": c2w[:, 2:],
    }  # fmt: skip
    generator = torch.Generator().manual_seed(1)
    outputs = model.loss(batch, pixel_std=0.2, generator=generator)
    # posterior = prior at init, so KL = 0 and the loss is the Gaussian NLL per dimension
    generator = torch.Generator().manual_seed(1)
    latent = model.infer(images[:, :2], K[:, :2], c2w[:, :2]).rsample(generator)
    decoded = model.decode(latent, K[:, 2:], c2w[:, 2:], SIZE, SIZE)
    nll = (
        0.5 * ((images[:, 2:] - decoded) / 0.2).square()
        + math.log(0.2)
        + 0.5 * math.log(2 * math.pi)
    )
    torch.testing.assert_close(outputs["loss"], nll.mean())
    assert float(outputs["kl_nats"]) == pytest.approx(0.0)
    assert float(outputs["nelbo_bits_per_dim"]) == pytest.approx(
        float(nll.detach().mean()) / math.log(2) + 8.0, rel=1e-5
    )
    outputs["loss"].backward()
    ray_batch = {key: value for key, value in batch.items() if not key.startswith("target")}
    with pytest.raises(ValueError, match="whole target views"):
        model.loss(ray_batch)


def test_image_batches_share_scenes_and_context_with_ray_batches(ball_dataset: Path) -> None:
    dataset = MultiSceneDataset(ball_dataset, "train")
    options = dict(scenes_per_batch=3, max_context_views=3, seed=5)
    for step in range(4):
        images = make_image_batch(dataset, step, target_views=2, **options)
        rays = make_training_batch(dataset, step, rays_per_scene=8, **options)
        assert torch.equal(images["scene_index"], rays["scene_index"])
        assert torch.equal(images["context_c2w"], rays["context_c2w"])
        context = images["context_images"].shape[1]
        assert images["target_images"].shape == (3, 2, SIZE, SIZE, 3)
        assert images["target_object_mask"].shape == (3, 2, SIZE, SIZE)
        # targets are views outside the context (6 ID views >= 3 context + 2 targets)
        for s in range(3):
            for t in range(2):
                for c in range(context):
                    assert not torch.equal(images["target_c2w"][s, t], images["context_c2w"][s, c])
    stream = image_batches(ball_dataset, "train", target_views=1, **options)
    first = [next(stream) for _ in range(3)]
    resumed = next(image_batches(ball_dataset, "train", target_views=1, start_step=2, **options))
    assert torch.equal(first[2]["target_images"], resumed["target_images"])


def test_gqn_trains_through_the_trainer_and_evaluates(ball_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "gqn-run"
    gqn_options = [
        "--gqn.tower-channels", "8", "16", "--gqn.representation-channels", "16",
        "--gqn.latent-channels", "4", "--gqn.latent-grid", "3", "--gqn.generator-channels",
        "16", "--gqn.generator-blocks", "1", "--gqn.upsample-stages", "2",
    ]  # fmt: skip
    code = main(
        [
            "train", "--model", "gqn", "--config", "tiny", "--data", str(ball_dataset), "--run",
            str(run), "--steps", "12", "--scenes-per-batch", "2", "--log-every", "4",
            "--checkpoint-every", "12", "--threads", "1", "--optimizer.learning-rate", "3e-3",
            "--optimizer.warmup-steps", "2", *gqn_options,
        ]
    )  # fmt: skip
    assert code == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [float(row.split(",")[header.index("loss")]) for row in rows[1:]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert json.loads((run / "config.json").read_text())["model"] == "gqn"

    out = tmp_path / "eval.json"
    code = main(
        ["eval", "--run", str(run), "--data", str(ball_dataset), "--context", "1,3", "--out",
         str(out)]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    for k in ("1", "3"):
        assert set(result["results"][k]) == {"id", "ood"}
        entry = result["results"][k]["id"]
        assert math.isfinite(entry["psnr"]) and math.isfinite(entry["nelbo_bits_per_dim"])
        assert entry["depth_mae"] is None  # no depth (NaN), which the JSON writes as null
        assert result["results"][k]["ood"]["num_views"] == 2 * 2
