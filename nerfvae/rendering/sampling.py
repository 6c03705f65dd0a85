"""Where to put samples along rays: stratified (coarse) and PDF-driven importance (fine) sampling.

Every function is batched over arbitrary leading dimensions ``[...]`` (typically
``[scenes, rays]``); the last dimension indexes samples along one ray. Distances ``t`` are measured
along unit ray directions, so they are metric. A ``generator`` must live on the same device as the
tensors.
"""

from __future__ import annotations

import torch

#: Added to every bin weight before normalising, so that rays whose coarse weights are all ~0 (empty
#: space) still get a valid PDF (uniform over the ray) and no bin ever has zero probability.
PDF_EPSILON = 1e-5


def stratified_samples(
    near: torch.Tensor,
    far: torch.Tensor,
    num_samples: int,
    *,
    perturb: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One sample per equal-width bin of ``[near, far]`` on every ray.

    Args:
        near, far: ``[...]`` ray start and end distances (broadcastable; ``far >= near``).
        num_samples: number of bins (and samples) per ray.
        perturb: draw each sample uniformly inside its bin; otherwise take the bin centre.
        generator: random source for ``perturb`` (on the same device as ``near``).

    Returns:
        ``t [..., num_samples]``, sorted along the last dimension; sample ``i`` lies in
        ``[near + i*h, near + (i+1)*h)`` with ``h = (far - near) / num_samples``.
    """
    if num_samples < 1:
        raise ValueError(f"stratified_samples: num_samples must be >= 1, got {num_samples}")
    near, far = torch.broadcast_tensors(near, far)
    bin_index = torch.arange(num_samples, dtype=near.dtype, device=near.device)
    if perturb:
        offset = torch.rand(
            (*near.shape, num_samples), generator=generator, dtype=near.dtype, device=near.device
        )
    else:
        offset = torch.full((), 0.5, dtype=near.dtype, device=near.device)
    fraction = (bin_index + offset) / num_samples  # [..., num_samples] in [0, 1)
    return near.unsqueeze(-1) + (far - near).unsqueeze(-1) * fraction


def sample_pdf(
    bin_edges: torch.Tensor,
    weights: torch.Tensor,
    num_samples: int,
    *,
    deterministic: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverse-transform sampling of a piecewise-constant PDF along each ray.

    Bin ``k`` spans ``[bin_edges[k], bin_edges[k+1]]`` and has probability proportional to
    ``weights[k] + PDF_EPSILON`` (the epsilon keeps all-zero rays valid); inside a bin the density
    is uniform, so the inverse CDF is piecewise linear.

    Args:
        bin_edges: ``[..., N+1]`` sorted bin edges.
        weights: ``[..., N]`` non-negative, unnormalised bin weights.
        num_samples: samples to draw per ray.
        deterministic: use the evenly spaced quantiles ``u_j = (j + 0.5) / num_samples`` instead of
            uniform random ``u``.
        generator: random source when not ``deterministic``.

    Returns:
        ``t [..., num_samples]``, sorted, detached from the graph (no gradient flows to ``weights``
        or ``bin_edges``: sample positions are treated as constants, as in NeRF).
    """
    if num_samples < 1:
        raise ValueError(f"sample_pdf: num_samples must be >= 1, got {num_samples}")
    if bin_edges.shape[-1] != weights.shape[-1] + 1:
        raise ValueError(
            "sample_pdf: bin_edges must have one more entry than weights along the last dim, got "
            f"{tuple(bin_edges.shape)} and {tuple(weights.shape)}"
        )
    # Work in the wider of the two dtypes: a bf16 CDF (weights from an autocast field) would put
    # samples on a coarse grid.
    dtype = torch.promote_types(bin_edges.dtype, weights.dtype)
    bin_edges, weights = bin_edges.detach().to(dtype), weights.detach().to(dtype).clamp_min(0.0)
    leading = torch.broadcast_shapes(bin_edges.shape[:-1], weights.shape[:-1])
    num_bins = weights.shape[-1]
    bin_edges = bin_edges.expand(*leading, num_bins + 1)
    weights = weights.expand(*leading, num_bins) + PDF_EPSILON

    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, dim=-1)], dim=-1)
    cdf = cdf.clamp(max=1.0)
    cdf[..., -1] = 1.0  # exact 1 despite rounding, so every u in [0, 1) finds a bin
    cdf = cdf.contiguous()

    if deterministic:
        quantiles = (
            torch.arange(num_samples, dtype=cdf.dtype, device=cdf.device) + 0.5
        ) / num_samples
        u = quantiles.expand(*leading, num_samples).contiguous()
    else:
        u = torch.rand(
            (*leading, num_samples), generator=generator, dtype=cdf.dtype, device=cdf.device
        )
        # Sorting u makes the output sorted (the inverse CDF is monotone); cheap and convenient.
        u = torch.sort(u, dim=-1).values

    # Bin k with cdf[k] <= u < cdf[k+1]; clamped so u at the boundaries still maps to a real bin.
    bin_index = torch.searchsorted(cdf, u, right=True) - 1
    bin_index = bin_index.clamp(0, num_bins - 1)
    cdf_low = torch.gather(cdf, -1, bin_index)
    cdf_high = torch.gather(cdf, -1, bin_index + 1)
    edge_low = torch.gather(bin_edges, -1, bin_index)
    edge_high = torch.gather(bin_edges, -1, bin_index + 1)
    mass = cdf_high - cdf_low
    # A bin whose mass rounded to zero in float32 is never chosen except at its exact boundary;
    # guard the division so that case yields the bin's start instead of NaN.
    safe_mass = torch.where(mass > 0, mass, torch.ones_like(mass))
    fraction = torch.where(mass > 0, (u - cdf_low) / safe_mass, torch.zeros_like(mass))
    fraction = fraction.clamp(0.0, 1.0)
    return edge_low + fraction * (edge_high - edge_low)


