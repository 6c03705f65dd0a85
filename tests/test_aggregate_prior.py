"""The ex-post aggregate prior: the low-rank Gaussian fit, its file, its cache in a run, the CLI."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import save_file

from nerfvae.cli.main import main
from nerfvae.errors import CheckpointError, ConfigError
from nerfvae.evaluation.aggregate_prior import (
    PRIOR_FILE,
    AggregateFit,
    aggregate_prior,
    load_aggregate_prior,
    run_aggregate_prior,
    save_aggregate_prior,
)
from nerfvae.models.latent import LowRankGaussian


def low_rank_samples(count=4000, seed=0):
    """Samples ``[count, 4, 3]`` of a known Gaussian: mean 1.5, std 3, 2, 0.5 along 3 orthonormal
    directions of the 12 values, nothing elsewhere."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.linalg.qr(torch.randn(12, 3, generator=generator))[0].T  # [3, 12]
    scales = torch.tensor([3.0, 2.0, 0.5])
    noise = torch.randn(count, 3, generator=generator)
    return (1.5 + (noise * scales) @ directions).view(count, 4, 3), directions, scales


def test_low_rank_gaussian_recovers_a_known_gaussian():
    samples, directions, scales = low_rank_samples()
    prior = LowRankGaussian.fit(samples, 3)
    torch.testing.assert_close(prior.mean, torch.full((4, 3), 1.5), atol=0.1, rtol=0)
    torch.testing.assert_close(prior.scales, scales, rtol=0.05, atol=0)
    # the same directions up to sign: |basis · directions^T| is the identity
    overlap = (prior.basis @ directions.T).abs()
    torch.testing.assert_close(overlap, torch.eye(3), atol=0.02, rtol=0)
    torch.testing.assert_close(prior.basis @ prior.basis.T, torch.eye(3), atol=1e-5, rtol=0)
    drawn = prior.rsample(20000, torch.Generator().manual_seed(1))
    assert drawn.shape == (20000, 4, 3)
    covariance = torch.cov(drawn.flatten(1).T)
    expected = directions.T @ torch.diag(scales.square()) @ directions
    torch.testing.assert_close(covariance, expected, atol=0.15, rtol=0)
    # one component keeps only the widest direction
    assert LowRankGaussian.fit(samples, 1).scales.shape == (1,)
    with pytest.raises(ValueError, match="components must be between 1 and"):
        LowRankGaussian.fit(samples[:3], 3)


