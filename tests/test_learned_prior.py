"""The learned prior: a diffusion model over the latent, its fit, its file, its cache, the CLI."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nerfvae.cli.main import main
from nerfvae.errors import CheckpointError, ConfigError
from nerfvae.evaluation.learned_prior import (
    PRIOR_FILE,
    LearnedPrior,
    LearnedPriorFit,
    fit_to_latents,
    learned_prior,
    load_learned_prior,
    run_learned_prior,
    save_learned_prior,
)
from nerfvae.models.latent import LowRankGaussian
from nerfvae.models.latent_diffusion import (
    ConvDenoiser,
    LatentDiffusion,
    LatentDiffusionConfig,
    MlpDenoiser,
)

OFFSET, SEPARATION, SPREAD = 1.5, 3.0, 0.3


def two_mode_mixture(shape, count=2000, seed=0):
    """Latents ``[count, *shape]`` from an even mixture of two Gaussians, ``OFFSET ± SEPARATION``
    along a random unit direction ``[T * C]`` with isotropic std ``SPREAD``: no single Gaussian
    fits it (its mean lies in the empty middle), and the direction to score samples along."""
    generator = torch.Generator().manual_seed(seed)
    size = shape[0] * shape[1]
    direction = torch.randn(size, generator=generator)
    direction = direction / direction.norm()
    side = torch.randint(0, 2, (count,), generator=generator).float() * 2 - 1
    noise = SPREAD * torch.randn(count, size, generator=generator)
    latents = OFFSET + SEPARATION * side[:, None] * direction + noise
    return latents.view(count, *shape), direction


def position(latents, direction):
    """Where latents lie along the mixture's axis: about -1 and +1 at the two modes."""
    return ((latents.flatten(1) - OFFSET) @ direction) / SEPARATION


SMALL = LatentDiffusionConfig(width=32, blocks=2, timesteps=200, sampling_steps=20, guidance=1.0)
# A few hundred steps with a large batch fit these 8- and 2-value latents in a few seconds.
MIXTURE_FIT = LearnedPriorFit(steps=400, batch_size=256, learning_rate=2e-3, diffusion=SMALL)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=[(4, 2), (1, 2)], ids=["grid-2x2", "global"])
def fitted(request):
    """A prior fitted to the two-mode mixture: on a 2 × 2 grid of 2-channel tokens (the
    convolutional denoiser) and on one 2-channel token (the MLP)."""
    shape = request.param
    latents, direction = two_mode_mixture(shape)
    fit = MIXTURE_FIT
    if shape[0] == 1:
        fit = LearnedPriorFit(**{**vars(MIXTURE_FIT), "diffusion": LatentDiffusionConfig(
            width=16, blocks=2, timesteps=200, sampling_steps=20)})  # fmt: skip
    prior, info = fit_to_latents(latents, None, fit)
    return prior, info, latents, direction


def test_fit_recovers_two_modes_a_single_gaussian_cannot(fitted):
    prior, info, latents, direction = fitted
    expected = MlpDenoiser if latents.shape[1] == 1 else ConvDenoiser
    assert isinstance(prior.diffusion.denoiser, expected)
    assert info["steps"] == 400 and info["stopped_by"] == "steps"
    assert info["held_out_latents"] == 200 and info["fitted_latents"] == 1800
    drawn = prior.rsample(2000, torch.Generator().manual_seed(1))
    assert drawn.shape == (2000, *latents.shape[1:])
    along = position(drawn, direction)
    middle = (along.abs() < 0.5).float().mean().item()
    assert 0.4 < (along > 0).float().mean().item() < 0.6  # both modes, evenly
    assert middle < 0.03  # almost nothing between them
    # and each mode's spread (SPREAD): along the axis and across it
    along_spread = (SEPARATION * (along - along.sign())).std().item()
    across = drawn.flatten(1) - OFFSET - SEPARATION * along[:, None] * direction
    across_spread = (across.square().sum(1).mean() / (across.shape[1] - 1)).sqrt().item()
    assert 0.2 < along_spread < 0.45 and 0.2 < across_spread < 0.45, (along_spread, across_spread)
    # the best single Gaussian (full rank) puts a third of its mass in the middle
    gaussian = LowRankGaussian.fit(latents, latents[0].numel())
    baseline = position(gaussian.rsample(2000, torch.Generator().manual_seed(1)), direction)
    assert (baseline.abs() < 0.5).float().mean().item() > 10 * max(middle, 0.01)


