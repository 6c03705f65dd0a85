"""Image metrics over batched tensors (colours in [0, 1]), the per-view metric set of
``nerfvae eval`` and its mean over views."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from nerfvae.image_metrics import psnr_from_mse


def mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean squared error over all pixels, or over pixels where ``mask [..., H, W]`` is true
    (NaN when the mask is empty)."""
    error = (prediction.float() - target.float()).square()
    if mask is None:
        return float(error.mean())
    if not bool(mask.any()):
        return float("nan")
    return float(error[mask.bool()].mean())


def psnr(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB for peak 1.0 over all pixels, or over the masked pixels (object-pixel PSNR)."""
    value = mse(prediction, target, mask)
    if value != value:  # NaN: empty mask
        return value
    return float(psnr_from_mse(torch.tensor(value)))


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Structural similarity of two ``[H, W, 3]`` images in [0, 1] (scikit-image's implementation,
    Gaussian-free 7×7 windows, data range 1)."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            prediction.float().clamp(0, 1).cpu().numpy(),
            target.float().cpu().numpy(),
            channel_axis=-1,
            data_range=1.0,
        )
    )


SURFACE_OPACITY = 0.5
"""Rays at least this opaque count towards ``surface_depth_mae``."""


def view_metrics(
    prediction: torch.Tensor,
    target: torch.Tensor,
    *,
    object_mask: torch.Tensor | None = None,
    depth: torch.Tensor | None = None,
    true_depth: torch.Tensor | None = None,
    opacity: torch.Tensor | None = None,
    context_colour: torch.Tensor | None = None,
    mean_train_image: torch.Tensor | None = None,
) -> dict[str, float]:
    """The per-view metrics of ``nerfvae eval`` (docs/evaluation.md) for one target view.

    Args:
        prediction, target: colours ``[H, W, 3]`` in [0, 1].
        object_mask: ``[H, W]`` ground-truth object pixels: adds the ``*object_psnr`` metrics
            (NaN where the view shows no object).
        depth, true_depth: rendered expected depth and ground-truth distance along the ray
            ``[H, W]``: adds ``depth_mae`` when both are given (NaN where the model renders no
            depth, e.g. the GQN baseline's NaN depth; :func:`nan_mean` then skips it).
        opacity: rendered opacity ``[H, W]``: adds its mean ``opacity`` and, with both depths,
            ``surface_depth_mae``: the error of the surface depth ``depth / opacity`` over the pixels
            whose rays are at least half absorbed (NaN where none is). The expected depth is pulled
            towards 0 by the unabsorbed part of a ray, so ``depth_mae`` mixes haze with misplaced
            surfaces; this one measures where the surfaces are.
        context_colour: ``[3]`` mean colour of the context views: the trivial predictor behind
            ``baseline_mean_context_*``.
        mean_train_image: ``[H, W, 3]`` mean training image: the trivial predictor behind
            ``baseline_mean_train_*``.

    Returns:
        ``psnr``, ``ssim``, ``mse``, then whichever of ``baseline_mean_context_psnr``,
        ``baseline_mean_train_psnr``, ``object_psnr``, ``baseline_mean_context_object_psnr``,
        ``baseline_mean_train_object_psnr``, ``depth_mae``, ``surface_depth_mae``, ``opacity`` the
        inputs allow, in this order (the order of the keys in the evaluation JSON).
    """
    trivial = {}
    if context_colour is not None:
        trivial["baseline_mean_context"] = context_colour.expand_as(target)
    if mean_train_image is not None:
        trivial["baseline_mean_train"] = mean_train_image
    values = {
        "psnr": psnr(prediction, target),
        "ssim": ssim(prediction, target),
        "mse": mse(prediction, target),
    }
    for name, constant in trivial.items():
        values[f"{name}_psnr"] = psnr(constant, target)
    if object_mask is not None:
        values["object_psnr"] = psnr(prediction, target, object_mask)
        for name, constant in trivial.items():
            values[f"{name}_object_psnr"] = psnr(constant, target, object_mask)
    if depth is not None and true_depth is not None:
        values["depth_mae"] = float((depth - true_depth).abs().mean())
        if opacity is not None:
            absorbed = opacity >= SURFACE_OPACITY
            surface = depth[absorbed] / opacity[absorbed]
            values["surface_depth_mae"] = (
                float((surface - true_depth[absorbed]).abs().mean()) if absorbed.any() else math.nan
            )
    if opacity is not None:
        values["opacity"] = float(opacity.mean())
    return values


def nan_mean(values: Iterable[float]) -> float:
    """Mean of the values that are not NaN (NaN when none is)."""
    finite = [value for value in values if not math.isnan(value)]
    return float(np.mean(finite)) if finite else float("nan")


def mean_view_metrics(
    per_view: Mapping[tuple[int, str], Mapping[str, Sequence[float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """The ``results`` of the evaluation JSON from per-view values.

    ``per_view[(K, kind)][name]`` lists metric ``name`` over the target views of ``kind`` (``id``
    or ``ood``) with K context views; each becomes ``results[str(K)][kind][name]``, its NaN-skipping
    mean (:func:`nan_mean`), beside ``num_views`` (the number of ``psnr`` values).
    """
    results: dict[str, dict[str, dict[str, float]]] = {}
    for (k, kind), metrics in per_view.items():
        entry = {name: nan_mean(values) for name, values in metrics.items()}
        entry["num_views"] = len(metrics["psnr"])
        results.setdefault(str(k), {})[kind] = entry
    return results
