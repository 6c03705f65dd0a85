"""The sample-quality measure: the Fréchet distance, the object counter in a field, the feature
network trained on the generator's labels and its cache, and the samples experiment's section."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_learned_prior import tiny_fit_args

from nerfvae.data.rooms import PALETTE
from nerfvae.errors import CheckpointError, ConfigError, DataError, NerfVAEError
from nerfvae.evaluation.sample_quality import (
    COUNT_BINS,
    FEATURES_FILE,
    FeatureNetworkConfig,
    ObjectCounterConfig,
    count_histogram,
    count_objects,
    counter_agreement,
    feature_network,
    generator_statistics,
    image_features,
    load_feature_network,
    real_views,
    save_feature_network,
    scene_labels,
    train_feature_network,
)
from nerfvae.statistics import frechet_distance

ROOM = ((-3.0, -3.0, 0.0), (3.0, 3.0, 2.5))
"""The built-in rooms' scene box."""
QUICK_FEATURES = FeatureNetworkConfig(channels=(8, 16), feature_dim=16, steps=50, batch_size=16)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Every test here on one thread (the experiment's --threads 1 sets it too); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def exact_moments(count: int, mean, std, seed: int = 0) -> np.ndarray:
    """``count`` samples ``[count, D]`` whose sample mean is exactly ``mean`` and sample
    covariance exactly ``diag(std²)``: whitened Gaussian noise, rescaled."""
    noise = np.random.default_rng(seed).standard_normal((count, len(mean)))
    noise -= noise.mean(axis=0)
    noise = noise @ np.linalg.inv(np.linalg.cholesky(np.cov(noise, rowvar=False))).T
    return np.asarray(mean) + noise * np.asarray(std)


def test_frechet_distance_matches_the_closed_form():
    # identical sets: zero; two independent samples of one Gaussian: zero up to sampling
    first = np.random.default_rng(1).standard_normal((20000, 4))
    second = np.random.default_rng(2).standard_normal((20000, 4))
    assert frechet_distance(first, first) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(first, second) < 5e-3
    # diagonal Gaussians: |μa − μb|² + Σ (σa − σb)²
    mean_a, std_a = [0.0, 1.0, -2.0], [1.0, 2.0, 0.5]
    mean_b, std_b = [1.0, 1.0, 0.0], [3.0, 2.0, 0.1]
    expected = 1.0 + 4.0 + (2.0**2 + 0.0 + 0.4**2)
    a, b = exact_moments(50, mean_a, std_a, 3), exact_moments(80, mean_b, std_b, 4)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-9)
    # general covariances: the textbook formula with scipy's sqrtm of Σa Σb
    from scipy.linalg import sqrtm

    generator = np.random.default_rng(5)
    a = generator.standard_normal((300, 6)) @ generator.standard_normal((6, 6))
    b = generator.standard_normal((200, 6)) @ generator.standard_normal((6, 6)) + 0.5
    covariance_a, covariance_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    textbook = (
        np.sum((a.mean(0) - b.mean(0)) ** 2)
        + np.trace(covariance_a + covariance_b)
        - 2 * np.trace(sqrtm(covariance_a @ covariance_b).real)
    )
    assert frechet_distance(a, b) == pytest.approx(textbook, rel=1e-7)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_frechet_distance_of_singular_covariances_and_bad_input():
    generator = np.random.default_rng(0)
    few = generator.standard_normal((5, 12))  # fewer samples than dimensions: rank 4
    few[:, 3] = 7.0  # and a constant feature
    other = generator.standard_normal((6, 12))
    value = frechet_distance(few, other)
    assert math.isfinite(value) and value > 0
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(few, other) == pytest.approx(frechet_distance(other, few), rel=1e-6)
    for bad in ((few, other[:, :5]), (few[:1], other), (few[:, 0], other[:, 0])):
        with pytest.raises(NerfVAEError):
            frechet_distance(*bad)
    with pytest.raises(NerfVAEError, match="non-finite"):
        frechet_distance(np.full((3, 2), np.nan), other[:, :2])