def test_sampling_is_seeded(fitted):
    prior = fitted[0]
    first = prior.rsample(3, torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, prior.rsample(3, torch.Generator().manual_seed(7)))
    assert not torch.allclose(first, prior.rsample(3, torch.Generator().manual_seed(8)))
    # fewer DDIM steps are another, still seeded, sampler
    quick = prior.diffusion.sample(3, torch.Generator().manual_seed(7), steps=5)
    torch.testing.assert_close(
        quick, prior.diffusion.sample(3, torch.Generator().manual_seed(7), 5)
    )


def test_nll_bound_prefers_the_data(fitted):
    prior, info, latents, direction = fitted
    generator = torch.Generator().manual_seed(2)
    data = latents[:200]
    # each latent moved from its mode to the empty middle between the two
    shift = SEPARATION * position(data, direction).sign()[:, None, None]
    centre = data - shift * direction.view(data.shape[1:])
    inside = prior.negative_log_likelihood_bound(data, generator, samples=32)
    middle = prior.negative_log_likelihood_bound(centre, generator, samples=32)
    far = prior.negative_log_likelihood_bound(data + 5.0, generator, samples=32)
    assert inside.shape == (200,) and torch.isfinite(inside).all()
    assert torch.isfinite(middle).all() and torch.isfinite(far).all()
    assert inside.mean() + 5 < middle.mean() < far.mean()
    # the bound beats the exact NLL under N(0, I), and the fit's record holds that comparison
    standard = 0.5 * (data.square() + np.log(2 * np.pi)).flatten(1).sum(1)
    assert inside.mean() < standard.mean()
    for key in ("held_out_nll_bound", "held_out_bits_per_dim", "train_loss", "held_out_loss"):
        assert np.isfinite(info[key])
    assert info["held_out_nll_bound"] < info["held_out_standard_nll"]


GUIDED = LatentDiffusionConfig(**{**vars(SMALL), "guidance": 2.0})


@pytest.fixture(scope="module")
def guided():
    """A prior with an autoguidance guide fitted to the two-mode mixture on a 2 × 2 grid."""
    latents, direction = two_mode_mixture((4, 2))
    fit = LearnedPriorFit(**{**vars(MIXTURE_FIT), "diffusion": GUIDED, "guide_steps": 100})
    prior, info = fit_to_latents(latents, None, fit)
    return prior, info, latents, direction, fit


def test_the_guide_is_the_average_after_guide_steps(guided):
    prior, info, latents, _, fit = guided
    assert info["guide_step"] == 100 and info["steps"] == 400
    # a fit of just those steps (same seed, same batches) ends with the guide's weights
    early, _ = fit_to_latents(latents, None, dataclasses.replace(fit, steps=100))
    for name, tensor in early.diffusion.denoiser.state_dict().items():
        torch.testing.assert_close(prior.diffusion.guide.state_dict()[name], tensor)
        torch.testing.assert_close(early.diffusion.guide.state_dict()[name], tensor)
    assert any(  # and it is not the final denoiser
        not torch.equal(tensor, prior.diffusion.denoiser.state_dict()[name])
        for name, tensor in early.diffusion.denoiser.state_dict().items()
    )
    # a fit that stops before guide_steps takes its final weights (guidance is then a no-op)
    short, short_info = fit_to_latents(latents, None, dataclasses.replace(fit, steps=20))
    assert short_info["guide_step"] == 20
    torch.testing.assert_close(
        short.rsample(4, torch.Generator().manual_seed(2)),
        LearnedPrior(short.diffusion, guidance=1.0).rsample(4, torch.Generator().manual_seed(2)),
    )


