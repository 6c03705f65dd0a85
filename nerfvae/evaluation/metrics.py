"""Image metrics over batched tensors (colours in [0, 1])."""

from __future__ import annotations

import torch


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
    return float(-10.0 * torch.log10(torch.tensor(max(value, 1e-10))))