def srgb(name: str, brightness: float = 1.0) -> tuple[float, float, float]:
    """A palette colour as a render shows it (sRGB), dimmed by ``brightness``."""
    return tuple(brightness * value ** (1 / 2.2) for value in PALETTE[name])


def box_field(boxes, floor_and_walls: bool = True):
    """A density/colour callback of axis-aligned boxes ``(min xyz, max xyz, rgb)`` of density
    50 / m standing in a room whose floor (z < 0.1) and walls (|x| or |y| > 2.9) are dense too."""
    lows = torch.tensor([box[0] for box in boxes]).reshape(-1, 3)
    highs = torch.tensor([box[1] for box in boxes]).reshape(-1, 3)
    colours = torch.tensor([box[2] for box in boxes]).reshape(-1, 3)

    def field(points: torch.Tensor, directions: torch.Tensor):
        assert points.shape == directions.shape and points.shape[-1] == 3
        inside = ((points[:, None] >= lows) & (points[:, None] <= highs)).all(-1)  # [P, boxes]
        density = 50.0 * inside.any(-1).float()
        colour = torch.full_like(points, 0.5)
        if len(boxes):
            first = inside.float().argmax(-1)
            colour = torch.where(inside.any(-1, keepdim=True), colours[first], colour)
        if floor_and_walls:
            room = (points[:, 2] < 0.1) | (points[:, :2].abs() > 2.9).any(-1)
            density = torch.where(room, torch.full_like(density, 50.0), density)
        return density, colour

    return field


def test_counter_counts_boxes_and_names_their_colours():
    config = ObjectCounterConfig()
    empty = count_objects(box_field([]), *ROOM, config)
    assert empty.count == 0 and empty.colours == [] and not empty.occupancy.any()
    one = count_objects(box_field([((0.2, -0.3, 0.0), (0.7, 0.2, 0.5), srgb("red"))]), *ROOM)
    assert one.count == 1 and one.colours == ["red"]
    assert one.centres[0] == pytest.approx((0.45, -0.05), abs=0.03)
    assert one.areas[0] == pytest.approx(0.25, rel=0.1)
    three = [
        ((-1.5, -1.5, 0.0), (-0.9, -0.9, 0.6), srgb("green", 0.5)),  # in shadow
        ((0.5, 0.5, 0.0), (1.0, 1.2, 0.8), srgb("blue")),
        ((-0.4, 0.9, 0.0), (0.0, 1.3, 0.45), srgb("yellow", 0.7)),
        ((1.2, -1.2, 0.0), (1.3, -1.1, 0.5), srgb("white")),  # 0.01 m²: a speck, not counted
    ]
    found = count_objects(box_field(three), *ROOM, config)
    assert found.count == 3
    assert found.colours == ["green", "blue", "yellow"]  # largest first
    # two boxes sharing a face are one object on the ground plane
    touching = [
        ((-0.5, -0.5, 0.0), (0.0, 0.0, 0.5), srgb("magenta")),
        ((0.0, -0.5, 0.0), (0.5, 0.0, 0.7), srgb("cyan")),
    ]
    assert count_objects(box_field(touching), *ROOM, config).count == 1
    # the margins leave no cell: a one-line ConfigError
    with pytest.raises(ConfigError, match="margins leave no"):
        count_objects(box_field([]), *ROOM, ObjectCounterConfig(wall_margin=3.0))
    with pytest.raises(ConfigError, match=r"counter\.opacity_threshold"):
        count_objects(box_field([]), *ROOM, ObjectCounterConfig(opacity_threshold=1.5))