def test_autoguided_sampling(guided):
    prior, _, _, direction, _ = guided
    diffusion = prior.diffusion
    generator = lambda: torch.Generator().manual_seed(5)
    guided_draw = prior.rsample(1000, generator())
    unguided = LearnedPrior(diffusion, guidance=1.0).rsample(1000, generator())
    assert (guided_draw - unguided).abs().max() > 1e-3
    torch.testing.assert_close(
        LearnedPrior(diffusion, guidance=2.0).rsample(1000, generator()), guided_draw
    )
    # guide + w (denoiser − guide) with the guide equal to the denoiser is the denoiser: any w
    same = copy.deepcopy(diffusion)
    same.take_guide()
    torch.testing.assert_close(
        same.sample(50, generator(), guidance=3.0), same.sample(50, generator(), guidance=1.0)
    )
    # guided samples still cover both modes and keep out of the middle
    along = position(guided_draw, direction)
    assert 0.4 < (along > 0).float().mean().item() < 0.6
    assert (along.abs() < 0.5).float().mean().item() < 0.03
    # a weight above 1 needs a guide; below 1 is refused
    unguided_model = LatentDiffusion(SMALL, (4, 2))
    assert unguided_model.guide is None
    with pytest.raises(ConfigError, match="fitted without a guide"):
        LearnedPrior(unguided_model, guidance=2.0)
    with pytest.raises(ValueError, match="needs a guide"):
        unguided_model.sample(2, generator(), guidance=2.0)
    with pytest.raises(ConfigError, match=r"guidance must be in \[1, 100\]"):
        LearnedPrior(diffusion, guidance=0.5)
    with pytest.raises(ConfigError, match=r"diffusion\.guidance must be in"):
        LearnedPriorFit(diffusion=LatentDiffusionConfig(guidance=0.5)).validate()


def test_a_guided_prior_round_trips_and_needs_its_guide(guided, tmp_path):
    prior, info, latents, _, _ = guided
    shape = tuple(latents.shape[1:])
    path = tmp_path / PRIOR_FILE
    save_learned_prior(path, prior, info)
    loaded, _ = load_learned_prior(path, shape)
    assert loaded.diffusion.config.guidance == 2.0
    torch.testing.assert_close(
        loaded.rsample(8, torch.Generator().manual_seed(3)),
        prior.rsample(8, torch.Generator().manual_seed(3)),
        rtol=0,
        atol=0,
    )

    def drop_guide(tensors):
        for key in [key for key in tensors if key.startswith("guide.")]:
            del tensors[key]

    rewrite(path, tmp_path / "bad.safetensors", change_tensors=drop_guide)
    with pytest.raises(CheckpointError, match="missing tensors") as raised:
        load_learned_prior(tmp_path / "bad.safetensors", shape)
    assert "\n" not in str(raised.value)


def test_cache_round_trip(fitted, tmp_path):
    prior, info, latents, _ = fitted
    path = tmp_path / PRIOR_FILE
    save_learned_prior(path, prior, info)
    assert not path.with_name(PRIOR_FILE + ".tmp").exists()
    loaded, loaded_info = load_learned_prior(path, tuple(latents.shape[1:]))
    assert loaded_info == json.loads(json.dumps(info))
    assert loaded.diffusion.config == prior.diffusion.config
    torch.testing.assert_close(
        loaded.rsample(4, torch.Generator().manual_seed(3)),
        prior.rsample(4, torch.Generator().manual_seed(3)),
        rtol=0,
        atol=0,
    )


def test_a_prior_written_before_guidance_existed_loads_unguided(guided, tmp_path):
    prior, info, latents, _, _ = guided
    shape = tuple(latents.shape[1:])
    unguided = copy.deepcopy(prior.diffusion)
    unguided.guide = None
    unguided.config = dataclasses.replace(unguided.config, guidance=1.0)
    save_learned_prior(tmp_path / "new.safetensors", LearnedPrior(unguided), info)

    def drop_guidance(metadata):
        config = json.loads(metadata["config"])
        del config["guidance"]
        metadata["config"] = json.dumps(config)

    rewrite(
        tmp_path / "new.safetensors", tmp_path / "old.safetensors", change_metadata=drop_guidance
    )
    old = load_learned_prior(tmp_path / "old.safetensors", shape)[0]
    assert old.diffusion.config.guidance == 1.0 and old.diffusion.guide is None
    torch.testing.assert_close(
        old.rsample(4, torch.Generator().manual_seed(3)),
        prior.diffusion.sample(4, torch.Generator().manual_seed(3), guidance=1.0),
    )


