"""Tests of nerfvae.rendering against analytic answers (slabs, opaque samples, spheres, PDFs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfvae.errors import ConfigError
from nerfvae.rendering import (
    CompositeResult,
    RaySamplingConfig,
    RenderOutput,
    composite,
    importance_samples,
    render_in_chunks,
    render_rays,
    sample_intervals,
    sample_pdf,
    stratified_samples,
)
from nerfvae.rendering.sampling import PDF_EPSILON


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- compositing


@pytest.mark.parametrize("sigma", [0.1, 1.0, 7.5])
@pytest.mark.parametrize("thickness", [0.3, 2.0])
@pytest.mark.parametrize("num_samples", [1, 8, 64])
def test_homogeneous_medium_transmittance_is_exp_minus_sigma_d(sigma, thickness, num_samples):
    # Samples start at near = 0 and the last interval ends at far = d, so the intervals tile
    # [0, d] exactly and the quadrature of a constant density is exact.
    t = torch.arange(num_samples, dtype=torch.float64) * thickness / num_samples
    density = torch.full((num_samples,), sigma, dtype=torch.float64)
    colour = torch.rand(num_samples, 3, generator=_generator(), dtype=torch.float64)
    result = composite(density, colour, t, torch.tensor(thickness, dtype=torch.float64))
    expected_opacity = 1.0 - math.exp(-sigma * thickness)
    assert result.opacity.item() == pytest.approx(expected_opacity, rel=1e-12, abs=1e-14)
    # Transmittance to each sample is exp(-sigma t_i): recover it as 1 - (weights so far).
    transmittance = 1.0 - torch.cumsum(result.weights, 0) + result.weights
    torch.testing.assert_close(transmittance, torch.exp(-sigma * t), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sigma, start, end", [(0.5, 1.0, 2.5), (3.0, 0.25, 0.75), (20.0, 2, 3)])
def test_slab_inside_empty_space(sigma, start, end):
    # The slab [start, end) is aligned with sample positions, so the optical depth is exact.
    t = torch.linspace(0.0, 4.0, 81, dtype=torch.float64)  # spacing 0.05
    density = torch.where((t >= start - 1e-9) & (t < end - 1e-9), sigma, 0.0)
    colour = torch.tensor([0.2, 0.4, 0.8], dtype=torch.float64).expand(81, 3)
    background = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    result = composite(density, colour, t, torch.tensor(4.05, dtype=torch.float64), background)
    opacity = 1.0 - math.exp(-sigma * (end - start))
    assert result.opacity.item() == pytest.approx(opacity, rel=1e-9)
    expected_colour = opacity * colour[0] + (1.0 - opacity) * background
    torch.testing.assert_close(result.colour, expected_colour)


def test_one_opaque_sample_gives_its_colour_and_depth():
    generator = _generator(1)
    t = torch.sort(torch.rand(5, 32, generator=generator) * 4 + 1, dim=-1).values
    colour = torch.rand(5, 32, 3, generator=generator)
    density = torch.zeros(5, 32)
    opaque_index = torch.tensor([0, 3, 17, 30, 31])
    density[torch.arange(5), opaque_index] = 1e10
    background = torch.tensor([0.3, 0.6, 0.9])
    result = composite(density, colour, t, torch.full((5,), 6.0), background)
    torch.testing.assert_close(result.colour, colour[torch.arange(5), opaque_index])
    torch.testing.assert_close(result.depth, t[torch.arange(5), opaque_index])
    torch.testing.assert_close(result.opacity, torch.ones(5))
    assert torch.isfinite(result.weights).all()


def test_empty_space_gives_background_and_zero_opacity():
    t = torch.linspace(0.0, 1.0, 16).expand(4, 16)
    colour = torch.rand(4, 16, 3, generator=_generator())
    background = torch.rand(4, 3, generator=_generator(2))  # per-ray background
    result = composite(torch.zeros(4, 16), colour, t, torch.ones(4), background)
    torch.testing.assert_close(result.colour, background)
    assert torch.equal(result.opacity, torch.zeros(4))
    assert torch.equal(result.depth, torch.zeros(4))
    no_background = composite(torch.zeros(4, 16), colour, t, torch.ones(4))
    assert torch.equal(no_background.colour, torch.zeros(4, 3))


def test_weights_sum_to_opacity_at_most_one():
    generator = _generator(3)
    t = torch.sort(torch.rand(2, 50, 40, generator=generator) * 5, dim=-1).values
    # Log-uniform densities from 1e-4 to 1e4 exercise both transparent and opaque rays.
    density = 10 ** (torch.rand(2, 50, 40, generator=generator) * 8 - 4)
    colour = torch.rand(2, 50, 40, 3, generator=generator)
    result = composite(density, colour, t, torch.full((2, 50), 5.0))
    torch.testing.assert_close(result.weights.sum(-1), result.opacity)
    assert (result.weights >= 0).all()
    assert (result.opacity <= 1.0 + 1e-6).all() and (result.opacity >= 0).all()
    assert result.colour.shape == (2, 50, 3) and result.depth.shape == (2, 50)


@pytest.mark.parametrize("sigma", [0.0, 0.4, 3.0])
def test_opaque_far_gives_the_remaining_light_to_the_last_sample(sigma):
    # A homogeneous medium over [0, 2) with the last interval reaching to infinity: the ray reaches
    # the last sample t_{N-1} with probability exp(-sigma t_{N-1}) and always stops there.
    num_samples, far = 16, 2.0
    t = torch.arange(num_samples, dtype=torch.float64) * far / num_samples
    density = torch.full((num_samples,), sigma, dtype=torch.float64)
    colour = torch.zeros(num_samples, 3, dtype=torch.float64)
    colour[-1] = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    background = torch.ones(3, dtype=torch.float64)
    far_t = torch.tensor(far, dtype=torch.float64)
    result = composite(density, colour, t, far_t, background, opaque_far=True)
    reach_last = math.exp(-sigma * t[-1].item())
    assert result.opacity.item() == pytest.approx(1.0, abs=1e-12)
    assert result.weights[-1].item() == pytest.approx(reach_last, rel=1e-12)
    # The background never shows; the last sample's colour takes what reaches it.
    torch.testing.assert_close(result.colour, reach_last * colour[-1], rtol=1e-12, atol=1e-14)
    # The other weights are those of the ordinary composite.
    ordinary = composite(density, colour, t, far_t, background)
    torch.testing.assert_close(result.weights[:-1], ordinary.weights[:-1], rtol=0, atol=0)


def test_opaque_far_per_ray_mask_and_gradients():
    generator = _generator(4)
    t = torch.sort(torch.rand(3, 8, generator=generator, dtype=torch.float64) * 3, dim=-1).values
    density = torch.rand(3, 8, generator=generator, dtype=torch.float64).requires_grad_()
    colour = torch.rand(3, 8, 3, generator=generator, dtype=torch.float64).requires_grad_()
    far = torch.full((3,), 3.0, dtype=torch.float64)
    mask = torch.tensor([True, False, True])
    result = composite(density, colour, t, far, opaque_far=mask)
    ordinary = composite(density, colour, t, far)
    torch.testing.assert_close(result.opacity[mask], torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(result.colour[1], ordinary.colour[1], rtol=0, atol=0)
    # An infinite last interval makes the last density irrelevant (alpha = 1 for any density).
    result.colour.sum().backward()
    assert torch.equal(density.grad[mask, -1], torch.zeros(2, dtype=torch.float64))
    assert (density.grad[~mask, -1] != 0).all()
    assert torch.autograd.gradcheck(
        lambda d, c: composite(d, c, t, far, opaque_far=mask).colour, (density, colour)
    )


def test_render_rays_opaque_far_fills_rays_through_an_empty_box_with_the_far_colour():
    # An empty box with a "wall" colour that depends on position: every ray that crosses the box
    # ends at far and shows the colour of its last sample; a ray that misses the box (zero length)
    # keeps the background.
    def wall_field(points, directions):
        return torch.zeros(points.shape[:-1]), torch.sigmoid(points)

    origins = torch.zeros(3, 3)
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    near = torch.tensor([0.0, 0.0, 1.0])
    far = torch.tensor([2.0, 3.0, 1.0])
    background = torch.tensor([0.2, 0.3, 0.4])
    config = RaySamplingConfig(16, 8, opaque_far=True)
    for training in (False, True):
        output = render_rays(
            wall_field, origins, directions, near, far, config, background=background,
            training=training, generator=_generator(5),
        )  # fmt: skip
        for result in (output.coarse, output.fine):
            torch.testing.assert_close(result.opacity, torch.tensor([1.0, 1.0, 0.0]))
            torch.testing.assert_close(result.colour[2], background)
            # The last sample lies within one bin of far.
            assert (result.depth[:2] > far[:2] * (1 - 1 / 16) - 1e-6).all()
    plain = render_rays(
        wall_field, origins, directions, near, far, RaySamplingConfig(16, 8),
        background=background, training=False,
    ).final  # fmt: skip
    torch.testing.assert_close(plain.colour, background.expand(3, 3))


def test_sample_intervals():
    t = torch.tensor([[1.0, 1.5, 3.0], [0.0, 2.0, 2.5]])
    far = torch.tensor([4.0, 2.0])  # second ray: last sample beyond far covers nothing
    expected = torch.tensor([[0.5, 1.5, 1.0], [2.0, 0.5, 0.0]])
    torch.testing.assert_close(sample_intervals(t, far), expected)


def test_composite_gradcheck_float64():
    generator = _generator(4)
    density = (torch.rand(2, 3, 6, generator=generator, dtype=torch.float64) * 2).requires_grad_()
    colour = torch.rand(2, 3, 6, 3, generator=generator, dtype=torch.float64).requires_grad_()
    # Well-separated sorted samples so finite differences of t never reorder them.
    t = (torch.arange(6, dtype=torch.float64) * 0.5 + 1.0).expand(2, 3, 6).clone()
    t = (t + 0.1 * torch.rand(2, 3, 6, generator=generator, dtype=torch.float64)).requires_grad_()
    far = torch.full((2, 3), 5.0, dtype=torch.float64)
    background = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)

    def outputs(density, colour, t):
        result = composite(density, colour, t, far, background)
        return result.colour, result.depth, result.opacity, result.weights

    assert torch.autograd.gradcheck(outputs, (density, colour, t))


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("perturb", [False, True])
def test_stratified_samples_sorted_in_range_one_per_bin(perturb):
    generator = _generator(5)
    near = torch.rand(3, 20, generator=generator)
    far = near + 0.1 + torch.rand(3, 20, generator=generator) * 3
    num_samples = 17
    t = stratified_samples(near, far, num_samples, perturb=perturb, generator=generator)
    assert t.shape == (3, 20, num_samples)
    assert (t[..., 1:] >= t[..., :-1]).all()
    assert (t >= near[..., None]).all() and (t <= far[..., None]).all()
    bin_width = (far - near)[..., None] / num_samples
    position_in_bins = (t - near[..., None]) / bin_width
    bin_index = torch.floor(position_in_bins + 1e-4 * (not perturb))
    assert torch.equal(bin_index, torch.arange(num_samples, dtype=t.dtype).expand_as(t))
    if not perturb:
        centres = near[..., None] + (torch.arange(num_samples) + 0.5) * bin_width
        torch.testing.assert_close(t, centres)


def test_stratified_samples_seeded_reproducible():
    near, far = torch.zeros(4), torch.ones(4)
    first = stratified_samples(near, far, 8, perturb=True, generator=_generator(6))
    second = stratified_samples(near, far, 8, perturb=True, generator=_generator(6))
    assert torch.equal(first, second)


# Irregular bins with two zero-weight bins (they keep only the epsilon mass).
_EDGES = [0.0, 0.5, 1.0, 2.0, 2.2, 3.0, 4.0]
_WEIGHTS = [1.0, 0.0, 3.0, 6.0, 0.0, 2.0]


def _analytic_cdf_at_edges() -> np.ndarray:
    weights = np.asarray(_WEIGHTS) + PDF_EPSILON
    return np.concatenate([[0.0], np.cumsum(weights / weights.sum())])


def test_sample_pdf_histogram_matches_weights():
    rays, per_ray = 50, 4000
    total = rays * per_ray
    edges = torch.tensor(_EDGES, dtype=torch.float64).expand(rays, 7)
    weights = torch.tensor(_WEIGHTS, dtype=torch.float64).expand(rays, 6)
    samples = sample_pdf(edges, weights, per_ray, deterministic=False, generator=_generator(7))
    assert samples.shape == (rays, per_ray)
    assert (samples[..., 1:] >= samples[..., :-1]).all()
    samples = samples.flatten().numpy()
    counts = np.histogram(samples, bins=_EDGES)[0]
    probabilities = np.diff(_analytic_cdf_at_edges())
    expected = probabilities * total
    # Empty bins (probability ~1e-6): at most a handful of samples may land there.
    assert counts[1] <= 5 and counts[4] <= 5
    occupied = np.asarray(_WEIGHTS) > 0
    # Chi-square over the 4 occupied bins (3 degrees of freedom): 16.27 is the 99.9% quantile of
    # chi2(3), so a correct sampler fails this with probability 1e-3 for a random seed (and the
    # seed is fixed).
    chi_square = np.sum((counts[occupied] - expected[occupied]) ** 2 / expected[occupied])
    assert chi_square < 16.27, chi_square
    # Within bins the density must be uniform: Kolmogorov-Smirnov distance to the analytic
    # piecewise-linear CDF. 1.949 / sqrt(n) is the 99.9% critical value of the KS statistic.
    sorted_samples = np.sort(samples)
    analytic = np.interp(sorted_samples, _EDGES, _analytic_cdf_at_edges())
    ranks = np.arange(1, total + 1) / total
    ks_distance = max(np.max(ranks - analytic), np.max(analytic - (ranks - 1.0 / total)))
    assert ks_distance < 1.949 / math.sqrt(total), ks_distance


def test_sample_pdf_deterministic_gives_exact_quantiles():
    num_samples = 10
    samples = sample_pdf(
        torch.tensor(_EDGES, dtype=torch.float64),
        torch.tensor(_WEIGHTS, dtype=torch.float64),
        num_samples,
        deterministic=True,
    )
    quantiles = (np.arange(num_samples) + 0.5) / num_samples
    expected = np.interp(quantiles, _analytic_cdf_at_edges(), _EDGES)  # inverse CDF
    np.testing.assert_allclose(samples.numpy(), expected, rtol=0, atol=1e-12)


def test_sample_pdf_is_detached_and_handles_all_zero_weights():
    weights = torch.zeros(3, 5, requires_grad=True)
    edges = torch.linspace(1.0, 2.0, 6).expand(3, 6)
    samples = sample_pdf(edges, weights, 9, deterministic=True)
    assert not samples.requires_grad
    # All-zero weights become a uniform PDF thanks to the epsilon.
    torch.testing.assert_close(samples, (1.0 + (torch.arange(9) + 0.5) / 9).expand(3, 9))


@pytest.mark.parametrize("deterministic", [False, True])
def test_importance_samples_sorted_and_contain_coarse(deterministic):
    generator = _generator(8)
    near = torch.full((2, 10), 1.0)
    far = torch.full((2, 10), 3.0)
    t_coarse = stratified_samples(near, far, 16, perturb=True, generator=generator)
    weights = torch.rand(2, 10, 16, generator=generator)
    t_all = importance_samples(
        t_coarse, weights, near, far, 24, deterministic=deterministic, generator=generator
    )
    assert t_all.shape == (2, 10, 40)
    assert (t_all[..., 1:] >= t_all[..., :-1]).all()
    assert (t_all >= 1.0).all() and (t_all <= 3.0).all()
    contained = (t_all.unsqueeze(-1) == t_coarse.unsqueeze(-2)).any(dim=-2)
    assert contained.all()


def test_importance_samples_concentrate_in_heavy_cell():
    t_coarse = torch.linspace(0.05, 0.95, 10)  # cells [0,0.1), [0.1,0.2), ... with near 0, far 1
    weights = torch.zeros(10)
    weights[6] = 1.0
    t_all = importance_samples(
        t_coarse, weights, torch.tensor(0.0), torch.tensor(1.0), 32, deterministic=True
    )
    fine = t_all[~(t_all.unsqueeze(-1) == t_coarse).any(-1)]
    assert fine.numel() == 32
    assert ((fine >= 0.6 - 1e-6) & (fine <= 0.7 + 1e-6)).all()


# ----------------------------------------------------------------------------- renderer


def _sphere_field(centre: torch.Tensor, radius: torch.Tensor, density_inside: float = 1e3):
    """Opaque constant-density ball; ``centre [..., 3]`` and ``radius [...]`` broadcast per ray."""

    def field(points, directions):
        distance = (points - centre.unsqueeze(-2)).norm(dim=-1)
        density = torch.where(distance < radius.unsqueeze(-1), density_inside, 0.0)
        colour = 0.5 + 0.5 * directions  # view-dependent colour, just to use the argument
        return density, colour

    return field


def _sphere_hit_distance(origins, directions, centre, radius):
    to_centre = centre - origins
    along = (to_centre * directions).sum(-1)
    perpendicular_sq = (to_centre * to_centre).sum(-1) - along**2
    return along - torch.sqrt(radius**2 - perpendicular_sq)


def _rays_towards_sphere(num_rays: int, generator: torch.Generator):
    origins = torch.zeros(num_rays, 3)
    offsets = (torch.rand(num_rays, 2, generator=generator) - 0.5) * 0.3  # all hit the ball
    directions = torch.nn.functional.normalize(
        torch.cat([offsets, torch.ones(num_rays, 1)], dim=-1), dim=-1
    )
    return origins, directions


def test_render_rays_sphere_depth_and_fine_samples_near_surface():
    generator = _generator(9)
    origins, directions = _rays_towards_sphere(32, generator)
    centre, radius = torch.tensor([0.0, 0.0, 3.0]), torch.tensor(1.0)
    near, far = 1.0, 5.0
    config = RaySamplingConfig(num_coarse=64, num_fine=64)
    output = render_rays(
        _sphere_field(centre, radius),
        origins,
        directions,
        torch.full((32,), near),
        torch.full((32,), far),
        config,
        training=False,
    )
    expected_depth = _sphere_hit_distance(origins, directions, centre, radius)
    bin_width = (far - near) / config.num_coarse
    torch.testing.assert_close(output.final.opacity, torch.ones(32))
    coarse_error = (output.coarse.depth - expected_depth).abs()
    fine_error = (output.fine.depth - expected_depth).abs()
    # Coarse: the first sample inside the ball is at most one bin past the surface.
    assert (coarse_error <= bin_width).all()
    # Fine: the coarse weight sits on the first sample inside, t_k in [s, s + h) for surface s, and
    # its cell [t_k - h/2, t_k + h/2) gets 64 fine samples (spacing h/64). If s is in that cell the
    # fine depth is within h/64 of it; otherwise s >= t_k - h, and the error is < h/2 + h/64.
    assert (fine_error <= bin_width / 2 + bin_width / 64 + 1e-5).all(), fine_error.max()
    # Over random surface positions: coarse error ~ U(0, h) (mean h/2), fine error mean ~ h/8.
    assert fine_error.mean() < coarse_error.mean() / 2.5
    assert (fine_error < bin_width / 32).float().mean() > 0.3


def test_render_rays_fine_samples_cluster_at_surface():
    origins, directions = _rays_towards_sphere(8, _generator(10))
    centre, radius = torch.tensor([0.0, 0.0, 3.0]), torch.tensor(1.0)
    seen_t = []

    def recording_field(points, point_directions):
        seen_t.append(((points - origins.unsqueeze(-2)) * point_directions).sum(-1))
        return _sphere_field(centre, radius)(points, point_directions)

    config = RaySamplingConfig(num_coarse=32, num_fine=32)
    render_rays(recording_field, origins, directions, 1.0, 5.0, config, generator=_generator(11))
    # One field for both passes: the fine pass queries only the 32 new samples.
    t_coarse, fine = seen_t
    assert t_coarse.shape == fine.shape == (8, 32)
    assert not torch.isin(fine, t_coarse).any()
    surface = _sphere_hit_distance(origins, directions, centre, radius)
    bin_width = 4.0 / 32
    near_surface = (fine - surface.unsqueeze(-1)).abs() <= 1.5 * bin_width
    assert near_surface.float().mean() > 0.99


@pytest.mark.parametrize("training", [False, True])
def test_fine_pass_reusing_coarse_values_equals_querying_all_samples(training):
    origins, directions = _rays_towards_sphere(6, _generator(12))
    field = _sphere_field(torch.tensor([0.0, 0.0, 3.0]), torch.tensor(1.0))
    calls = []

    def counting_field(points, point_directions):
        calls.append(points.shape[-2])
        return field(points, point_directions)

    config = RaySamplingConfig(num_coarse=16, num_fine=24)

    def render(**fine):
        return render_rays(
            counting_field,
            origins,
            directions,
            1.0,
            5.0,
            config,
            generator=_generator(13),
            training=training,
            **fine,
        )

    reused = render()
    assert calls == [16, 24]
    # the same function given as a separate fine field is queried at all 40 merged samples
    requeried = render(fine_field=lambda p, d: counting_field(p, d))
    assert calls[2:] == [16, 40]
    for name in ("colour", "depth", "opacity", "weights"):
        torch.testing.assert_close(
            getattr(reused.fine, name), getattr(requeried.fine, name), rtol=1e-6, atol=1e-6
        )


def test_render_rays_slab_opacity():
    sigma, slab_start, slab_end = 2.0, 1.3, 2.1

    def slab_field(points, directions):
        z = points[..., 2]
        density = torch.where((z >= slab_start) & (z < slab_end), sigma, 0.0)
        return density, torch.ones_like(points)

    rays = 6
    origins = torch.zeros(rays, 3)
    directions = torch.tensor([0.0, 0.0, 1.0]).expand(rays, 3)
    config = RaySamplingConfig(num_coarse=128, num_fine=0)
    output = render_rays(slab_field, origins, directions, 0.0, 3.0, config, training=False)
    assert output.fine is None and output.final is output.coarse
    # Samples quantise the slab's boundaries to the sample grid: the optical depth is off by at
    # most one bin width times sigma.
    bin_width = 3.0 / 128
    low = 1 - math.exp(-sigma * (slab_end - slab_start - bin_width))
    high = 1 - math.exp(-sigma * (slab_end - slab_start + bin_width))
    assert ((output.final.opacity >= low) & (output.final.opacity <= high)).all()


def test_render_rays_batched_equals_per_scene():
    scenes, rays = 3, 12
    generator = _generator(12)
    origins = torch.rand(scenes, rays, 3, generator=generator) * 0.2
    directions = torch.nn.functional.normalize(
        torch.tensor([0.0, 0.0, 1.0]) + 0.2 * torch.randn(scenes, rays, 3, generator=generator),
        dim=-1,
    )
    near = torch.full((scenes, rays), 0.5)
    far = torch.full((scenes, rays), 6.0)
    centres = torch.tensor([[0.0, 0.0, 2.0], [0.1, 0.0, 3.0], [0.0, -0.1, 4.0]])
    radii = torch.tensor([0.5, 1.0, 1.5])
    config = RaySamplingConfig(num_coarse=16, num_fine=8)

    def per_scene_field(centre, radius):
        # Points arrive as [scenes, rays, samples, 3]; the scene's parameters broadcast over rays.
        return _sphere_field(centre.unsqueeze(-2), radius.unsqueeze(-1), density_inside=5.0)

    batched = render_rays(
        per_scene_field(centres, radii), origins, directions, near, far, config, training=False
    )
    assert batched.fine.weights.shape == (scenes, rays, 24)
    assert batched.coarse.weights.shape == (scenes, rays, 16)
    assert batched.final.colour.shape == (scenes, rays, 3)
    for scene in range(scenes):
        single = render_rays(
            per_scene_field(centres[scene : scene + 1], radii[scene : scene + 1]),
            origins[scene : scene + 1],
            directions[scene : scene + 1],
            near[scene : scene + 1],
            far[scene : scene + 1],
            config,
            training=False,
        )
        for name in ("colour", "depth", "opacity", "weights"):
            torch.testing.assert_close(
                getattr(batched.final, name)[scene], getattr(single.final, name)[0]
            )


def test_render_rays_gradients_reach_fields_but_not_through_sampling():
    torch.manual_seed(0)
    coarse_net = torch.nn.Linear(3, 4)
    fine_net = torch.nn.Linear(3, 4)

    def as_field(net):
        def field(points, directions):
            out = net(points)
            return torch.nn.functional.softplus(out[..., 0]), torch.sigmoid(out[..., 1:])

        return field

    origins, directions = _rays_towards_sphere(5, _generator(13))
    config = RaySamplingConfig(num_coarse=8, num_fine=8)
    output = render_rays(
        as_field(coarse_net),
        origins,
        directions,
        0.5,
        3.0,
        config,
        fine_field=as_field(fine_net),
        generator=_generator(14),
    )
    output.fine.colour.sum().backward()
    # The fine samples depend on the coarse weights only through a detached PDF.
    assert coarse_net.weight.grad is None
    assert fine_net.weight.grad is not None and fine_net.weight.grad.abs().sum() > 0


def test_render_rays_seeded_and_eval_deterministic():
    origins, directions = _rays_towards_sphere(6, _generator(15))
    field = _sphere_field(torch.tensor([0.0, 0.0, 3.0]), torch.tensor(1.0), density_inside=3.0)
    config = RaySamplingConfig(num_coarse=8, num_fine=8)
    first = render_rays(field, origins, directions, 1.0, 5.0, config, generator=_generator(16))
    again = render_rays(field, origins, directions, 1.0, 5.0, config, generator=_generator(16))
    other = render_rays(field, origins, directions, 1.0, 5.0, config, generator=_generator(17))
    assert torch.equal(first.final.colour, again.final.colour)
    assert not torch.equal(first.final.depth, other.final.depth)
    eval_a = render_rays(
        field, origins, directions, 1.0, 5.0, config, training=False, generator=_generator(16)
    )
    eval_b = render_rays(
        field, origins, directions, 1.0, 5.0, config, training=False, generator=_generator(17)
    )
    assert torch.equal(eval_a.final.depth, eval_b.final.depth)


def test_render_rays_empty_and_degenerate_rays_are_finite():
    def empty_field(points, directions):
        return torch.zeros(points.shape[:-1]), torch.ones_like(points)

    origins = torch.zeros(4, 3)
    directions = torch.tensor([1.0, 0.0, 0.0]).expand(4, 3)
    near = torch.tensor([0.0, 1.0, 2.0, 2.0])
    far = torch.tensor([1.0, 1.0, 3.0, 2.0])  # rays 1 and 3 have zero length (missed the box)
    background = torch.tensor([0.2, 0.3, 0.4])
    output = render_rays(
        empty_field,
        origins,
        directions,
        near,
        far,
        RaySamplingConfig(8, 8),
        background=background,
        generator=_generator(18),
    )
    for result in (output.coarse, output.fine):
        assert all(
            torch.isfinite(getattr(result, name)).all()
            for name in ("colour", "depth", "opacity", "weights")
        )
        torch.testing.assert_close(result.colour, background.expand(4, 3))


def test_render_rays_rejects_wrong_field_shapes():
    def bad_field(points, directions):
        return torch.zeros((*points.shape[:-1], 1)), torch.ones_like(points)

    with pytest.raises(ValueError, match="field returned density"):
        render_rays(
            bad_field,
            torch.zeros(2, 3),
            torch.tensor([0.0, 0, 1]).expand(2, 3),
            0.0,
            1.0,
            RaySamplingConfig(4, 0),
        )


def test_ray_sampling_config_validation():
    with pytest.raises(ConfigError):
        RaySamplingConfig(num_coarse=0)
    with pytest.raises(ConfigError):
        RaySamplingConfig(num_fine=-1)


def test_render_in_chunks_matches_full_render():
    scenes, rays = 2, 23
    generator = _generator(19)
    origins = torch.zeros(scenes, rays, 3)
    directions = torch.nn.functional.normalize(
        torch.tensor([0.0, 0.0, 1.0]) + 0.2 * torch.randn(scenes, rays, 3, generator=generator),
        dim=-1,
    )
    near, far = torch.full((scenes, rays), 1.0), torch.full((scenes, rays), 5.0)
    field = _sphere_field(torch.tensor([0.0, 0.0, 3.0]), torch.tensor(1.0), density_inside=4.0)
    config = RaySamplingConfig(num_coarse=16, num_fine=16)

    def render_fn(o, d, n, f) -> RenderOutput:
        return render_rays(field, o, d, n, f, config, training=False)

    chunked = render_in_chunks(render_fn, origins, directions, near, far, chunk_rays=5)
    full = render_fn(origins, directions, near, far).final
    assert isinstance(full, CompositeResult)
    assert set(chunked) == {"colour", "depth", "opacity"}
    assert chunked["colour"].shape == (scenes, rays, 3)
    for name in ("colour", "depth", "opacity"):
        torch.testing.assert_close(chunked[name], getattr(full, name))

    def dict_fn(o, d, n, f) -> dict[str, torch.Tensor]:
        result = render_fn(o, d, n, f).final
        return {"colour": result.colour, "normalised_depth": result.depth / result.opacity}

    from_dict = render_in_chunks(dict_fn, origins, directions, near, far, chunk_rays=7)
    assert set(from_dict) == {"colour", "normalised_depth"}

    # chunk_rays bounds the rays of a call over all scenes: 2 scenes x 3 rays per call
    calls = []

    def counting_fn(o, d, n, f) -> RenderOutput:
        calls.append(o.shape[:2])
        return render_fn(o, d, n, f)

    again = render_in_chunks(counting_fn, origins, directions, near, far, chunk_rays=7)
    assert calls[0] == (scenes, 3) and all(s * r <= 7 for s, r in calls)
    assert sum(r for _, r in calls) == rays
    torch.testing.assert_close(again["colour"], full.colour)
    assert render_in_chunks(counting_fn, origins, directions, near, far, 1)["colour"].shape == (
        scenes,
        rays,
        3,
    )  # fewer rays than scenes: one ray of each scene at a time
    torch.testing.assert_close(from_dict["colour"], full.colour)
    assert not from_dict["colour"].requires_grad


def test_composite_promotes_low_precision_field_outputs_to_sample_dtype():
    # Under bf16 autocast a field may return bf16; compositing must still run in fp32 (t's dtype).
    t = torch.linspace(0.0, 1.0, 32).expand(3, 32)
    density = torch.full((3, 32), 2.0, dtype=torch.bfloat16)
    colour = torch.full((3, 32, 3), 0.5, dtype=torch.bfloat16)
    result = composite(density, colour, t, torch.full((3,), 1.0 + 1 / 31))
    assert result.colour.dtype == result.opacity.dtype == result.weights.dtype == torch.float32
    expected_opacity = torch.full((3,), 1.0 - math.exp(-2.0 * (1.0 + 1 / 31)))
    torch.testing.assert_close(result.opacity, expected_opacity)


# ----------------------------------------------------------------------------- density grid

BOX_MIN = torch.tensor([-3.0, -3.0, 0.0])
BOX_MAX = torch.tensor([3.0, 3.0, 2.5])


def test_grid_shape_keeps_one_spacing_on_every_side():
    from nerfvae.rendering import grid_shape

    assert grid_shape(BOX_MIN, BOX_MAX, 64) == (64, 64, 27)  # 2.5 m at 6/63 m: 26.25 cells
    assert grid_shape(torch.zeros(3), torch.tensor([1.0, 0.001, 2.0]), 5) == (3, 2, 5)


def test_density_grid_reproduces_a_linear_density_at_any_point():
    # trilinear interpolation is exact for a density linear in x, y and z; different slopes per
    # axis catch any mix-up of the grid's axis order
    from nerfvae.rendering import bake_density_grid

    slopes = torch.tensor([[0.5, -1.25, 3.0], [2.0, 0.25, -0.75]])  # per scene

    def field(points, directions):
        density = 10.0 + (points * slopes.view(2, 1, 1, 3)).sum(-1)
        return density, torch.zeros_like(points)

    grid = bake_density_grid(field, BOX_MIN, BOX_MAX, scenes=2, resolution=9, chunk_points=100)
    points = BOX_MIN + torch.rand(2, 50, 7, 3, generator=_generator()) * (BOX_MAX - BOX_MIN)
    expected = 10.0 + (points * slopes.view(2, 1, 1, 3)).sum(-1)
    assert grid(points).shape == (2, 50, 7)
    assert torch.allclose(grid(points), expected, atol=1e-4)


def _sphere_scene(calls: list[int]):
    """An opaque sphere (radius 0.6 at (0.5, -0.4, 1.1)) whose colour depends on the direction
    it is seen along, in an empty box; ``calls`` collects the points per field query."""
    centre = torch.tensor([0.5, -0.4, 1.1])

    def field(points, directions):
        calls.append(points[..., 0].numel())
        inside = (points - centre).norm(dim=-1) < 0.6
        density = torch.where(inside, 40.0, 0.0)
        colour = 0.5 + 0.45 * directions * torch.tensor([1.0, -1.0, 0.5])
        return density, colour.expand_as(points)

    return field


def test_density_grid_places_a_few_field_samples_on_the_surface():
    from nerfvae.geometry import look_at
    from nerfvae.rendering import DensityGridConfig, bake_density_grid
    from nerfvae.rendering.renderer import RaySamplingConfig as Sampling

    calls: list[int] = []
    field = _sphere_scene(calls)
    eye = torch.tensor([2.5, 2.0, 2.0])
    c2w = look_at(eye[None], torch.tensor([0.5, -0.4, 1.1]))[0]
    # rays through a 16 x 16 pixel grid around the sphere
    u, v = torch.meshgrid(
        torch.linspace(-0.3, 0.3, 16), torch.linspace(-0.3, 0.3, 16), indexing="ij"
    )
    camera_dirs = torch.stack([u, v, torch.ones_like(u)], -1).reshape(1, -1, 3)
    directions = torch.nn.functional.normalize(camera_dirs @ c2w[:3, :3].T, dim=-1)
    origins = eye.expand_as(directions)
    near, far = torch.full(directions.shape[:-1], 0.5), torch.full(directions.shape[:-1], 6.0)
    dense = render_rays(field, origins, directions, near, far,
                        Sampling(num_coarse=4096, num_fine=0), training=False).final  # fmt: skip
    assert 0.2 < dense.opacity.mean() < 0.9  # some rays hit the sphere, some miss

    grid = bake_density_grid(field, BOX_MIN, BOX_MAX, scenes=1, resolution=64)
    config = DensityGridConfig(resolution=64, field_samples=6)
    calls.clear()
    placed = render_rays(field, origins, directions, near, far, config.sampling(Sampling()),
                         proposal_density=grid, training=False).final  # fmt: skip
    assert sum(calls) == origins.shape[1] * 6  # the field ran at 6 samples per ray, no more
    # the picture of 4096 samples per ray: colour (seen along the true directions) and depth,
    # except on a few silhouette rays whose chord through the hard-edged sphere is shorter than
    # a grid cell (2 of 256 here)
    error = (placed.colour - dense.colour).abs().amax(-1)
    assert error.mean() < 0.01 and (error > 0.05).sum() <= 3
    hit = (dense.opacity > 0.99) & (error < 0.05)
    depth_error = (placed.depth - dense.depth).abs()[hit]
    assert depth_error.mean() < 0.04 and depth_error.max() < 0.25  # 6 samples: a cm, not a cell
    # 6 evenly spaced samples miss the sphere: the grid is what places them
    even = render_rays(field, origins, directions, near, far,
                       Sampling(num_coarse=6, num_fine=0), training=False).final  # fmt: skip
    assert (even.colour - dense.colour).abs().amax(-1).mean() > 0.05


def test_density_grid_config_rejects_nonsense():
    from nerfvae.rendering import DensityGridConfig

    assert not DensityGridConfig(resolution=0).enabled
    for bad in ({"resolution": 1}, {"resolution": -4}, {"field_samples": 0}, {"grid_samples": 1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            DensityGridConfig(**bad)
