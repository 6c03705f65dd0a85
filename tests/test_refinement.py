"""Test-time refinement of the posterior, the context ELBO it climbs, and the rays it samples."""

from __future__ import annotations

import pytest
import torch
from test_baselines import tiny_gqn_config
from test_models import ring_cameras, tiny_config

from nerfvae.errors import ConfigError
from nerfvae.geometry import image_rays, random_pixel_rays, sample_ray_indices
from nerfvae.inference import RefinementConfig, infer_posterior, refine_posterior
from nerfvae.models import NeRFVAE
from nerfvae.models.baselines.gqn import GQN
from nerfvae.models.objective import gaussian_log_likelihood


def context_views(scenes=2, views=2, size=8, seed=0):
    """Smooth random images (a colour gradient per view) and ring cameras."""
    generator = torch.Generator().manual_seed(seed)
    K, c2w = ring_cameras(scenes, views, size)
    ramp = torch.linspace(0, 1, size)
    low = torch.rand(scenes, views, 1, 1, 3, generator=generator)
    high = torch.rand(scenes, views, 1, 1, 3, generator=generator)
    images = low + (high - low) * ramp.view(1, 1, size, 1, 1).expand(-1, -1, -1, size, -1)
    return images.contiguous(), K.contiguous(), c2w.contiguous()


def test_random_pixel_rays_are_the_image_rays_and_pixels_they_index():
    images, K, c2w = context_views(scenes=2, views=3, size=6)
    origins, directions, values = random_pixel_rays(
        images, K, c2w, 20, torch.Generator().manual_seed(3)
    )
    view, row, col = sample_ray_indices(2, 3, 6, 6, 20, torch.Generator().manual_seed(3))
    all_origins, all_directions = image_rays(K, c2w, 6, 6)  # [S, V, H, W, 3]
    scene = torch.arange(2).unsqueeze(1)
    torch.testing.assert_close(origins, all_origins[scene, view, row, col])
    torch.testing.assert_close(directions, all_directions[scene, view, row, col])
    torch.testing.assert_close(values, images[scene, view, row, col])
    assert origins.shape == directions.shape == values.shape == (2, 20, 3)


def test_context_elbo_over_every_pixel_is_the_full_image_elbo():
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config()).eval()
    images, K, c2w = context_views(scenes=2, views=2, size=6)
    posterior = model.infer(images, K, c2w)
    pixels = 2 * 6 * 6  # every pixel once: the sampled mean is the exact mean
    elbo = model.context_elbo(posterior, images, K, c2w, pixels, torch.Generator().manual_seed(5))
    # the same draws by hand: the ray permutation first, then z ~ q
    generator = torch.Generator().manual_seed(5)
    sample_ray_indices(2, 2, 6, 6, pixels, generator)
    latent = posterior.rsample(generator)
    with torch.no_grad():
        colour = model.render_views(latent, K, c2w, 6, 6)["colour"]
    log_likelihood = gaussian_log_likelihood(colour, images, model.config.pixel_std)
    expected = log_likelihood.flatten(1).sum(1) - posterior.kl_to_standard_normal()
    torch.testing.assert_close(elbo.detach(), expected, rtol=1e-4, atol=1e-3)


def full_elbo(model, posterior, images, K, c2w):
    """The context ELBO over every pixel, with fixed draws, in eval mode (no ray jitter)."""
    model.eval()
    with torch.no_grad():
        pixels = images[0, :, :, :, 0].numel()
        return model.context_elbo(
            posterior, images, K, c2w, pixels, torch.Generator().manual_seed(11)
        )


def test_refinement_raises_the_context_elbo_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config()).eval()
    images, K, c2w = context_views()
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    config = RefinementConfig(steps=40, rays_per_scene=64, learning_rate=0.05)
    with torch.no_grad():  # callers render under no_grad; refinement must still get gradients
        amortized = model.infer(images, K, c2w)
        refined = refine_posterior(
            model, amortized, images, K, c2w, config, torch.Generator().manual_seed(0)
        )
    before = full_elbo(model, amortized, images, K, c2w)
    after = full_elbo(model, refined, images, K, c2w)
    assert (after > before).all(), (before, after)  # each scene, not just the sum
    assert not model.training  # its mode is restored
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0)
    assert all(parameter.grad is None for parameter in model.parameters())
    assert not refined.mean.requires_grad and refined.mean.shape == amortized.mean.shape
    model.train()
    again = refine_posterior(
        model, amortized, images, K, c2w, config, torch.Generator().manual_seed(0)
    )
    assert model.training
    torch.testing.assert_close(again.mean, refined.mean)  # seeded: the same posterior


