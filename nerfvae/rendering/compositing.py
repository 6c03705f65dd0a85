"""Emission-absorption volume rendering (the NeRF quadrature), batched over ``[...]``.

Sample ``i`` at distance ``t_i`` stands for the interval ``[t_i, t_{i+1})`` (the last one for
``[t_{N-1}, far)``) with constant density ``sigma_i`` and colour ``c_i``. Then

* ``alpha_i = 1 - exp(-sigma_i * delta_i)`` is the probability the ray stops in that interval,
* ``T_i = exp(-sum_{j<i} sigma_j * delta_j)`` is the probability it reaches ``t_i`` (computed from
  an exclusive cumulative sum of optical depth, which stays accurate and differentiable where a
  cumulative product of ``1 - alpha`` would underflow or divide by zero),
* ``w_i = T_i * alpha_i`` is the probability it stops in interval ``i``; the ``w_i`` sum to the
  opacity ``1 - T_N <= 1``.

A ray that ends on an opaque surface at ``far`` (a closed room whose walls are the scene box's
faces) can be composited with its last interval reaching to infinity: ``alpha_{N-1} = 1``, the
limit of NeRF's ``1e10`` last delta. Its opacity is then exactly 1 and the last sample's colour
takes the light that would otherwise have gone to the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CompositeResult:
    """The result of compositing samples along rays.

    Attributes:
        colour: ``[..., 3]`` composited colour, background included.
        depth: ``[...]`` expected termination distance ``sum_i w_i t_i``. **Not normalised** by the
            opacity: a half-transparent ray has its depth pulled towards 0. Divide by ``opacity``
            (where it is large enough) for the depth of the visible surface.
        opacity: ``[...]`` accumulated opacity ``sum_i w_i`` in ``[0, 1]``.
        weights: ``[..., N]`` per-sample weights ``w_i``.
    """

    colour: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    weights: torch.Tensor


def sample_intervals(t: torch.Tensor, far: torch.Tensor) -> torch.Tensor:
    """Length of the interval each sample stands for.

    Args:
        t: ``[..., N]`` sorted sample distances.
        far: ``[...]`` end of each ray (broadcastable).

    Returns:
        ``delta [..., N]``: ``t_{i+1} - t_i``, and ``far - t_{N-1}`` for the last sample; clamped
        at 0 (a last sample beyond ``far`` covers nothing).
    """
    far = torch.as_tensor(far, dtype=t.dtype, device=t.device)
    last = far.unsqueeze(-1) - t[..., -1:]
    last = last.expand(*torch.broadcast_shapes(last.shape, t[..., -1:].shape))
    gaps = t[..., 1:] - t[..., :-1]
    gaps = gaps.expand(*last.shape[:-1], gaps.shape[-1])
    return torch.cat([gaps, last], dim=-1).clamp_min(0.0)


def compositing_weights(
    density: torch.Tensor, deltas: torch.Tensor, opaque_far: torch.Tensor | bool = False
) -> torch.Tensor:
    """Weights ``w_i = T_i alpha_i`` ``[..., N]`` of samples with ``density [..., N]`` standing for
    intervals of length ``deltas [..., N]``; ``opaque_far`` as in :func:`composite`."""
    optical_depth = density * deltas  # [..., N]
    # alpha = 1 - exp(-x), via expm1 for accuracy when x is tiny.
    alpha = -torch.expm1(-optical_depth)
    if opaque_far is not False:
        opaque = torch.as_tensor(opaque_far, device=alpha.device)
        last = torch.where(opaque, torch.ones_like(alpha[..., -1]), alpha[..., -1])
        alpha = torch.cat([alpha[..., :-1], last.unsqueeze(-1)], dim=-1)
    # Exclusive cumsum: T_0 = 1, T_i = exp(-sum_{j<i} x_j). Built by shifting rather than
    # subtracting x from the inclusive sum, which would lose precision (or give inf - inf) after an
    # opaque sample.
    accumulated = torch.cumsum(optical_depth[..., :-1], dim=-1)
    accumulated = torch.cat([torch.zeros_like(optical_depth[..., :1]), accumulated], dim=-1)
    return torch.exp(-accumulated) * alpha


def composite(
    density: torch.Tensor,
    colour: torch.Tensor,
    t: torch.Tensor,
    far: torch.Tensor,
    background: torch.Tensor | None = None,
    *,
    opaque_far: torch.Tensor | bool = False,
    deltas: torch.Tensor | None = None,
) -> CompositeResult:
    """Composite densities and colours along rays.

    Args:
        density: ``[..., N]`` non-negative, finite volume density (apply softplus/ReLU first).
        colour: ``[..., N, 3]`` emitted colour per sample.
        t: ``[..., N]`` sorted sample distances along unit-direction rays.
        far: ``[...]`` ray end; the last sample covers ``[t_{N-1}, far)``.
        background: ``[3]`` or ``[..., 3]`` colour seen where the ray is not fully absorbed;
            ``None`` means black (no background term).
        opaque_far: ``[...]`` bool (broadcastable, or one bool for all rays): rays whose last
            sample's interval reaches to infinity (``alpha = 1``), so they are fully absorbed.
        deltas: ``[..., N]`` lengths of the intervals the samples stand for, when they are not
            ``[t_i, t_{i+1})`` (samples at the midpoints of intervals, as the proposal sampler
            places them); default :func:`sample_intervals`.

    Returns:
        :class:`CompositeResult` with ``colour = sum_i w_i c_i + (1 - opacity) * background``,
        ``depth = sum_i w_i t_i`` (expected depth, not normalised), ``opacity = sum_i w_i``.
    """
    if deltas is None:
        deltas = sample_intervals(t, far)
    weights = compositing_weights(density, deltas, opaque_far)
    opacity = weights.sum(dim=-1)
    rgb = (weights.unsqueeze(-1) * colour).sum(dim=-2)
    if background is not None:
        rgb = rgb + (1.0 - opacity).unsqueeze(-1) * background.to(
            device=rgb.device, dtype=rgb.dtype
        )
    depth = (weights * t).sum(dim=-1)
    return CompositeResult(colour=rgb, depth=depth, opacity=opacity, weights=weights)