def test_agreement_and_histograms():
    truth = [
        [{"colour_name": "red"}, {"colour_name": "blue"}],
        [{"colour_name": "red"}],
        [],
    ]
    agreement = counter_agreement(truth, [2, 2, 0], [["red", "green"], ["red", "red"], []])
    assert agreement["exact_match"] == pytest.approx(2 / 3)
    assert agreement["mean_absolute_error"] == pytest.approx(1 / 3)
    assert agreement["mean_error"] == pytest.approx(1 / 3)
    assert agreement["colour_recall"] == pytest.approx(2 / 3)  # red, red of red, blue, red
    assert agreement["colour_precision"] == pytest.approx(2 / 4)
    histogram = count_histogram([0, 2, 2, 9])
    assert list(histogram) == list(COUNT_BINS)
    assert histogram["0"] == 0.25 and histogram["2"] == 0.5 and histogram[COUNT_BINS[-1]] == 0.25
    assert scene_labels([{"colour_name": "red", "shape": "cube"}], "x")[0] == 1
    with pytest.raises(DataError, match="scene 7: object with colour 'pink'"):
        scene_labels([{"colour_name": "pink", "shape": "cube"}], "scene 7")


@pytest.fixture(scope="module")
def trained_features(tiny_dataset):
    return train_feature_network(tiny_dataset, QUICK_FEATURES)


def flattened(images: torch.Tensor) -> torch.Tensor:
    """Each view of ``images [N, H, W, 3]`` replaced by its mean colour: the same colours, no
    room in it (what a murky sample looks like)."""
    mean = images.float().mean((1, 2), keepdim=True)
    return mean.expand_as(images).round().to(torch.uint8)


def test_features_rank_real_views_above_flat_ones(tiny_dataset, trained_features):
    from nerfvae.data.loader import MultiSceneDataset

    network, info = trained_features
    assert info["steps"] == QUICK_FEATURES.steps and info["training_views"] == 6 * 6
    accuracy = info["held_out_accuracy"]
    assert info["held_out_split"] == "val" and accuracy["views"] == 2 * 6
    assert 0 <= accuracy["count_accuracy"] <= 1 and 0 < accuracy["count_majority"] <= 1
    splits = [MultiSceneDataset(tiny_dataset, split) for split in ("val", "test")]
    test = splits[1]
    reference = real_views(test, 2, views=3, first_view=3)
    assert reference.images.shape == (2, 3, 32, 32, 3) and reference.view_indices == [3, 4, 5]
    assert image_features(network, reference.images.flatten(0, 1)).shape == (6, 16)
    # scenes the network never saw: views 3..5 of each are the reference; views 0..2 of the same
    # scenes are a sample set known to be better than those views reduced to their mean colour
    held_out = [real_views(split, 2, views=6, first_view=0) for split in splits]
    views = torch.cat([item.images for item in held_out])  # [4, 6, H, W, 3]
    real = image_features(network, views[:, 3:].flatten(0, 1))
    close = frechet_distance(image_features(network, views[:, :3].flatten(0, 1)), real)
    far = frechet_distance(image_features(network, flattened(views[:, :3].flatten(0, 1))), real)
    assert 0 < close < far / 2
    # renders are quantised to 8 bits like stored views: the same image gives the same features
    images = reference.images.flatten(0, 1)
    np.testing.assert_allclose(
        image_features(network, images.float() / 255.0),
        image_features(network, images),
        rtol=1e-6,
        atol=1e-6,
    )
    statistics = generator_statistics(test)
    assert statistics["scenes"] == 2 and sum(statistics["count_histogram"].values()) == 1.0
    assert statistics["empty_fraction"] == 0.0 and statistics["mean_count"] >= 1