def test_refinement_freezes_the_weights_while_it_runs_and_restores_their_flags():
    """Frozen weights keep autograd from saving activations for weight gradients (memory); the
    caller's requires_grad flags, including one it had turned off itself, come back unchanged."""
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config()).eval()
    images, K, c2w = context_views()
    first = next(model.parameters())
    first.requires_grad_(False)
    flags = [parameter.requires_grad for parameter in model.parameters()]
    seen: list[bool] = []
    context_elbo = model.context_elbo

    def recording_elbo(*args, **kwargs):
        seen.append(any(parameter.requires_grad for parameter in model.parameters()))
        return context_elbo(*args, **kwargs)

    model.context_elbo = recording_elbo
    with torch.no_grad():
        amortized = model.infer(images, K, c2w)
    refine_posterior(model, amortized, images, K, c2w, RefinementConfig(steps=3, rays_per_scene=16))
    assert seen == [False, False, False]
    assert [parameter.requires_grad for parameter in model.parameters()] == flags
    assert not first.requires_grad and any(flags)


def test_scenes_are_refined_independently():
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config()).eval()
    images, K, c2w = context_views(scenes=2)
    other = images.clone()
    other[1] = 1 - other[1]  # only scene 1's context changes
    amortized = model.infer(images, K, c2w)
    config = RefinementConfig(steps=3, rays_per_scene=32)
    refined = [
        refine_posterior(model, amortized, x, K, c2w, config, torch.Generator().manual_seed(1))
        for x in (images, other)
    ]
    # scene 0 is untouched by scene 1's pixels: no shared loss scale, no shared Adam statistics
    torch.testing.assert_close(refined[0].mean[0], refined[1].mean[0])
    assert not torch.allclose(refined[0].mean[1], refined[1].mean[1])


def test_zero_steps_is_the_encoder_posterior():
    torch.manual_seed(0)
    model = NeRFVAE(tiny_config()).eval()
    images, K, c2w = context_views()
    amortized = model.infer(images, K, c2w)
    assert refine_posterior(model, amortized, images, K, c2w, RefinementConfig()) is amortized
    for refinement in (None, RefinementConfig(steps=0)):
        inferred = infer_posterior(model, images, K, c2w, refinement)
        torch.testing.assert_close(inferred.mean, amortized.mean)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (RefinementConfig(steps=-1), "steps must be >= 0"),
        (RefinementConfig(steps=2, rays_per_scene=0), "rays_per_scene must be >= 1"),
        (RefinementConfig(steps=2, learning_rate=0.0), "learning_rate must be > 0"),
        (RefinementConfig(steps=2, learning_rate=float("nan")), "learning_rate must be > 0"),
    ],
)
def test_bad_refinement_config_is_rejected(config, message):
    model = NeRFVAE(tiny_config()).eval()
    images, K, c2w = context_views()
    posterior = model.infer(images, K, c2w)
    with pytest.raises(ConfigError, match=message):
        refine_posterior(model, posterior, images, K, c2w, config)


def test_refinement_needs_a_model_that_renders_rays():
    model = GQN(tiny_gqn_config()).eval()
    images, K, c2w = context_views()
    posterior = model.infer(images, K, c2w)
    with pytest.raises(ConfigError, match=r"needs a model that renders rays.*GQN"):
        refine_posterior(model, posterior, images, K, c2w, RefinementConfig(steps=1))


def test_a_non_finite_elbo_stops_refinement_with_a_clear_error():
    model = NeRFVAE(tiny_config()).eval()
    images, K, c2w = context_views()
    posterior = model.infer(images, K, c2w)
    images[0, 0, 0, 0, 0] = float("nan")  # a NaN pixel: every ELBO that draws it is NaN
    every_pixel = RefinementConfig(steps=5, rays_per_scene=2 * 8 * 8)
    with pytest.raises(ConfigError, match="not finite at step 0"):
        refine_posterior(model, posterior, images, K, c2w, every_pixel)
