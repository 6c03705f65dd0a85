"""The PSNR formula, written once for every layer.

It sits at the bottom of the package, beside :mod:`nerfvae.errors`, and imports only torch:
models/ (the training objective and the per-scene NeRF log it), data/ (the trivial-predictor
baselines stored in ``dataset.json``) and :mod:`nerfvae.metrics` (evaluation) all need the same
number, yet models/ and data/ may import only geometry/ and rendering/, which know nothing of
images. Every caller holds its colours as torch tensors, so there is no numpy variant.
"""

from __future__ import annotations

import torch

MIN_MSE = 1e-10
"""Mean squared errors are clamped here, so a perfect prediction scores 100 dB, not infinity."""


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for peak 1.0 (colours in [0, 1]) of mean squared errors ``[...]``, elementwise
    and in their dtype."""
    return -10.0 * torch.log10(mse.clamp_min(MIN_MSE))