def rewrite(source, target, change_tensors=None, change_metadata=None):
    """Copy the prior file ``source`` to ``target`` with its tensors and metadata edited."""
    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    if change_tensors is not None:
        change_tensors(tensors)
    if change_metadata is not None:
        change_metadata(metadata)
    save_file(tensors, str(target), metadata)


def first_weight(tensors):
    return next(key for key in sorted(tensors) if key.startswith("denoiser."))


def test_corrupt_cache_is_a_one_line_checkpoint_error(fitted, tmp_path):
    prior, info, latents, _ = fitted
    shape = tuple(latents.shape[1:])
    good = tmp_path / PRIOR_FILE
    save_learned_prior(good, prior, info)
    bad = tmp_path / "bad.safetensors"

    def expect(match, latent_shape=shape):
        with pytest.raises(CheckpointError, match=match) as raised:
            load_learned_prior(bad, latent_shape)
        assert str(bad) in str(raised.value) and "\n" not in str(raised.value)

    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated
    expect("cannot be read")
    bad.write_bytes(b"")
    expect("cannot be read")

    def nan_weight(tensors):
        tensors[first_weight(tensors)].view(-1)[0] = float("nan")

    rewrite(good, bad, nan_weight)
    expect("NaN, infinite")

    def wrong_shape(tensors):
        key = first_weight(tensors)
        tensors[key] = torch.cat([tensors[key], tensors[key]])

    rewrite(good, bad, wrong_shape)
    expect("has shape .* its config needs")
    rewrite(good, bad, lambda tensors: tensors.pop("latent_std"))
    expect(r"missing tensors \['latent_std'\]")
    rewrite(good, bad, lambda tensors: tensors.update(stray=torch.zeros(2)))
    expect(r"extra tensors \['stray'\]")
    rewrite(good, bad, change_metadata=lambda metadata: metadata.update(info="{not json"))
    expect("metadata is not JSON")
    rewrite(good, bad, change_metadata=lambda metadata: metadata.update(info="[1, 2]"))
    expect("not a JSON object")
    rewrite(good, bad, change_metadata=lambda metadata: metadata.pop("config"))
    expect(r"lacks metadata \['config'\]")

    def unknown_field(metadata):
        config = json.loads(metadata["config"])
        metadata["config"] = json.dumps({**config, "depth": 3})

    rewrite(good, bad, change_metadata=unknown_field)
    expect(r"unknown diffusion config fields \['depth'\]")

    def wider(metadata):  # the tensors no longer fit the config's width
        metadata["config"] = json.dumps({**json.loads(metadata["config"]), "width": 24})

    rewrite(good, bad, change_metadata=wider)
    expect("its config needs")

    def bad_value(metadata):
        metadata["config"] = json.dumps({**json.loads(metadata["config"]), "timesteps": "many"})

    rewrite(good, bad, change_metadata=bad_value)
    expect("timesteps must be an integer")
    shutil.copy(good, bad)
    expect("the model's latent is", latent_shape=(shape[0], shape[1] + 1))


def test_fit_settings_are_checked():
    with pytest.raises(ConfigError, match=r"fit\.held_out_fraction must be in"):
        LearnedPriorFit(held_out_fraction=1.0).validate()
    with pytest.raises(ConfigError, match=r"fit\.diffusion\.sampling_steps must be at most"):
        LearnedPriorFit(diffusion=LatentDiffusionConfig(timesteps=10, sampling_steps=20)).validate()
    with pytest.raises(ConfigError, match=r"fit\.learning_rate must be"):
        LearnedPriorFit(learning_rate=float("nan")).validate()


# A fit of a few steps of a one-block denoiser: the CLI's plumbing, not the prior's quality.
TINY_FIT = ["--steps", "15", "--batch-size", "8", "--diffusion.width", "16", "--diffusion.blocks",
            "1", "--diffusion.timesteps", "50", "--diffusion.sampling-steps", "5"]  # fmt: skip


