"""NeRF-VAE model: latent maths, encoder invariances, conditioning modes, objective."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from nerfvae.errors import ConfigError
from nerfvae.geometry import intrinsics_matrix, look_at
from nerfvae.models import (
    DiagonalGaussian,
    EncoderConfig,
    LatentConfig,
    NeRFVAE,
    NeRFVAEConfig,
    SceneFunctionConfig,
)
from nerfvae.models.encoder import ContextEncoder
from nerfvae.models.objective import elbo_metrics, gaussian_log_likelihood, object_pixel_weights
from nerfvae.rendering import RaySamplingConfig

MODES = ("concat", "ain", "attention")
LAYOUTS = ("global", "spatial")
UNIT_BOX = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))


def tiny_config(mode: str = "attention", layout: str = "spatial", **overrides) -> NeRFVAEConfig:
    config = NeRFVAEConfig(
        encoder=EncoderConfig(stage_channels=(8, 16)),
        latent=LatentConfig(layout=layout, channels=8, grid=2),
        scene_function=SceneFunctionConfig(
            conditioning=mode,
            width=32,
            depth=3,
            skip_layer=2,
            point_frequencies=3,
            direction_frequencies=1,
            attention_heads=2,
        ),
        sampling=RaySamplingConfig(num_coarse=8, num_fine=8),
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def ring_cameras(scenes: int, views: int, size: int = 16):
    azimuth = torch.linspace(0, 2 * math.pi, views + 1)[:-1]
    eye = torch.stack([2.5 * azimuth.cos(), 2.5 * azimuth.sin(), torch.full_like(azimuth, 0.8)], -1)
    c2w = look_at(eye, torch.zeros(3)).expand(scenes, views, 4, 4)
    K = intrinsics_matrix(size * 1.2, size * 1.2, size / 2, size / 2).expand(scenes, views, 3, 3)
    return K, c2w


def synthetic_batch(scenes=2, views=3, size=16, rays=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    K, c2w = ring_cameras(scenes, views, size)
    images = torch.rand(scenes, views, size, size, 3, generator=generator)
    origins = c2w[:, :1, :3, 3].expand(scenes, rays, 3)
    directions = torch.nn.functional.normalize(
        -origins + 0.5 * torch.randn(scenes, rays, 3, generator=generator), dim=-1
    )
    colours = torch.rand(scenes, 1, 3, generator=generator).expand(scenes, rays, 3)
    return {
        "context_images": images,
        "context_K": K,
        "context_c2w": c2w,
        "target_origins": origins.contiguous(),
        "target_directions": directions,
        "target_colours": colours.contiguous(),
        "target_object_mask": torch.rand(scenes, rays, generator=generator) > 0.5,
    }


def test_kl_matches_closed_form_and_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(3, 4, 5, generator=generator)
    log_std = 0.3 * torch.randn(3, 4, 5, generator=generator)
    posterior = DiagonalGaussian(mean, log_std)
    reference = (
        torch.distributions.kl_divergence(
            torch.distributions.Normal(mean, log_std.exp()), torch.distributions.Normal(0.0, 1.0)
        )
        .flatten(1)
        .sum(1)
    )
    torch.testing.assert_close(posterior.kl_to_standard_normal(), reference)
    # A hand-computed case: N(1, 2²) vs N(0, 1) in one dimension: 0.5 (4 + 1 - 1) - ln 2.
    single = DiagonalGaussian(torch.ones(1, 1, 1), torch.full((1, 1, 1), math.log(2.0)))
    assert single.kl_to_standard_normal().item() == pytest.approx(2.0 - math.log(2.0))
    other = DiagonalGaussian(torch.zeros_like(mean), torch.zeros_like(mean))
    torch.testing.assert_close(posterior.kl(other), posterior.kl_to_standard_normal())
    assert DiagonalGaussian.standard_normal_like(mean).kl_to_standard_normal().abs().max() == 0


def test_rsample_statistics():
    posterior = DiagonalGaussian(torch.full((1, 1, 20000), 2.0), torch.full((1, 1, 20000), -1.0))
    samples = posterior.rsample(torch.Generator().manual_seed(1))
    assert samples.mean().item() == pytest.approx(2.0, abs=0.02)
    assert samples.std().item() == pytest.approx(math.exp(-1.0), rel=0.03)


def test_gaussian_log_likelihood_matches_torch():
    prediction, target = torch.rand(10, 3), torch.rand(10, 3)
    expected = torch.distributions.Normal(prediction, 0.1).log_prob(target)
    torch.testing.assert_close(gaussian_log_likelihood(prediction, target, 0.1), expected)


def test_elbo_metrics_hand_computed():
    prediction = torch.zeros(2, 2, 3)  # 2 scenes x 2 rays
    target = torch.full((2, 2, 3), 0.1)
    target[0, 0] = 0.2  # 3 of 12 errors are 0.2: MSE (3 * 0.04 + 9 * 0.01) / 12 = 0.0175
    log_likelihood = gaussian_log_likelihood(prediction, target, 0.1).requires_grad_(True)
    mask = torch.tensor([[True, False], [False, False]])
    inputs = (prediction, target, log_likelihood, torch.tensor([1.0, 3.0]))  # KL per scene
    options = {"target_dims": 10, "posterior_std": torch.tensor([0.5, 1.5])}
    metrics = elbo_metrics(*inputs, **options, object_mask=mask)
    # mean log-likelihood: -0.5 * MSE / 0.1² - log 0.1 - log(2π) / 2; the KL (mean 2) over 10 dims
    elbo = -0.5 * 0.0175 / 0.01 + math.log(10.0) - 0.5 * math.log(2 * math.pi) - 0.2
    expected = {
        "mse": 0.0175,
        "psnr": -10 * math.log10(0.0175),
        "kl_nats": 2.0,
        "elbo_per_dim": elbo,
        "nelbo_bits_per_dim": -elbo / math.log(2.0) + 8.0,
        "posterior_std": 1.0,
        "object_psnr": -10 * math.log10(0.04),
    }
    assert list(metrics) == list(expected)
    for name, value in expected.items():
        assert metrics[name].item() == pytest.approx(value, rel=1e-5), name
        assert not metrics[name].requires_grad
    no_object = torch.zeros_like(mask)  # no object pixel: no object PSNR to log
    assert "object_psnr" not in elbo_metrics(*inputs, **options, object_mask=no_object)


def test_object_pixel_weights_keep_mean_one():
    target = torch.zeros(1, 4, 3)
    mask = torch.tensor([[True, False, False, False]])
    weights = object_pixel_weights(target, mask, 3.0)  # raw 3, 1, 1, 1 over their mean 1.5
    torch.testing.assert_close(weights, torch.tensor([[[2.0], [2 / 3], [2 / 3], [2 / 3]]]))
    torch.testing.assert_close(object_pixel_weights(target, None, 3.0), torch.ones(1, 4, 1))
    torch.testing.assert_close(object_pixel_weights(target, mask, 1.0), torch.ones(1, 4, 1))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_encoder_is_permutation_invariant_and_takes_any_view_count(layout):
    torch.manual_seed(0)
    encoder = ContextEncoder(
        EncoderConfig(stage_channels=(8, 16)), LatentConfig(layout, 4, 2), *UNIT_BOX
    )
    torch.nn.init.normal_(encoder.head.weight, std=0.1)  # the head starts at zero (the prior)
    batch = synthetic_batch(scenes=2, views=4)
    images, K, c2w = batch["context_images"], batch["context_K"], batch["context_c2w"]
    posterior = encoder(images, K, c2w)
    tokens = 1 if layout == "global" else 4
    assert posterior.mean.shape == (2, tokens, 4) and posterior.log_std.shape == (2, tokens, 4)
    order = torch.tensor([2, 0, 3, 1])
    permuted = encoder(images[:, order], K[:, order], c2w[:, order])
    torch.testing.assert_close(permuted.mean, posterior.mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(permuted.log_std, posterior.log_std, atol=1e-5, rtol=1e-5)
    for views in (1, 2, 3):
        assert encoder(images[:, :views], K[:, :views], c2w[:, :views]).mean.shape[1] == tokens
    # The posterior depends on the views: a different image gives a different posterior.
    changed = encoder(images.flip(2), K, c2w)
    assert not torch.allclose(changed.mean, posterior.mean)


def test_encoder_starts_at_the_prior():
    encoder = ContextEncoder(
        EncoderConfig(stage_channels=(8,)), LatentConfig("global", 4), *UNIT_BOX
    )
    batch = synthetic_batch()
    posterior = encoder(batch["context_images"], batch["context_K"], batch["context_c2w"])
    assert posterior.kl_to_standard_normal().abs().max() == 0


@pytest.mark.parametrize(("mode", "layout"), list(itertools.product(MODES, LAYOUTS)))
def test_scene_function_shapes_and_ranges(mode, layout):
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config(mode, layout))
    if mode == "ain":  # FiLM starts as the identity; give it something to modulate with
        torch.nn.init.normal_(model.scene_function.latent_to_film.weight, std=0.1)
    latent = torch.randn(2, model.config.latent.num_tokens, 8)
    points = torch.rand(2, 50, 3) * 2 - 1
    directions = torch.nn.functional.normalize(torch.randn(2, 50, 3), dim=-1)
    density, colour = model.scene_function(points, directions, latent)
    assert density.shape == (2, 50) and colour.shape == (2, 50, 3)
    assert (density >= 0).all() and ((colour >= 0) & (colour <= 1)).all()
    # Conditioning works: the same points under another scene's latent give another field.
    other, _ = model.scene_function(points, directions, latent.flip(0))
    assert not torch.allclose(density, other)


@pytest.mark.parametrize("mode", ["concat", "ain"])
def test_latent_hidden_layer_conditions_through_a_bottleneck(mode):
    from dataclasses import replace

    torch.manual_seed(0)
    direct = NeRFVAE(tiny_config(mode, "spatial"))
    config = tiny_config(mode, "spatial")
    config.scene_function = replace(config.scene_function, latent_hidden=5)
    model = NeRFVAE(config)
    function = model.scene_function
    assert function.latent_mapping[0].in_features == 4 * 8  # 2x2 tokens x 8 channels
    heads = function.latent_to_bias.values() if mode == "concat" else [function.latent_to_film]
    assert all(head.in_features == 5 for head in heads)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in direct.parameters())
    if mode == "ain":
        torch.nn.init.normal_(function.latent_to_film.weight, std=0.1)
    latent = torch.randn(2, 4, 8)
    points = torch.rand(2, 30, 3) * 2 - 1
    directions = torch.nn.functional.normalize(torch.randn(2, 30, 3), dim=-1)
    density, _ = function(points, directions, latent)
    other, _ = function(points, directions, latent.flip(0))
    assert not torch.allclose(density, other)
    config.scene_function = replace(config.scene_function, latent_hidden=-1)
    with pytest.raises(ConfigError, match="latent_hidden"):
        NeRFVAE(config)


def test_concat_per_scene_bias_equals_concatenation():
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config("concat", "global"))
    function = model.scene_function
    latent = torch.randn(2, 1, 8)
    points = torch.rand(2, 7, 3)
    encoded = function.point_encoding(function.normalise_points(points))
    first = function.layers[0]
    latent_weight = function.latent_to_bias["0"].weight
    combined = torch.nn.Linear(encoded.shape[-1] + 8, first.out_features)
    combined.weight.data = torch.cat([first.weight, latent_weight], dim=1)
    combined.bias.data = first.bias.data.clone()
    concatenated = torch.cat([encoded, latent.expand(2, 7, 8)], dim=-1)
    expected = combined(concatenated)
    actual = first(encoded) + function.latent_to_bias["0"](latent.flatten(1)).unsqueeze(1)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_scene_function_batches_scenes_independently():
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config("attention", "spatial"))
    latent = torch.randn(3, 4, 8)
    points = torch.rand(3, 20, 3)
    directions = torch.nn.functional.normalize(torch.randn(3, 20, 3), dim=-1)
    batched, _ = model.scene_function(points, directions, latent)
    single, _ = model.scene_function(points[1:2], directions[1:2], latent[1:2])
    torch.testing.assert_close(batched[1:2], single, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("mode", "layout"), list(itertools.product(MODES, LAYOUTS)))
def test_each_conditioning_mode_trains(mode, layout):
    """A few Adam steps on a fixed batch of two differently coloured scenes lower the loss."""
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config(mode, layout))
    batch = synthetic_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(25):
        out = model.loss(batch, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_loss_metrics_and_object_weighting():
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config())
    batch = synthetic_batch()
    out = model.loss(batch, target_dims=1000, generator=torch.Generator().manual_seed(0))
    for key in ("loss", "psnr", "object_psnr", "kl_nats", "nelbo_bits_per_dim", "mse"):
        assert torch.isfinite(out[key]), key
    assert out["psnr"].item() == pytest.approx(-10 * math.log10(out["mse"].item()), rel=1e-5)
    # bits/dim is the negative ELBO per dimension in bits plus 8 (8-bit discretisation).
    expected_bpd = -out["elbo_per_dim"].item() / math.log(2) + 8
    assert out["nelbo_bits_per_dim"].item() == pytest.approx(expected_bpd, rel=1e-6)
    weighted = model.loss(
        batch, target_dims=1000, object_pixel_weight=5.0, generator=torch.Generator().manual_seed(0)
    )
    assert weighted["elbo_per_dim"].item() == pytest.approx(out["elbo_per_dim"].item(), rel=1e-6)
    assert weighted["loss"].item() != pytest.approx(out["loss"].item(), rel=1e-6)


def test_iterative_inference_updates_posterior_and_trains_its_update_network():
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config(iterative_inference_steps=2, iterative_inference_rays=16))
    torch.nn.init.normal_(model.iterative_update.net[-1].weight, std=0.1)
    batch = synthetic_batch()
    amortized = model.encoder(batch["context_images"], batch["context_K"], batch["context_c2w"])
    refined = model.infer(
        batch["context_images"],
        batch["context_K"],
        batch["context_c2w"],
        generator=torch.Generator().manual_seed(0),
    )
    assert not torch.allclose(refined.mean, amortized.mean)
    out = model.loss(batch, generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert model.iterative_update.net[0].weight.grad.abs().sum() > 0
    assert model.encoder.head.weight.grad.abs().sum() > 0
    with torch.no_grad():  # inference under no_grad (evaluation) still runs the updates
        refined_eval = model.infer(
            batch["context_images"],
            batch["context_K"],
            batch["context_c2w"],
            generator=torch.Generator().manual_seed(0),
        )
    torch.testing.assert_close(refined_eval.mean, refined.mean)


def test_render_views_shapes_and_box_clipping():
    from nerfvae.geometry import image_rays

    torch.manual_seed(0)
    half = 0.5  # a box small enough that the corner rays of each view miss it
    model = NeRFVAE(tiny_config(scene_min=(-half,) * 3, scene_max=(half,) * 3)).eval()
    with torch.no_grad():  # an opaque solid filling the box: every ray stops where it enters
        model.scene_function.density_head.weight.zero_()
        model.scene_function.density_head.bias.fill_(1e4)
    K, c2w = ring_cameras(2, 2, size=8)
    latent = model.prior(2).mean
    out = model.render_views(latent, K, c2w, 8, 8, chunk_rays=20)
    assert out["colour"].shape == (2, 2, 8, 8, 3) and out["depth"].shape == (2, 2, 8, 8)
    centre = c2w[:, 0, :3, 3][:, None].expand(2, 5, 3)
    near, far = model.ray_bounds(centre, -centre / centre.norm(dim=-1, keepdim=True))
    assert (far > near).all() and (near > 0).all()
    # The entry distance of each pixel's ray into the box, by the slab method: [S, V, H, W].
    origins, directions = image_rays(K, c2w, 8, 8)
    slab_a, slab_b = (-half - origins) / directions, (half - origins) / directions
    entry = torch.minimum(slab_a, slab_b).amax(-1)
    exit_ = torch.maximum(slab_a, slab_b).amin(-1)
    hit = exit_ > entry.clamp(min=0)
    assert 0 < hit.float().mean() < 1  # both kinds of ray are tested
    # Rendered depth is the distance to the box's surface (a sample bin is ~0.12 wide here).
    torch.testing.assert_close(out["depth"][hit], entry[hit], atol=0.02, rtol=0)
    assert (out["opacity"][hit] > 0.99).all()
    # Rays that miss the box pass through nothing: no opacity, no depth, the black background.
    assert out["opacity"][~hit].abs().max() == 0 and out["depth"][~hit].abs().max() == 0
    assert out["colour"][~hit].abs().max() == 0


def test_bfloat16_inference_copy_matches_float32_and_follows_weight_updates():
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config("attention", "spatial")).eval()
    torch.nn.init.normal_(model.scene_function.density_head.weight, std=0.5)
    K, c2w = ring_cameras(1, 1, size=8)
    latent = torch.randn(1, 4, 8)
    reference = model.render_views(latent, K, c2w, 8, 8)  # float32 (mixed precision off)
    model.mixed_precision = True
    fast = model.render_views(latent, K, c2w, 8, 8)
    torch.testing.assert_close(fast["colour"], reference["colour"], atol=2e-2, rtol=0)
    assert model._bfloat16_cache[1].layers[0].weight.dtype == torch.bfloat16
    assert model._bfloat16_cache[1].box_centre.dtype == torch.float32  # buffers stay float32
    with torch.no_grad():
        model.scene_function.colour_head.bias.add_(5.0)  # any in-place update
    updated = model.render_views(latent, K, c2w, 8, 8)
    assert (updated["colour"] - fast["colour"]).abs().max() > 0.05  # the copy was rebuilt


def test_lifting_samples_the_pixel_a_point_projects_to():
    from nerfvae.geometry import project_points
    from nerfvae.models.encoder import lift_features

    K, c2w = ring_cameras(scenes=1, views=2, size=16)
    # a feature map whose two channels are the pixel-centre coordinates u and v
    v_grid, u_grid = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    coordinates = torch.stack([u_grid + 0.5, v_grid + 0.5]).expand(1, 2, 2, 16, 16)
    # two points both views see, one behind view 0 (seen by view 1 only), one beside both
    points = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0], [40.0, 0.0, 0.0], [0.0, 40.0, 0.0]])
    features, seen = lift_features([coordinates], points, K, c2w, 16, 16)
    expected_pixels = project_points(points.expand(1, 2, 4, 3), K, c2w)[..., :2]  # [1, 2, P, 2]
    # the mean, over the views that see a point, of the bilinearly sampled u, v: its projection
    torch.testing.assert_close(
        features[0, :2], expected_pixels[0, :, :2].mean(0), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(features[0, 2], expected_pixels[0, 1, 2], atol=1e-4, rtol=0)
    torch.testing.assert_close(seen[0], torch.tensor([1.0, 1.0, 0.5, 0.0]))
    assert features[0, 3].abs().max() == 0  # a point no view sees gets zeros, not garbage


def test_spatial_attention_prefers_the_token_above_the_point():
    from nerfvae.models.scene_function import CrossAttention

    torch.manual_seed(0)
    cells = 4
    centres = (torch.arange(cells) + 0.5) / cells * 2 - 1
    grid_y, grid_x = torch.meshgrid(centres, centres, indexing="ij")
    token_xy = torch.stack([grid_x, grid_y], -1).reshape(-1, 2)  # token i * cells + j
    attention = CrossAttention(8, 4, 2, centres)
    torch.testing.assert_close(attention.token_xy, token_xy)
    with torch.no_grad():
        attention.log_length_scale.fill_(math.log(0.05))  # very local heads
        attention.query.weight.zero_()  # no content term: only the locality prior remains
        attention.out.weight.copy_(torch.eye(8))
        attention.out.bias.zero_()
    tokens = torch.randn(1, cells * cells, 4)
    key, value = attention.keys_values(tokens)
    points_xy = token_xy[[5, 10]].unsqueeze(0)  # two points at token 5's and token 10's centres
    out = attention(torch.zeros(1, 2, 8), key, value, points_xy)
    own_values = value.transpose(1, 2).reshape(1, cells * cells, 8)[0, [5, 10]]
    torch.testing.assert_close(out[0], own_values, atol=1e-4, rtol=0)


def test_latent_grid_follows_the_up_axis():
    from nerfvae.models.encoder import ground_grid_points

    box_min, box_max = torch.tensor([0.0, 10.0, 20.0]), torch.tensor([2.0, 14.0, 26.0])
    z_up = ground_grid_points(box_min, box_max, cells=2, heights=3, up_axis="z")
    y_up = ground_grid_points(box_min, box_max, cells=2, heights=3, up_axis="y")
    assert z_up.shape == y_up.shape == (12, 3)
    # token order: height-major, then row (second plane axis), then column (first plane axis)
    torch.testing.assert_close(
        z_up[:4], torch.tensor([[0.5, 11, 21], [1.5, 11, 21], [0.5, 13, 21], [1.5, 13, 21]])
    )
    torch.testing.assert_close(z_up[::4, 2], torch.tensor([21.0, 23.0, 25.0]))
    # y up: the plane is x (columns) and z (rows); heights spread over y
    torch.testing.assert_close(
        y_up[:4],
        torch.tensor(
            [
                [0.5, 10 + 2 / 3, 21.5],
                [1.5, 10 + 2 / 3, 21.5],
                [0.5, 10 + 2 / 3, 24.5],
                [1.5, 10 + 2 / 3, 24.5],
            ]
        ),
    )
    model = NeRFVAE(tiny_config(up_axis="y"))
    assert model.scene_function.plane_axes == [0, 2]


@pytest.mark.parametrize("frozen", [False, True], ids=["training", "frozen-weights"])
def test_spatial_attention_matches_explicit_softmax_with_distance_bias(frozen):
    """Attention equals softmax(q·k/√d − d²/(2σ_h²))·v, values and gradients: through the written
    out softmax when the length scales train (their gradient comes through the mask), through the
    fused kernel when the weights are frozen (test-time refinement: the gradient reaches the
    points' features and the tokens only)."""
    from nerfvae.models.scene_function import CrossAttention

    torch.manual_seed(0)
    cells, width, heads = 3, 8, 2
    centres = (torch.arange(cells) + 0.5) / cells * 2 - 1
    attention = CrossAttention(width, 4, heads, centres).double()
    tokens = torch.randn(2, cells * cells, 4, dtype=torch.float64, requires_grad=True)
    features = torch.randn(2, 5, width, dtype=torch.float64, requires_grad=True)
    point_xy = torch.rand(2, 5, 2, dtype=torch.float64) * 2 - 1
    attention.requires_grad_(not frozen)
    wrt = [features, tokens] if frozen else [attention.log_length_scale]

    key, value = attention.keys_values(tokens)
    fused = attention(features, key, value, point_xy)
    fused_grads = torch.autograd.grad(fused.square().sum(), wrt, retain_graph=True)

    query = attention.query(attention.query_norm(features)).reshape(2, 5, heads, -1)
    query = query.transpose(1, 2)  # [S, H, P, d]
    distance2 = (point_xy.unsqueeze(2) - attention.token_xy.double()).square().sum(-1)  # [S, P, T]
    sigma2 = (2 * attention.log_length_scale).exp().view(1, heads, 1, 1)
    logits = query @ key.transpose(-1, -2) / query.shape[-1] ** 0.5 - distance2.unsqueeze(1) / (
        2 * sigma2
    )
    attended = (torch.softmax(logits, -1) @ value).transpose(1, 2).reshape(2, 5, width)
    reference = features + attention.out(attended)
    reference_grads = torch.autograd.grad(reference.square().sum(), wrt)

    torch.testing.assert_close(fused, reference)
    for fused_grad, reference_grad in zip(fused_grads, reference_grads, strict=True):
        torch.testing.assert_close(fused_grad, reference_grad)
        assert reference_grad.abs().sum() > 0


def test_spatial_attention_inference_path_matches_training_path():
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config("attention", "spatial"))
    latent = torch.randn(2, model.config.latent.num_tokens, 8)
    points = torch.rand(2, 40, 3) * 2 - 1
    directions = torch.nn.functional.normalize(torch.randn(2, 40, 3), dim=-1)
    density, colour = model.scene_function(points, directions, latent)  # gradient path
    with torch.no_grad():  # fused attention path
        density_ng, colour_ng = model.scene_function(points, directions, latent)
    torch.testing.assert_close(density_ng, density.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(colour_ng, colour.detach(), atol=1e-5, rtol=1e-5)


def test_spatial_attention_in_blocks_equals_one_block(monkeypatch):
    """Rendering attends in blocks of points to bound memory; the result must not depend on it."""
    from nerfvae.models import scene_function

    torch.manual_seed(0)
    model = NeRFVAE(tiny_config("attention", "spatial")).eval()
    latent = torch.randn(2, model.config.latent.num_tokens, 8)
    points = torch.rand(2, 37, 3) * 2 - 1
    directions = torch.nn.functional.normalize(torch.randn(2, 37, 3), dim=-1)
    with torch.no_grad():
        whole = model.scene_function(points, directions, latent)
        # 2 scenes x 2 heads x tokens logits per point: blocks of 5 points, the last one of 2
        tokens = model.config.latent.num_tokens
        monkeypatch.setattr(scene_function, "ATTENTION_BLOCK_ELEMENTS", 5 * 2 * 2 * tokens)
        blocked = model.scene_function(points, directions, latent)
    for a, b in zip(whole, blocked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