def test_feature_cache_round_trip_and_bad_files(tiny_dataset, trained_features, tmp_path):
    network, info = trained_features
    images = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    path = tmp_path / FEATURES_FILE
    save_feature_network(path, network, info)
    loaded, loaded_info, trained = feature_network(path, tiny_dataset, FeatureNetworkConfig())
    assert not trained and loaded_info == json.loads(json.dumps(info))
    assert loaded.config == network.config
    np.testing.assert_array_equal(image_features(loaded, images), image_features(network, images))

    def expect(match: str, target: Path = path) -> None:
        with pytest.raises(CheckpointError, match=match) as caught:
            feature_network(target, tiny_dataset)
        assert "\n" not in str(caught.value) and str(target) in str(caught.value)

    save_feature_network(path, network, {**info, "dataset_sha256": "0" * 64})
    expect("trained on another dataset")
    path.write_bytes(b"not a safetensors file")
    expect("cannot read the feature network")
    tensors = {k: v for k, v in network.state_dict().items() if not k.startswith("count_head")}
    save_file(tensors, str(path), {"format": "nerfvae-sample-quality-features", "config": "{}"})
    expect("metadata lacks 'info'")
    config = json.dumps(dataclasses.asdict(network.config))
    metadata = {"format": "nerfvae-sample-quality-features", "config": config, "info": "{}"}
    save_file(tensors, str(path), metadata)
    expect("do not match its config")
    save_file(tensors, str(path), {**metadata, "format": "something-else"})
    expect("not a sample-quality feature network")
    # retrain replaces a bad file
    small = FeatureNetworkConfig(channels=(4,), feature_dim=4, steps=2, batch_size=4)
    _, fresh, trained = feature_network(path, tiny_dataset, small, retrain=True)
    assert trained and fresh["steps"] == 2
    assert load_feature_network(path)[0].config == small


def test_a_dataset_without_object_labels_is_a_config_error(tmp_path):
    from nerfvae.data.storage import DatasetMeta, DatasetWriter, SceneRecord, SplitMeta
    from nerfvae.geometry import intrinsics_matrix, look_at

    views = 2
    eye = torch.tensor([[3.0, 0.0, 1.5], [0.0, 3.0, 1.5]])
    scenes = [
        SceneRecord(
            images=torch.zeros(views, 8, 8, 3, dtype=torch.uint8),
            K=intrinsics_matrix(8.0, 8.0, 4.0, 4.0).expand(views, 3, 3).clone(),
            c2w=look_at(eye, torch.zeros(views, 3)),
            view_is_ood=torch.zeros(views, dtype=torch.bool),
            scene_id=f"imported-{index}",
        )
        for index in range(2)
    ]
    meta = DatasetMeta(
        name="imported", image_height=8, image_width=8,
        scene_bounds=((-2.0, -2.0, -1.0), (2.0, 2.0, 2.0)), near=0.5, far=8.0,
        splits={"train": SplitMeta(id_views=views)}, has_depth=False, has_object_mask=False,
    )  # fmt: skip
    writer = DatasetWriter(tmp_path / "imported", meta)
    writer.write_shard("train", 0, 0, scenes)
    writer.finalize()
    with pytest.raises(ConfigError, match="needs a generated dataset") as caught:
        train_feature_network(tmp_path / "imported", QUICK_FEATURES)
    assert "\n" not in str(caught.value) and "imported" in str(caught.value)


