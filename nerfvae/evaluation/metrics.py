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
