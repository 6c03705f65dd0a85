"""Render rays through a radiance field given as a callback (coarse pass + optional fine pass).

The field is any callable ``(points [..., N, 3], directions [..., N, 3]) -> (density [..., N],
colour [..., N, 3])``, so NeRF-VAE's latent-conditioned field, a per-scene NeRF or an analytic test
field share this one code path. Leading dims ``[...]`` are typically ``[scenes, rays]``; a field
that conditions on a per-scene latent can rely on dim 0 being the scene.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from nerfvae.errors import ConfigError, check_bounds, check_config_fields, check_range
from nerfvae.rendering.compositing import (
    CompositeResult,
    composite,
    compositing_weights,
    sample_intervals,
)
from nerfvae.rendering.sampling import (
    fine_samples,
    importance_samples,
    sample_pdf,
    stratified_samples,
)

FieldFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(points [..., N, 3], directions [..., N, 3]) -> (density [..., N], colour [..., N, 3])``."""

DensityFn = Callable[[torch.Tensor], torch.Tensor]
"""``points [..., N, 3] -> density [..., N]``: a proposal density (no colour)."""


@dataclass
class RaySamplingConfig:
    """How to place samples along each ray."""

    num_coarse: int = 64
    """Stratified samples per ray for the coarse pass (one per equal-width bin of [near, far]); the
    proposal density's samples with ``sampler proposal``."""
    num_fine: int = 64
    """Samples per ray drawn from the coarse (or proposal) weights; 0 = no fine pass (not allowed
    with ``sampler proposal``, where these are the only field evaluations)."""
    perturb: bool = True
    """Jitter samples randomly during training (stratified jitter and random PDF draws); evaluation
    always uses bin centres and evenly spaced quantiles, so renders are deterministic."""
    opaque_far: bool = False
    """Treat where a ray leaves the sampling range as an opaque surface: the last sample's interval
    reaches to infinity (NeRF's 1e10 last delta), so every ray that crosses the scene box is fully
    absorbed and shows no background. For closed scenes whose walls and floor lie on the box's faces
    (the built-in rooms); leave it off for objects before a transparent background (NeRF-synthetic)."""
    sampler: Literal["hierarchical", "proposal"] = "hierarchical"
    """``hierarchical`` (NeRF): the field runs at ``num_coarse`` stratified samples, then at
    ``num_fine`` more drawn from their weights. ``proposal`` (mip-NeRF 360's proposal sampler): a
    cheap proposal density runs at ``num_coarse`` stratified samples and the field only at the
    ``num_fine`` intervals drawn from the proposal's weights; the proposal is trained to bound the
    field's weights. Needs a scene function with a proposal density (``planes`` conditioning)."""

    def __post_init__(self) -> None:
        self.check("sampling")

    def check(self, where: str = "sampling") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        check_bounds(self, where, {"num_coarse": (1, 4096), "num_fine": (0, 4096)})
        check_range(
            self.sampler != "proposal" or self.num_fine >= 1,
            where,
            "num_fine",
            ">= 1 with sampler 'proposal' (the field's samples per ray)",
            self.num_fine,
        )


@dataclass
class RaySamples:
    """The samples of a render's final pass: where the field ran and what it returned there.

    Attributes:
        t: ``[..., N]`` sorted sample distances.
        deltas: ``[..., N]`` lengths of the intervals the samples stand for.
        density: ``[..., N]`` and ``colour``: ``[..., N, 3]`` the field's values at the samples.
        opaque_far: ``[...]`` bool, or one bool: rays whose last interval reaches to infinity.
    """

    t: torch.Tensor
    deltas: torch.Tensor
    density: torch.Tensor
    colour: torch.Tensor
    opaque_far: torch.Tensor | bool


@dataclass
class RenderOutput:
    """Both passes of :func:`render_rays`.

    Attributes:
        coarse: composite of the coarse (stratified) samples; ``None`` with the proposal sampler,
            whose coarse samples have a density but no colour.
        fine: composite of coarse + fine samples through the fine field (with the proposal
            sampler: of the field's samples), or ``None`` when ``num_fine == 0``.
    """

    coarse: CompositeResult | None
    fine: CompositeResult | None
    proposal_loss: torch.Tensor | None = None
    """``[...]`` per ray, with ``sampler proposal`` while gradients are on: how far the proposal's
    weights fall short of bounding the field's (mip-NeRF 360's interlevel loss; it trains only the
    proposal density). ``None`` otherwise."""
    samples: RaySamples | None = None
    """The final pass's samples and the field's values there (what :attr:`final` composites)."""

    @property
    def final(self) -> CompositeResult:
        """The best estimate: the fine pass if there is one, else the coarse pass."""
        return self.fine if self.fine is not None else self.coarse