def test_samples_experiment_with_quality(tiny_run, tiny_dataset, tmp_path):
    from nerfvae.experiments import samples

    run = shutil.copytree(tiny_run, tmp_path / "run")  # the feature network is cached in it
    out = tmp_path / "out"
    argv = ["--run", str(run), "--data", str(tiny_dataset), "--num-prior", "2", "--steps", "2"]
    argv += ["--cameras", "2", "--context", "3", "--quality", "--quality-seeds", "2"]
    argv += ["--quality-samples", "3", "--features.channels", "8", "16"]
    argv += ["--features.feature-dim", "16", "--features.steps", "10", "--features.batch-size", "8"]
    argv += ["--counter.cell-size", "0.1", "--threads", "1", "--out", str(out)]
    assert samples.run(argv, prog="nerfvae experiment samples") == 0
    result = json.loads((out / "samples.json").read_text())
    quality = result["quality"]
    assert result["settings"]["prior"] == "standard"
    assert quality["settings"]["seeds"] == [0, 1] and quality["settings"]["reference_scenes"] == 2
    assert quality["settings"]["views_per_sample"] == [3, 4, 5]
    standard = quality["priors"]["standard"]
    assert len(standard["frechet_distance"]["per_seed"]) == 2
    assert all(value >= 0 for value in standard["frechet_distance"]["per_seed"])
    assert standard["frechet_distance"]["min"] <= standard["frechet_distance"]["mean"]
    assert [len(counts) for counts in standard["counts"]] == [3, 3]
    assert sum(standard["count_histogram"].values()) == pytest.approx(1.0)
    assert 0 <= standard["empty_fraction"] <= 1
    # the tiny run has neither fitted prior: both skipped with a note
    assert set(quality["priors"]) == {"standard"} and len(quality["skipped"]) == 2
    assert len(quality["real_floor"]["frechet_distance"]["per_seed"]) == 2
    posterior = quality["posterior"]
    assert posterior["scenes"] == 2 and posterior["frechet_distance"] >= 0
    assert 0 <= posterior["exact_match"] <= 1 and posterior["mean_absolute_error"] >= 0
    assert quality["generator"]["scenes"] == 2
    assert quality["feature_network"]["trained_now"] and (run / FEATURES_FILE).is_file()
    text = (out / "samples.md").read_text()
    assert "## Sample quality" in text and "views (noise floor)" in text
    assert "Counter calibration on the reconstructions of 2 scenes" in text
    # a second run reads the cached network; --prior aggregate needs the run's fitted prior
    argv[argv.index("--quality-seeds") + 1] = "1"
    assert samples.run(argv, prog="nerfvae experiment samples") == 0
    assert not json.loads((out / "samples.json").read_text())["quality"]["feature_network"][
        "trained_now"
    ]
    with pytest.raises(ConfigError, match=r"--prior aggregate: .*aggregate_prior\.safetensors"):
        samples.run([*argv, "--prior", "aggregate"], prog="nerfvae experiment samples")
    with pytest.raises(ConfigError, match="--quality-priors"):
        samples.run([*argv, "--quality-priors", "standard,fancy"], prog="nerfvae")


def test_samples_experiment_at_another_guidance(tiny_run, tiny_dataset, tmp_path):
    """--guidance sets the learned prior's autoguidance weight in the figure and the measure,
    and the report says which weight its numbers are for."""
    from nerfvae.cli.main import main
    from nerfvae.experiments import samples

    run = shutil.copytree(tiny_run, tmp_path / "run")
    fit = tiny_fit_args(run, tiny_dataset)
    assert main([*fit, "--fit.diffusion.guidance", "2", "--fit.guide-steps", "5"]) == 0
    argv = ["--run", str(run), "--data", str(tiny_dataset), "--num-prior", "2", "--steps", "2"]
    argv += ["--cameras", "2", "--prior", "learned", "--quality", "--quality-priors", "learned"]
    argv += ["--quality-seeds", "1", "--quality-samples", "3", "--features.channels", "8", "16"]
    argv += ["--features.feature-dim", "16", "--features.steps", "10", "--features.batch-size", "8"]
    argv += ["--counter.cell-size", "0.1", "--threads", "1"]
    results = {}
    for weight in (None, "1", "2"):
        out = tmp_path / f"out-{weight}"
        options = [] if weight is None else ["--guidance", weight]
        assert samples.run([*argv, *options, "--out", str(out)], prog="nerfvae") == 0
        results[weight] = json.loads((out / "samples.json").read_text())
        results[weight]["md"] = (out / "samples.md").read_text()
    assert results[None]["quality"]["settings"]["learned_guidance"] == 2.0
    assert results["1"]["quality"]["settings"]["learned_guidance"] == 1.0
    assert "learned prior (autoguidance 2)" in results[None]["md"]
    assert "learned prior (autoguidance 1)" in results["1"]["md"]
    # the prior's own weight asked for or not: the same samples; weight 1 others
    fd = {
        k: r["quality"]["priors"]["learned"]["frechet_distance"]["mean"] for k, r in results.items()
    }
    assert fd[None] == fd["2"] and fd["1"] != fd[None]
    assert results[None]["prior"]["mean_colour"] == results["2"]["prior"]["mean_colour"]
    assert results[None]["prior"]["mean_colour"] != results["1"]["prior"]["mean_colour"]
    with pytest.raises(ConfigError, match=r"guidance must be in \[1, 100\]"):
        samples.run([*argv, "--guidance", "0.5", "--out", str(tmp_path / "x")], prog="nerfvae")