def test_prior_file_round_trip_and_bad_files(tmp_path):
    samples, _, _ = low_rank_samples(count=50)
    prior = LowRankGaussian.fit(samples, 2)
    path = tmp_path / PRIOR_FILE
    save_aggregate_prior(path, prior, {"components": 2})
    loaded, info = load_aggregate_prior(path, (4, 3))
    assert info == {"components": 2}
    for name in ("mean", "basis", "scales"):
        torch.testing.assert_close(getattr(loaded, name), getattr(prior, name))
    with pytest.raises(CheckpointError, match="the model's latent is"):
        load_aggregate_prior(path, (4, 4))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_aggregate_prior(bad, (4, 3))
    save_file({"mean": prior.mean, "basis": prior.basis}, str(bad))
    with pytest.raises(CheckpointError, match=r"lacks tensors \['scales'\]"):
        load_aggregate_prior(bad, (4, 3))
    nan = prior.scales.clone()
    nan[0] = float("nan")
    save_file({"mean": prior.mean, "basis": prior.basis, "scales": nan}, str(bad))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_aggregate_prior(bad, (4, 3))
    save_file({"x": nan}, str(bad), {"info": "[1, 2]"})
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_aggregate_prior(bad, (4, 3))


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A copy of the tiny run, so that the prior file it gains stays out of the shared run."""
    return shutil.copytree(tiny_run, tmp_path / "run")


def test_aggregate_prior_is_fitted_once_per_checkpoint(run_copy, tiny_dataset):
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.training.loading import load_trained_model

    model, _, record = load_trained_model(run_copy)
    opened = []

    def training_scenes():
        opened.append(1)
        return MultiSceneDataset(tiny_dataset, "train")

    fit = AggregateFit(scenes=5, context_views=2, components=3)
    assert run_aggregate_prior(run_copy, model, record) is None
    prior, info, fitted = aggregate_prior(run_copy, model, record, training_scenes, fit)
    assert fitted and len(opened) == 1 and (run_copy / PRIOR_FILE).is_file()
    assert info["checkpoint_sha256"] == record["sha256"] and info["scenes"] == 5
    assert 0 < info["variance_kept"] <= 1 + 1e-6 and prior.scales.shape == (3,)
    latent_shape = tuple(model.prior(1).mean.shape[1:])
    assert tuple(prior.rsample(2).shape) == (2, *latent_shape)
    # read back, whatever the fit settings asked now, without opening the dataset
    again, _, fitted = aggregate_prior(run_copy, model, record, None, AggregateFit(components=1))
    assert not fitted and len(opened) == 1
    torch.testing.assert_close(again.basis, prior.basis)
    # --refit-prior, or another checkpoint, fits again
    _, info, fitted = aggregate_prior(
        run_copy, model, record, training_scenes, AggregateFit(components=2), refit=True
    )
    assert fitted and info["components"] == 2 and info["scenes"] == 6  # all training scenes
    other = {**record, "sha256": "0" * 64}
    assert run_aggregate_prior(run_copy, model, other) is None
    with pytest.raises(ConfigError, match="belongs to another checkpoint"):
        aggregate_prior(run_copy, model, other, None, fit)
    with pytest.raises(ConfigError, match="7 scenes asked for, the split has 6"):
        aggregate_prior(run_copy, model, other, training_scenes, AggregateFit(scenes=7))
    with pytest.raises(ConfigError, match="need more than 6 scenes"):
        aggregate_prior(run_copy, model, other, training_scenes, AggregateFit(components=6))
    with pytest.raises(ConfigError, match="components must be >= 1"):
        aggregate_prior(run_copy, model, record, None, AggregateFit(components=0))


def test_sample_cli_with_the_aggregate_prior(run_copy, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "samples"
    args = ["sample", "--run", str(run_copy), "--data", str(tiny_dataset), "--num", "2",
            "--views", "2", "--turntable-frames", "0", "--out", str(out),
            "--prior", "aggregate", "--fit.components", "2"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "aggregate prior fitted now: 2 components over 6 training scenes" in printed
    assert "samples of the aggregate prior" in printed
    assert (out / "samples.png").is_file() and (out / "sample_01_view_01.png").is_file()
    assert main(args) == 0
    assert "aggregate prior read from the run" in capsys.readouterr().out
    (run_copy / PRIOR_FILE).write_bytes(b"garbage")
    assert main(args) == 1
    assert "cannot be read" in capsys.readouterr().err


def test_demo_section_names_the_fit():
    from nerfvae.demo import aggregate_prior_section

    assert aggregate_prior_section(None) == []
    info = {"scenes": 900, "components": 32, "variance_kept": 0.52}
    text = "\n".join(aggregate_prior_section((None, info)))
    assert "900 training scenes" in text and "32 principal directions" in text
    assert "52% of their variance" in text and "(aggregate_prior_samples.png)" in text


def test_demo_section_names_the_learned_fit():
    from nerfvae.demo import learned_prior_section

    assert learned_prior_section(None) == []
    text = "\n".join(learned_prior_section((None, {"scenes": 900})))
    assert "900 training scenes" in text and "(learned_prior_samples.png)" in text


def test_more_components_than_latent_values_is_refused_before_encoding():
    from types import SimpleNamespace

    from nerfvae.evaluation.aggregate_prior import fit_aggregate_prior
    from nerfvae.models.latent import DiagonalGaussian

    def no_encoding(*args, **kwargs):
        raise AssertionError("encoded scenes before checking the settings")

    # 10 scenes allow up to 9 components, but a latent of 2 tokens x 2 channels has 4 values
    model = SimpleNamespace(
        prior=lambda n: DiagonalGaussian.standard_normal_like(torch.zeros(n, 2, 2)),
        infer=no_encoding,
    )
    dataset = type("Scenes", (), {"__len__": lambda self: 10, "num_id_views": 3})()
    with pytest.raises(ConfigError, match="5 components asked for, the latent has 4 values"):
        fit_aggregate_prior(model, dataset, AggregateFit(components=5))