def _query(
    field: FieldFn, origins: torch.Tensor, directions: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``field`` at ``origins + t * directions``: density ``[..., N]``, colour ``[..., N, 3]``."""
    points = origins.unsqueeze(-2) + t.unsqueeze(-1) * directions.unsqueeze(-2)
    point_directions = directions.unsqueeze(-2).expand_as(points)
    density, colour = field(points, point_directions)
    if density.shape != t.shape or colour.shape != points.shape:
        raise ValueError(
            f"field returned density {tuple(density.shape)} and colour {tuple(colour.shape)}; "
            f"expected {tuple(t.shape)} and {tuple(points.shape)} for points {tuple(points.shape)}"
        )
    return density, colour


def _merge_sorted(
    t_a: torch.Tensor,
    values_a: tuple[torch.Tensor, ...],
    t_b: torch.Tensor,
    values_b: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Merge samples ``t_a [..., N_a]`` and ``t_b [..., N_b]``, each with per-sample values
    (``[..., N, *]``, e.g. density and colour), into ``t [..., N_a + N_b]`` sorted along the rays
    and the values in the same order."""
    t = torch.cat([t_a, t_b], dim=-1)
    t, order = torch.sort(t, dim=-1)
    merged = []
    for a, b in zip(values_a, values_b, strict=True):
        both = torch.cat([a, b], dim=t.dim() - 1)
        index = order.view(*order.shape, *([1] * (both.dim() - order.dim())))
        merged.append(torch.gather(both, t.dim() - 1, index.expand_as(both)))
    return t, tuple(merged)


def render_rays(
    coarse_field: FieldFn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    near: torch.Tensor | float,
    far: torch.Tensor | float,
    config: RaySamplingConfig,
    *,
    fine_field: FieldFn | None = None,
    proposal_density: DensityFn | None = None,
    background: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    training: bool = True,
) -> RenderOutput:
    """Volume-render rays: stratified coarse pass, then (optionally) a hierarchical fine pass.

    Args:
        coarse_field: field for the coarse pass.
        origins: ``[..., 3]`` ray origins.
        directions: ``[..., 3]`` unit ray directions (so ``t`` and depth are metric).
        near, far: ``[...]`` (or broadcastable, e.g. floats) sampling range per ray.
        config: sample counts and jitter.
        fine_field: field for the fine pass; defaults to ``coarse_field``, whose values at the
            coarse samples are then reused (the fine pass queries only the ``num_fine`` new ones).
        proposal_density: the cheap density that places the field's samples with
            ``config.sampler == "proposal"`` (see :func:`render_with_proposal`).
        background: ``[3]`` or ``[..., 3]`` background colour; ``None`` = black.
        generator: random source for jitter and fine draws (same device as the rays).
        training: jitter only when ``training and config.perturb``; otherwise sampling is
            deterministic.

    Returns:
        :class:`RenderOutput`; the fine pass samples from the *detached* coarse weights, so the
        coarse field learns only from its own composite (supervise both, as NeRF does).
    """
    leading = origins.shape[:-1]
    near = torch.as_tensor(near, dtype=origins.dtype, device=origins.device).expand(leading)
    far = torch.as_tensor(far, dtype=origins.dtype, device=origins.device).expand(leading)
    perturb = training and config.perturb
    # A ray that misses the box (zero length) has no surface to end on: it keeps the background.
    opaque_far = (far > near) if config.opaque_far else False
    if config.sampler == "proposal":
        if proposal_density is None:
            raise ConfigError(
                "sampling.sampler 'proposal' needs a scene function with a proposal density "
                "(scene_function.conditioning planes)"
            )
        return render_with_proposal(
            coarse_field,
            proposal_density,
            origins,
            directions,
            near,
            far,
            config,
            background=background,
            opaque_far=opaque_far,
            perturb=perturb,
            generator=generator,
        )

    t_coarse = stratified_samples(
        near, far, config.num_coarse, perturb=perturb, generator=generator
    )
    coarse_density, coarse_colour = _query(coarse_field, origins, directions, t_coarse)
    coarse = composite(
        coarse_density, coarse_colour, t_coarse, far, background, opaque_far=opaque_far
    )
    if config.num_fine == 0:
        samples = RaySamples(
            t_coarse, sample_intervals(t_coarse, far), coarse_density, coarse_colour, opaque_far
        )
        return RenderOutput(coarse=coarse, fine=None, samples=samples)

    fine_options = {"deterministic": not perturb, "generator": generator}
    if fine_field is None or fine_field is coarse_field:
        # One field for both passes: its values at the coarse samples are already known, so only
        # the new samples are queried (num_fine instead of num_coarse + num_fine evaluations).
        t_fine = fine_samples(
            t_coarse.detach(), coarse.weights.detach(), near, far, config.num_fine, **fine_options
        )
        density, colour = _query(coarse_field, origins, directions, t_fine)
        t_coarse = t_coarse.expand(*t_fine.shape[:-1], t_coarse.shape[-1])
        t_all, (density, colour) = _merge_sorted(
            t_coarse, (coarse_density, coarse_colour), t_fine, (density, colour)
        )
    else:
        t_all = importance_samples(
            t_coarse.detach(),
            coarse.weights.detach(),
            near,
            far,
            config.num_fine,
            **fine_options,
        )
        density, colour = _query(fine_field, origins, directions, t_all)
    deltas = sample_intervals(t_all, far)
    fine = composite(density, colour, t_all, far, background, opaque_far=opaque_far, deltas=deltas)
    samples = RaySamples(t_all, deltas, density, colour, opaque_far)
    return RenderOutput(coarse=coarse, fine=fine, samples=samples)


def render_with_proposal(
    field: FieldFn,
    proposal_density: DensityFn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    config: RaySamplingConfig,
    *,
    background: torch.Tensor | None,
    opaque_far: torch.Tensor | bool,
    perturb: bool,
    generator: torch.Generator | None,
) -> RenderOutput:
    """Proposal sampling (mip-NeRF 360): the field runs only where a cheap density puts mass.

    1. ``proposal_density`` at ``num_coarse`` stratified samples ``s_j`` (each standing for
       ``[s_j, s_{j+1})``, the last for ``[s_{M-1}, far)``) gives compositing weights ``p_j``.
    2. ``num_fine + 1`` interval edges are drawn from the histogram ``p`` (dilated by one bin on
       each side, so a proposal that is slightly off still puts samples on the surface); the field
       is queried at the midpoints of the ``num_fine`` intervals between them and composited with
       those intervals' lengths.
    3. With gradients on, ``proposal_loss [...]`` is the interlevel loss
       ``sum_i max(0, w_i - bound_i)² / w_i``, ``bound_i`` the proposal weight on the proposal
       intervals that overlap field interval ``i``: it pushes ``p`` to bound the field's weights
       ``w`` (detached), so it trains the proposal and never the field.

    Shapes: ``origins, directions [..., 3]``, ``near, far [...]``; returns a
    :class:`RenderOutput` with ``coarse=None`` and the field's composite as ``fine``.
    """
    t_proposal = stratified_samples(
        near, far, config.num_coarse, perturb=perturb, generator=generator
    )  # [..., M]
    points = origins.unsqueeze(-2) + t_proposal.unsqueeze(-1) * directions.unsqueeze(-2)
    density = proposal_density(points)
    if density.shape != t_proposal.shape:
        raise ValueError(
            f"proposal density returned {tuple(density.shape)}; expected {tuple(t_proposal.shape)}"
        )
    proposal_weights = compositing_weights(
        density.float(), sample_intervals(t_proposal, far), opaque_far
    )  # [..., M]
    proposal_edges = torch.cat([t_proposal, far.unsqueeze(-1)], dim=-1)  # [..., M + 1]
    dilated = F.max_pool1d(
        proposal_weights.detach().reshape(-1, 1, config.num_coarse), 3, stride=1, padding=1
    ).reshape(proposal_weights.shape)
    edges = sample_pdf(
        proposal_edges,
        dilated,
        config.num_fine + 1,
        deterministic=not perturb,
        generator=generator,
    )  # [..., N + 1], detached
    midpoints = 0.5 * (edges[..., 1:] + edges[..., :-1])
    deltas = edges[..., 1:] - edges[..., :-1]
    field_density, colour = _query(field, origins, directions, midpoints)
    final = composite(
        field_density,
        colour,
        midpoints,
        far,
        background,
        opaque_far=opaque_far,
        deltas=deltas,
    )
    loss = None
    if torch.is_grad_enabled():
        loss = interlevel_loss(edges, final.weights.detach(), proposal_edges, proposal_weights)
    samples = RaySamples(midpoints, deltas, field_density, colour, opaque_far)
    return RenderOutput(coarse=None, fine=final, proposal_loss=loss, samples=samples)


def interlevel_loss(
    edges: torch.Tensor,
    weights: torch.Tensor,
    proposal_edges: torch.Tensor,
    proposal_weights: torch.Tensor,
) -> torch.Tensor:
    """mip-NeRF 360's interlevel loss per ray ``[...]``.

    Args:
        edges: ``[..., N + 1]`` sorted edges of the field's intervals.
        weights: ``[..., N]`` the field's weights on them (pass them detached).
        proposal_edges: ``[..., M + 1]`` sorted edges of the proposal's intervals.
        proposal_weights: ``[..., M]`` the proposal's weights (the gradient flows to these).

    Returns:
        ``sum_i max(0, w_i - bound_i)² / (w_i + eps)``, ``bound_i`` the summed proposal weight of
        the proposal intervals that overlap ``[edges_i, edges_{i+1}]``: zero exactly when the
        proposal's histogram bounds the field's everywhere.
    """
    intervals = proposal_weights.shape[-1]
    cumulative = torch.cat(
        [torch.zeros_like(proposal_weights[..., :1]), torch.cumsum(proposal_weights, dim=-1)],
        dim=-1,
    )  # [..., M + 1]
    proposal_edges = proposal_edges.detach().contiguous()
    low = torch.searchsorted(proposal_edges, edges[..., :-1].contiguous(), right=True) - 1
    high = torch.searchsorted(proposal_edges, edges[..., 1:].contiguous(), right=False)
    low = low.clamp(0, intervals - 1)
    high = torch.maximum(high.clamp(1, intervals), low + 1)
    bound = torch.gather(cumulative, -1, high) - torch.gather(cumulative, -1, low)
    shortfall = (weights - bound).clamp_min(0.0)
    return (shortfall.square() / (weights + 1e-7)).sum(dim=-1)


RENDERED_KEYS = ("colour", "depth", "opacity")


def scene_chunk(chunk_rays: int, scenes: int) -> int:
    """Rays per scene in a chunk of at most ``chunk_rays`` rays over ``scenes`` scenes (at least
    one): the memory of a chunk is bounded by its total rays, whatever the number of scenes."""
    return max(1, chunk_rays // max(1, scenes))


def render_in_chunks(
    render_fn: Callable[
        [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        dict[str, torch.Tensor] | RenderOutput,
    ],
    origins: torch.Tensor,
    directions: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    chunk_rays: int,
) -> dict[str, torch.Tensor]:
    """Evaluation helper: render many rays in chunks along the ray dim, without gradients.

    Splits along dim 1 (rays), so a batch of scenes stays batched and per-scene conditioning in
    ``render_fn`` keeps working.

    Args:
        render_fn: ``(origins [B, r, 3], directions [B, r, 3], near [B, r], far [B, r])`` ->
            a :class:`RenderOutput` or a dict of tensors shaped ``[B, r, ...]``.
        origins, directions: ``[B, R, 3]``.
        near, far: ``[B, R]``.
        chunk_rays: rays per chunk, over all scenes (:func:`scene_chunk`: a batch of B scenes
            renders ``chunk_rays // B`` rays of each at a time). Bounds memory; on a CPU, chunks
            of a few thousand rays are also the fastest (benchmarks/render_chunks.py).

    Returns:
        ``dict`` with ``"colour" [B, R, 3]``, ``"depth" [B, R]``, ``"opacity" [B, R]`` taken from
        the final pass of a :class:`RenderOutput`; for a dict-returning ``render_fn``, every entry
        it returns, concatenated along dim 1.
    """
    if chunk_rays < 1:
        raise ValueError(f"render_in_chunks: chunk_rays must be >= 1, got {chunk_rays}")
    num_rays, per_scene = origins.shape[1], scene_chunk(chunk_rays, origins.shape[0])
    pieces: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for start in range(0, num_rays, per_scene):
            chunk = slice(start, start + per_scene)
            result = render_fn(
                origins[:, chunk], directions[:, chunk], near[:, chunk], far[:, chunk]
            )
            if isinstance(result, RenderOutput):
                final = result.final
                result = {key: getattr(final, key) for key in RENDERED_KEYS}
            for key, value in result.items():
                pieces.setdefault(key, []).append(value)
    return {key: torch.cat(values, dim=1) for key, values in pieces.items()}
