"""The `planes` scene function, the proposal sampler and the precision setting."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from test_models import ring_cameras, synthetic_batch

from nerfvae.errors import ConfigError
from nerfvae.models import LatentConfig, NeRFVAE, NeRFVAEConfig, SceneFunctionConfig
from nerfvae.models.config import EncoderConfig
from nerfvae.models.planes import PlaneDecoder
from nerfvae.rendering import (
    RaySamplingConfig,
    interlevel_loss,
    render_rays,
    render_with_proposal,
)

PLANE_LAYOUTS = ("volume", "triplane")


def planes_config(
    plane_layout="volume", layout="spatial", grid=2, sampler="proposal", **function
) -> NeRFVAEConfig:
    return NeRFVAEConfig(
        encoder=EncoderConfig(stage_channels=(8, 16)),
        latent=LatentConfig(layout=layout, channels=8, grid=grid),
        scene_function=SceneFunctionConfig(
            conditioning="planes",
            width=32,
            depth=2,
            point_frequencies=2,
            direction_frequencies=1,
            plane_layout=plane_layout,
            plane_channels=8,
            plane_height_bins=4,
            plane_decoder_channels=16,
            **function,
        ),
        sampling=RaySamplingConfig(sampler=sampler, num_coarse=16, num_fine=8),
    )


@pytest.mark.parametrize(
    ("plane_layout", "layout", "grid"),
    list(itertools.product(PLANE_LAYOUTS, ("global", "spatial"), (1, 3, 4))),
)
def test_planes_shapes_for_every_layout_and_grid(plane_layout, layout, grid):
    torch.manual_seed(0)
    config = planes_config(plane_layout, layout, grid)
    model = NeRFVAE(config)
    function = model.scene_function
    latent = torch.randn(2, config.latent.num_tokens, config.latent.channels)
    code = function.decode(latent)
    base = grid if layout == "spatial" else 4
    resolution = 4 * base  # plane_upsample 4
    if plane_layout == "volume":
        assert code.ground.shape == (2, resolution, resolution, 4, 8)
        assert code.proposal[0].shape == (2, resolution, resolution, 4, 1)
    else:
        assert code.ground.shape == (2, 8, resolution, resolution)
        assert code.first_up.shape == code.second_up.shape == (2, 8, 4, resolution)
    points = torch.rand(2, 50, 3) * 2 - 1
    directions = torch.nn.functional.normalize(torch.randn(2, 50, 3), dim=-1)
    density, colour = function(points, directions, code)
    assert density.shape == (2, 50) and colour.shape == (2, 50, 3)
    assert (density >= 0).all() and ((colour >= 0) & (colour <= 1)).all()
    proposal = function.proposal_density(points, code)
    assert proposal.shape == (2, 50) and (proposal >= 0).all()


@pytest.mark.parametrize("size", [(1, 1, 1), (2, 3, 5), (8, 8, 4)])
def test_trilinear_lookup_matches_grid_sample(size):
    from nerfvae.models.planes import trilinear_lookup

    generator = torch.Generator().manual_seed(0)
    volume = torch.randn(2, 3, *size, generator=generator)  # [S, C, Z, Y, X]
    grid = torch.rand(2, 40, 3, generator=generator) * 2.4 - 1.2  # some beyond the border
    expected = (
        torch.nn.functional.grid_sample(
            volume, grid[:, :, None, None, :], padding_mode="border", align_corners=False
        )
        .flatten(2)
        .transpose(1, 2)
    )
    channels_last = volume.permute(0, 3, 4, 2, 1)  # [S, Y, X, Z, C]
    torch.testing.assert_close(trilinear_lookup(channels_last, grid), expected)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (8, 8)])
def test_upsample_conv_is_a_convolution_of_the_nearest_upsampled_map(size):
    from nerfvae.models.planes import upsample_conv

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    maps = torch.randn(2, 4, *size, requires_grad=True)
    expected = conv(torch.nn.functional.interpolate(maps, scale_factor=2.0, mode="nearest"))
    got = upsample_conv(maps, conv)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    weights = torch.randn(expected.shape)
    inputs = [maps, conv.weight, conv.bias]
    for a, b in zip(
        torch.autograd.grad((got * weights).sum(), inputs),
        torch.autograd.grad((expected * weights).sum(), inputs),
    ):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("points", [1, 2, 77, 80])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_one_scene_triplane_read_split_over_threads_equals_grid_sample(points, threads):
    from nerfvae.models.planes import PlanesSceneFunction

    generator = torch.Generator().manual_seed(points)
    maps = [
        torch.randn(1, 3, *size, generator=generator, requires_grad=True)
        for size in ((4, 6), (2, 6), (2, 4))
    ]  # ground [R2, R1], first axis and up [D, R1], second axis and up [D, R2]
    grid = torch.rand(1, points, 3, generator=generator) * 2.4 - 1.2  # some beyond the border
    expected = (
        sum(
            torch.nn.functional.grid_sample(
                plane, grid[:, :, None, list(pair)], padding_mode="border", align_corners=False
            )
            for plane, pair in zip(maps, ((0, 1), (0, 2), (1, 2)))
        )
        .flatten(2)
        .transpose(1, 2)
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = PlanesSceneFunction._read(tuple(maps), grid, "triplane")
    finally:
        torch.set_num_threads(previous)
    assert got.shape == (1, points, 3)
    torch.testing.assert_close(got, expected)
    weights = torch.randn(expected.shape, generator=generator)
    for a, b in zip(
        torch.autograd.grad((got * weights).sum(), maps),
        torch.autograd.grad((expected * weights).sum(), maps),
    ):
        torch.testing.assert_close(a, b)


def test_planes_per_point_cost_does_not_grow_with_the_latent_grid():
    """The per-point MLP reads plane_channels features whatever the number of latent tokens."""
    per_point = []
    for grid in (2, 8, 16):
        function = NeRFVAE(planes_config(grid=grid)).scene_function
        per_point.append(sum(p.numel() for p in function.layers.parameters()))
    assert len(set(per_point)) == 1


def test_planes_rejects_bad_settings_with_a_config_error():
    with pytest.raises(ConfigError, match="plane_upsample"):
        NeRFVAE(planes_config(plane_upsample=6))
    with pytest.raises(ConfigError, match="plane_upsample"):
        NeRFVAE(planes_config(plane_upsample=2))
    with pytest.raises(ConfigError, match="planes"):
        config = planes_config()
        config.scene_function.conditioning = "attention"
        NeRFVAE(config)  # proposal sampler without a proposal density


def test_planes_gradients_reach_latent_and_decoder_and_the_proposal_stays_off_the_latent():
    torch.manual_seed(0)
    model = NeRFVAE(planes_config())
    function = model.scene_function
    latent = torch.randn(2, 4, 8, requires_grad=True)
    code = function.decode(latent)
    points = torch.rand(2, 40, 3) * 2 - 1
    directions = torch.nn.functional.normalize(torch.randn(2, 40, 3), dim=-1)
    density, colour = function(points, directions, code)
    (density.sum() + colour.sum()).backward()
    assert latent.grad.abs().sum() > 0
    assert function.decoder.stem.weight.grad.abs().sum() > 0
    assert all(stage.weight.grad.abs().sum() > 0 for stage in function.decoder.stages)

    # the proposal density trains its own head only: no gradient to the latent or the trunk
    latent.grad = None
    model.zero_grad()
    code = function.decode(latent)
    function.proposal_density(points, code).sum().backward()
    assert latent.grad is None or latent.grad.abs().sum() == 0
    assert function.decoder.stem.weight.grad is None
    assert function.decoder.proposal_head.weight.grad.abs().sum() > 0


class CountingDecoder:
    """Counts calls of a PlaneDecoder's forward."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = PlaneDecoder.forward

        def counted(decoder, latent):
            self.calls += 1
            return original(decoder, latent)

        monkeypatch.setattr(PlaneDecoder, "forward", counted)