def importance_samples(
    t_coarse: torch.Tensor,
    weights: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    num_fine: int,
    *,
    deterministic: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hierarchical sampling: draw ``num_fine`` samples where the coarse pass found mass.

    Each coarse sample ``i`` stands for the cell between the midpoints to its neighbours (the
    first cell starts at ``near``, the last ends at ``far``; midpoints are clamped to
    ``[near, far]``), and that cell gets probability proportional to the coarse weight
    ``weights[i]``.

    Args:
        t_coarse: ``[..., N]`` sorted coarse sample distances.
        weights: ``[..., N]`` coarse compositing weights (detached here; pass them as they are).
        near, far: ``[...]`` ray bounds.
        num_fine: extra samples to draw per ray.
        deterministic: evenly spaced quantiles instead of random draws (see :func:`sample_pdf`).
        generator: random source when not ``deterministic``.

    Returns:
        ``t [..., N + num_fine]``: the coarse and fine samples merged and sorted.
    """
    if num_fine < 0:
        raise ValueError(f"importance_samples: num_fine must be >= 0, got {num_fine}")
    if num_fine == 0:
        return t_coarse
    t_fine = fine_samples(
        t_coarse, weights, near, far, num_fine, deterministic=deterministic, generator=generator
    )
    t_coarse = t_coarse.expand(*t_fine.shape[:-1], t_coarse.shape[-1])
    return torch.sort(torch.cat([t_coarse, t_fine], dim=-1), dim=-1).values


def fine_samples(
    t_coarse: torch.Tensor,
    weights: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    num_fine: int,
    *,
    deterministic: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Only the new samples of :func:`importance_samples` (same arguments): ``t_fine [...,
    num_fine]``, sorted, not merged with ``t_coarse``. For a renderer that keeps the coarse
    samples' field values and queries only these."""
    near = torch.as_tensor(near, dtype=t_coarse.dtype, device=t_coarse.device).unsqueeze(-1)
    far = torch.as_tensor(far, dtype=t_coarse.dtype, device=t_coarse.device).unsqueeze(-1)
    leading = torch.broadcast_shapes(t_coarse.shape[:-1], near.shape[:-1], far.shape[:-1])
    t_coarse = t_coarse.expand(*leading, t_coarse.shape[-1])
    midpoints = 0.5 * (t_coarse[..., 1:] + t_coarse[..., :-1])
    midpoints = torch.minimum(torch.maximum(midpoints, near), far)
    bin_edges = torch.cat(
        [near.expand(*leading, 1), midpoints, far.expand(*leading, 1)], dim=-1
    ).detach()
    return sample_pdf(
        bin_edges, weights, num_fine, deterministic=deterministic, generator=generator
    )