def tiny_fit_args(run, data) -> list[str]:
    """`nerfvae prior fit` of ``run`` on ``data`` with TINY_FIT, on one thread, quietly."""
    return ["prior", "fit", "--run", str(run), "--data", str(data), "--threads", "1",
            "--no-progress", *(f"--fit.{a[2:]}" if a.startswith("--") else a
                               for a in TINY_FIT)]  # fmt: skip


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A copy of the tiny run, so that the prior file it gains stays out of the shared run."""
    return shutil.copytree(tiny_run, tmp_path / "run")


def test_cli_fits_caches_and_samples(run_copy, tiny_dataset, tmp_path, capsys):
    fit_args = tiny_fit_args(run_copy, tiny_dataset)
    assert main(fit_args) == 0
    printed = capsys.readouterr().out
    assert "learned prior fitted now: 6 training scenes (1 held out), 15 steps in" in printed
    assert "held-out NLL bound" in printed and f"wrote {run_copy / PRIOR_FILE}" in printed
    assert (run_copy / PRIOR_FILE).is_file()
    stamp = (run_copy / PRIOR_FILE).stat().st_mtime_ns
    assert main(fit_args) == 0
    printed = capsys.readouterr().out
    assert "learned prior read from the run: 6 training scenes" in printed
    assert (run_copy / PRIOR_FILE).stat().st_mtime_ns == stamp
    assert "fitting" not in printed

    out = tmp_path / "samples"
    sample_args = ["sample", "--run", str(run_copy), "--data", str(tiny_dataset), "--num", "2",
                   "--views", "1", "--turntable-frames", "0", "--out", str(out),
                   "--prior", "learned"]  # fmt: skip
    assert main(sample_args) == 0
    printed = capsys.readouterr().out
    assert "learned prior read from the run" in printed
    assert "samples of the learned prior" in printed
    first = iio.imread(out / "sample_00_view_00.png").astype(int)
    second = iio.imread(out / "sample_01_view_00.png").astype(int)
    assert np.abs(first - second).max() > 0

    # --refit-prior fits again, with --learned-fit.*, and says so
    refit = [*sample_args, "--refit-prior", *(f"--learned-fit.{a[2:]}" if a.startswith("--")
                                              else a for a in TINY_FIT), "--learned-fit.seed", "1"]  # fmt: skip
    assert main(refit) == 0
    printed = capsys.readouterr().out
    assert "fitting one to the training scenes" in printed and "fitted now" in printed
    assert (run_copy / PRIOR_FILE).stat().st_mtime_ns != stamp

    (run_copy / PRIOR_FILE).write_bytes(b"garbage")
    assert main(sample_args) == 1
    assert "cannot be read" in capsys.readouterr().err
    assert main(["prior"]) == 2 and main(["prior", "score"]) == 2


def test_cli_sampler_options(run_copy, tiny_dataset, tmp_path, capsys):
    """`nerfvae sample --sampling-steps N --guidance W` on a prior fitted with a guide."""
    fit_args = tiny_fit_args(run_copy, tiny_dataset)
    assert main([*fit_args, "--fit.diffusion.guidance", "2", "--fit.guide-steps", "5"]) == 0
    assert "autoguidance guide from step 5" in capsys.readouterr().out

    def render(options, prior="learned"):
        out = tmp_path / f"{prior}-{'-'.join(options)}"
        args = ["sample", "--run", str(run_copy), "--data", str(tiny_dataset), "--num", "1",
                "--views", "1", "--turntable-frames", "0", "--out", str(out), "--prior", prior]  # fmt: skip
        return main([*args, *options]), out / "sample_00_view_00.png"

    def pixels(path):
        return iio.imread(path).astype(int)

    # the prior's own 5 steps and weight 2, asked for or not, give the same scene; 2 steps
    # another one, and so does sampling without the guide
    status, default = render([])
    assert status == 0
    for same in (["--sampling-steps", "5"], ["--guidance", "2"]):
        status, path = render(same)
        assert status == 0
        np.testing.assert_array_equal(pixels(default), pixels(path))
    for other in (["--sampling-steps", "2"], ["--guidance", "1"]):
        status, path = render(other)
        assert status == 0
        assert np.abs(pixels(default) - pixels(path)).max() > 0, other
    capsys.readouterr()
    # out of range for the prior's 50 noise levels, or for another prior: one line, no traceback
    for options, prior, message in (
        (["--sampling-steps", "51"], "learned", "sampling_steps must be an integer in 1..50"),
        (["--sampling-steps", "0"], "learned", "sampling_steps must be an integer in 1..50"),
        (["--sampling-steps", "5"], "standard", "--sampling-steps applies to --prior learned"),
        (["--guidance", "0.5"], "learned", "guidance must be in [1, 100]"),
        (["--guidance", "2"], "aggregate", "--guidance applies to --prior learned"),
    ):
        assert render(options, prior)[0] == 1
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error, error


def test_a_fit_for_another_checkpoint_is_refitted(run_copy, tiny_dataset):
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.training.loading import load_trained_model

    model, _, record = load_trained_model(run_copy)
    opened = []

    def training_scenes():
        opened.append(1)
        return MultiSceneDataset(tiny_dataset, "train")

    fit = LearnedPriorFit(
        scenes=4, context_views=2, steps=5, batch_size=4, held_out_fraction=0.0,
        diffusion=LatentDiffusionConfig(width=8, blocks=1, timesteps=20, sampling_steps=4),
    )  # fmt: skip
    assert run_learned_prior(run_copy, model, record) is None
    prior, info, fitted = learned_prior(
        run_copy, model, record, training_scenes, fit, progress=False
    )
    assert fitted and len(opened) == 1 and info["checkpoint_sha256"] == record["sha256"]
    assert info["scenes"] == 4 and info["held_out_latents"] == 0 and "held_out_loss" not in info
    assert info["fit"]["diffusion"]["width"] == 8
    latent_shape = tuple(model.prior(1).mean.shape[1:])
    assert tuple(prior.rsample(2).shape) == (2, *latent_shape)
    _, _, fitted = learned_prior(run_copy, model, record, None, LearnedPriorFit())
    assert not fitted and len(opened) == 1
    other = {**record, "sha256": "0" * 64}
    assert run_learned_prior(run_copy, model, other) is None
    with pytest.raises(ConfigError, match="belongs to another checkpoint"):
        learned_prior(run_copy, model, other, None, fit)
    _, info, fitted = learned_prior(run_copy, model, other, training_scenes, fit, progress=False)
    assert fitted and len(opened) == 2 and info["checkpoint_sha256"] == "0" * 64
    with pytest.raises(ConfigError, match="7 scenes asked for, the split has 6"):
        learned_prior(run_copy, model, record, training_scenes, LearnedPriorFit(scenes=7), True)


def test_new_scenes_come_from_the_best_prior_the_run_has(run_copy, tiny_dataset, tmp_path, capsys):
    """`auto` takes learned, else aggregate, else N(0, I); the viewer's "new scene" and
    `export mesh --prior-sample` draw from the chosen prior."""
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.evaluation.aggregate_prior import AggregateFit, aggregate_prior
    from nerfvae.evaluation.scene_priors import StandardPrior, prior_sample, scene_prior
    from nerfvae.training.loading import load_trained_model
    from nerfvae.viewer.session import ViewerSession

    model, _, record = load_trained_model(run_copy)
    assert scene_prior(run_copy, model, record).name == "standard"
    for missing in ("aggregate", "learned"):
        with pytest.raises(ConfigError, match="missing or was fitted to another checkpoint"):
            scene_prior(run_copy, model, record, missing)
    train = MultiSceneDataset(tiny_dataset, "train")
    aggregate_prior(run_copy, model, record, lambda: train, AggregateFit(components=2))
    assert scene_prior(run_copy, model, record).name == "aggregate"
    fit = LearnedPriorFit(
        scenes=4, context_views=2, steps=5, batch_size=4, held_out_fraction=0.0,
        diffusion=LatentDiffusionConfig(width=8, blocks=1, timesteps=20, sampling_steps=4),
    )  # fmt: skip
    learned, _, _ = learned_prior(run_copy, model, record, lambda: train, fit, progress=False)
    chosen = scene_prior(run_copy, model, record)
    assert chosen.name == "learned" and scene_prior(run_copy, model, record, "standard").name == (
        "standard"
    )
    expected = learned.rsample(3, torch.Generator().manual_seed(5))[2:3]
    assert torch.equal(prior_sample(chosen, 2, seed=5), expected)
    assert not torch.equal(prior_sample(StandardPrior(model), 2, seed=5), expected)

    session = ViewerSession(model, MultiSceneDataset(tiny_dataset, "test"), prior=chosen)
    session.new_prior_sample()
    seed = session.seed + 2000 + 1
    assert torch.equal(session.latent, learned.rsample(1, torch.Generator().manual_seed(seed)))

    from nerfvae.export import MeshExtractionConfig, density_grid

    # the median density of learned-prior sample 1 lies inside its range, so the mesh of that
    # sample is not empty
    latent = learned.rsample(2, torch.Generator().manual_seed(0))[1:2]
    grid = density_grid(model, latent, MeshExtractionConfig(resolution=12)).density
    level = float(np.quantile(grid[1:-1, 1:-1, 1:-1], 0.5))
    mesh = tmp_path / "prior.ply"
    code = main(["export", "mesh", "--run", str(run_copy), "--prior-sample", "1", "--out",
                 str(mesh), "--resolution", "12", "--density-threshold", f"{level}"])  # fmt: skip
    assert code == 0 and mesh.is_file()
    assert "prior sample 1 (seed 0) of the learned prior" in capsys.readouterr().out

    # the demo shows the learned prior's samples: 4 scenes (rows), each from 3 cameras then
    # their depth (columns), rows differ from each other
    from nerfvae.data.generate import make_settings
    from nerfvae.demo import run_demo

    settings = make_settings("tiny", scenes=2, eval_scenes=1, views=6, ood_views=2, spp=2, seed=3)
    report = run_demo(tmp_path / "demo", run_copy, settings, workers=1, samples=2, progress=False)
    assert "(learned_prior_samples.png)" in report.read_text()
    figure = iio.imread(tmp_path / "demo" / "learned_prior_samples.png").astype(int)
    tile = settings.resolution + 2
    assert figure.shape[:2] == (4 * tile + 2, 6 * tile + 2)
    first_row, second_row = figure[2:tile, 2 : 3 * tile], figure[tile + 2 : 2 * tile]
    assert np.abs(first_row - second_row[:, 2 : 3 * tile]).max() > 0


def test_the_elbo_with_a_learned_prior_in_place_of_the_standard_normal(run_copy, tiny_dataset):
    """eval's −ELBO takes a prior's bound on −log p(z) in the KL term: log q(z) + bound(z)."""
    import math

    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.evaluation.evaluate import evaluate
    from nerfvae.training.loading import load_trained_model

    model, _, record = load_trained_model(run_copy)
    test = MultiSceneDataset(tiny_dataset, "test")

    class StandardNormalDensity:  # the exact −log N(z; 0, I), plus a constant
        def __init__(self, extra):
            self.extra = extra

        def negative_log_likelihood_bound(self, latents, generator=None):
            per_dim = 0.5 * (latents.square() + math.log(2 * math.pi))
            return per_dim.flatten(1).sum(1) + self.extra

    def nelbo(prior):
        result = evaluate(model, test, context_sizes=(1,), progress=False, elbo_prior=prior)
        assert result["elbo_prior"] == ("standard" if prior is None else "learned")
        return result["per_scene"]["1"]["id"]["nelbo_bits_per_dim"]

    exact, shifted, standard = (
        nelbo(StandardNormalDensity(0.0)),
        nelbo(StandardNormalDensity(1e3)),
        nelbo(None),
    )
    dims = test.load_scene(0).images[0].numel() * (test.num_id_views - 1)
    for a, b in zip(exact, shifted):
        assert b - a == pytest.approx(1e3 / (dims * math.log(2)), rel=1e-4)
    # the one-sample KL estimate with the exact N(0, I) density is close to the closed form
    for a, b in zip(exact, standard):
        assert a == pytest.approx(b, abs=0.05)

    fit = LearnedPriorFit(
        scenes=4, context_views=2, steps=5, batch_size=4, held_out_fraction=0.0,
        diffusion=LatentDiffusionConfig(width=8, blocks=1, timesteps=20, sampling_steps=4),
    )  # fmt: skip
    train = MultiSceneDataset(tiny_dataset, "train")
    learned_prior(run_copy, model, record, lambda: train, fit, progress=False)
    out = run_copy / "eval_learned.json"
    code = main(["eval", "--run", str(run_copy), "--data", str(tiny_dataset), "--context", "1",
                 "--elbo-prior", "learned", "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    assert code == 0 and result["elbo_prior"] == "learned"
    assert math.isfinite(result["results"]["1"]["id"]["nelbo_bits_per_dim"])