def test_per_scene_decode_runs_once_per_step_and_once_per_rendered_latent(monkeypatch):
    torch.manual_seed(0)
    counter = CountingDecoder(monkeypatch)
    model = NeRFVAE(planes_config())
    model.loss(synthetic_batch(), generator=torch.Generator().manual_seed(0))
    assert counter.calls == 1  # proposal and field share one decode in a training step

    model.eval()
    K, c2w = ring_cameras(2, 3, 16)
    latent = torch.randn(2, 4, 8)
    counter.calls = 0
    views = model.render_views(latent, K, c2w, 16, 16, chunk_rays=100)  # 8 chunks
    assert counter.calls == 1
    assert views["colour"].shape == (2, 3, 16, 16, 3)
    # a new latent, or new weights, decode afresh
    model.render_views(latent + 1, K, c2w, 16, 16, chunk_rays=100)
    assert counter.calls == 2
    with torch.no_grad():
        model.scene_function.decoder.stem.weight.mul_(0.5)
    model.render_views(latent, K, c2w, 16, 16, chunk_rays=100)
    assert counter.calls == 3


@pytest.mark.parametrize("plane_layout", PLANE_LAYOUTS)
def test_planes_model_trains_on_tiny_data(plane_layout):
    torch.manual_seed(0)
    model = NeRFVAE(planes_config(plane_layout))
    batch = synthetic_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses, proposal_losses = [], []
    for step in range(30):
        out = model.loss(batch, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
        proposal_losses.append(out["auxiliary_loss"].item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def slab_density(points: torch.Tensor) -> torch.Tensor:
    """An opaque slab 2 <= x <= 2.2 (density 50) in empty space."""
    x = points[..., 0]
    return torch.where((x >= 2.0) & (x <= 2.2), 50.0, 0.0)


def slab_field(points, directions):
    colour = torch.zeros_like(points)
    colour[..., 1] = 1.0
    return slab_density(points), colour


def rays_along_x(count=32):
    origins = torch.zeros(count, 3)
    origins[:, 1:] = torch.rand(count, 2) * 0.1
    directions = torch.tensor([1.0, 0.0, 0.0]).expand(count, 3)
    return origins, directions


@pytest.mark.parametrize("training", [False, True])
def test_proposal_samples_stay_inside_near_far_and_concentrate_on_the_surface(training):
    origins, directions = rays_along_x()
    near, far = torch.full((32,), 0.5), torch.full((32,), 4.0)
    config = RaySamplingConfig(sampler="proposal", num_coarse=64, num_fine=16)
    seen = []

    def recording_field(points, dirs):
        seen.append(points[..., 0].detach())
        return slab_field(points, dirs)

    out = render_with_proposal(
        recording_field,
        slab_density,
        origins,
        directions,
        near,
        far,
        config,
        background=None,
        opaque_far=False,
        perturb=training,
        generator=torch.Generator().manual_seed(0),
    )
    t = seen[0]  # the field's samples (x = t along these rays)
    assert t.shape == (32, 16)
    assert (t >= 0.5).all() and (t <= 4.0).all()
    # the proposal knows the surface: most field samples land within a proposal bin of it
    near_surface = ((t > 1.9) & (t < 2.3)).float().mean()
    assert near_surface > 0.6
    # the render sees the green slab at depth 2 (16 samples resolve its optical depth of 10 to
    # within a few per cent)
    assert torch.allclose(out.final.colour[:, 1], torch.ones(32), atol=0.02)
    assert torch.allclose(out.final.depth, torch.full((32,), 2.0), atol=0.08)


def test_proposal_render_agrees_with_dense_hierarchical_render():
    origins, directions = rays_along_x(8)
    near, far = torch.full((8,), 0.5), torch.full((8,), 4.0)
    dense = render_rays(
        slab_field, origins, directions, near, far, RaySamplingConfig(512, 0), training=False
    )
    proposal = render_rays(
        slab_field,
        origins,
        directions,
        near,
        far,
        RaySamplingConfig(64, 16, sampler="proposal"),
        proposal_density=slab_density,
        training=False,
    )
    torch.testing.assert_close(proposal.final.colour, dense.final.colour, atol=0.01, rtol=0)
    torch.testing.assert_close(proposal.final.depth, dense.final.depth, atol=0.05, rtol=0)
    with pytest.raises(ConfigError, match="proposal density"):
        render_rays(
            slab_field, origins, directions, near, far, RaySamplingConfig(8, 4, sampler="proposal")
        )


def test_interlevel_loss_is_zero_when_the_proposal_bounds_the_field_and_positive_otherwise():
    edges = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    weights = torch.tensor([[0.0, 0.5, 0.5, 0.0]])
    # a coarser proposal holding the same mass: bounds it exactly
    proposal_edges = torch.tensor([[0.0, 2.0, 4.0]])
    assert interlevel_loss(edges, weights, proposal_edges, torch.tensor([[0.5, 0.5]])) == 0
    # a proposal with all its mass elsewhere: the shortfall is sum w^2 / w = sum w = 1
    missed = interlevel_loss(edges, weights, proposal_edges, torch.tensor([[0.0, 0.0]]))
    assert missed.item() == pytest.approx(1.0, rel=1e-5)
    # field interval [1, 2] overlaps proposal interval [0, 2] only: bound 0.3, shortfall 0.2
    partial = interlevel_loss(edges, weights, proposal_edges, torch.tensor([[0.3, 0.7]]))
    assert partial.item() == pytest.approx(0.2**2 / 0.5, rel=1e-4)


def test_precision_auto_resolves_by_the_capability_flag(monkeypatch):
    import nerfvae.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    assert precision.resolve_precision("bf16", "cpu") == "bf16"
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ConfigError, match="precision"):
        precision.resolve_precision("fp16", "cpu")
    description = precision.cpu_description()
    assert set(description) == {"name", "native_bf16", "threads"}
    assert description["native_bf16"] is False


@pytest.mark.parametrize(
    "command",
    [["eval"], ["render"], ["sample"], ["viewer"], ["demo"], ["export", "mesh"],
     ["prior", "fit"], ["baseline", "nerf"], ["experiment", "views"]],
)  # fmt: skip
def test_every_computing_command_takes_threads(command, capsys):
    """One --threads option (nerfvae.precision.ThreadsOption) on every command that computes, and
    --precision beside it (MachineOptions) on every one that loads a trained run."""
    from nerfvae.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--threads" in text
    loads_a_run = command[0] in ("eval", "render", "sample", "viewer", "demo", "export")
    assert ("--precision" in text) == loads_a_run


def test_use_threads_sets_torch_threads_and_refuses_a_negative_count():
    from nerfvae.precision import use_threads

    before = torch.get_num_threads()
    try:
        use_threads(1)
        assert torch.get_num_threads() == 1
        use_threads(0)  # keeps what is set
        assert torch.get_num_threads() == 1
        with pytest.raises(ConfigError, match="--threads"):
            use_threads(-2)
    finally:
        torch.set_num_threads(before)


def test_config_written_with_mixed_precision_loads_as_a_precision(tmp_path):
    from nerfvae.training.config import load_config

    for legacy, expected in ((True, "auto"), (False, "fp32")):
        path = tmp_path / f"config_{legacy}.json"
        path.write_text(json.dumps({"mixed_precision": legacy, "steps": 3}))
        config = load_config(path)
        assert config.precision == expected and config.steps == 3


PLANES_TRAIN_ARGS = [
    "--config", "tiny", "--steps", "6", "--checkpoint-every", "3", "--log-every", "2",
    "--validation-scenes", "1", "--scenes-per-batch", "2", "--rays-per-scene", "64",
    "--nerfvae.scene-function.conditioning", "planes",
    "--nerfvae.sampling.sampler", "proposal",
    "--nerfvae.sampling.num-fine", "8",
    "--nerfvae.scene-function.plane-decoder-channels", "16",
]  # fmt: skip


@pytest.mark.slow
def test_planes_run_trains_resumes_and_evaluates_end_to_end(tiny_dataset, tmp_path, monkeypatch):
    import nerfvae.precision as precision
    from nerfvae.cli.main import main

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    run = tmp_path / "planes"
    args = ["train", *PLANES_TRAIN_ARGS, "--data", str(tiny_dataset), "--run", str(run)]
    assert main([*args, "--stop-at-step", "3"]) == 0
    assert main(args) == 0  # resumes from step 3
    events = (run / "events.log").read_text()
    assert "resumed from" in events and "precision auto: fp32 on cpu" in events
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "auxiliary_loss" in header
    assert [int(r.split(",")[0]) for r in rows[1:]] == [2, 3, 4, 6]
    out = tmp_path / "metrics.json"
    eval_args = ["--run", str(run), "--data", str(tiny_dataset), "--context", "1,2"]
    code = main(["eval", *eval_args, "--out", str(out), "--precision", "bf16"])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["precision"] == "bf16"
    psnr = result["results"]["1"]["id"]["psnr"]
    assert math.isfinite(psnr) and psnr > 5
