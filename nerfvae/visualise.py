"""Rendering a trained model for people: reconstructions, posterior uncertainty, prior samples,
turntables, written as PNG / GIF / MP4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch

from nerfvae.models import RaySceneModel, SceneModel
from nerfvae.models.latent import DiagonalGaussian
from nerfvae.models.ray_model import shared_grid_sampling
from nerfvae.rendering import DensityGridConfig


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[..., H, W, 3]`` (or ``[..., H, W]``) in [0, 1] -> uint8 array."""
    return (image.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()


def depth_to_image(depth: torch.Tensor, far: float) -> torch.Tensor:
    """Depth ``[..., H, W]`` -> grey ``[..., H, W, 3]``, near = white, ``far`` and beyond = black.
    NaN depth (models without geometry, such as the GQN baseline) is shown black."""
    grey = 1.0 - (depth.nan_to_num(far) / far).clamp(0, 1)
    return grey.unsqueeze(-1).expand(*depth.shape, 3)


def heat_image(values: torch.Tensor, vmax: float | None = None) -> torch.Tensor:
    """Scalar map ``[..., H, W]`` -> ``[..., H, W, 3]`` with matplotlib's magma colour map."""
    from matplotlib import colormaps

    vmax = float(values.max()) if vmax is None else vmax
    normalised = (values / max(vmax, 1e-8)).clamp(0, 1).cpu().numpy()
    return torch.from_numpy(colormaps["magma"](normalised)[..., :3]).float()


def std_colour_scale(stds: list[torch.Tensor]) -> float:
    """White of the std heat maps: the 99th percentile over all of them, so that the small stds
    of a confident model are visible and every figure of a report shares one scale."""
    values = torch.cat([std.flatten() for std in stds]).float()
    # torch.quantile takes at most 2^24 values; a report's few views are far fewer pixels
    return max(float(torch.quantile(values[: 1 << 24], 0.99)), 1e-6)


@torch.no_grad()
def render_latents(
    model: SceneModel,
    latents: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    height: int,
    width: int,
    chunk_rays: int = 4096,
    density_grid: DensityGridConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Render each of ``latents [N, T, C]`` from the same cameras ``K [V, 3, 3]``, ``c2w [V, 4, 4]``:
    ``colour [N, V, H, W, 3]``, ``depth`` and ``opacity [N, V, H, W]`` (batched over N).

    ``density_grid``: a model that renders rays runs its field only where a density grid baked
    from each latent puts mass (:meth:`RaySceneModel.grid_sampling`; pictures, not metrics);
    default: the model's own sampling."""
    options = _grid_sampling(model, latents, density_grid)
    return _render_latents(model, latents, K, c2w, height, width, options, chunk_rays)


def _grid_sampling(
    model: SceneModel, latents: torch.Tensor, density_grid: DensityGridConfig | None
) -> dict[str, Any]:
    """:meth:`RaySceneModel.grid_sampling` where a grid is asked for and the model renders rays;
    ``{}`` (its own sampling) otherwise."""
    if density_grid is None or not isinstance(model, RaySceneModel):
        return {}
    return model.grid_sampling(latents, density_grid)


def _render_latents(
    model: SceneModel,
    latents: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    height: int,
    width: int,
    options: dict[str, Any],
    chunk_rays: int = 4096,
) -> dict[str, torch.Tensor]:
    """:func:`render_latents` with the rendering keyword arguments ``options`` given."""
    count = latents.shape[0]
    return model.render_views(
        latents,
        K.unsqueeze(0).expand(count, *K.shape),
        c2w.unsqueeze(0).expand(count, *c2w.shape),
        height,
        width,
        chunk_rays,
        **options,
    )


@torch.no_grad()
def posterior_statistics(
    model: SceneModel,
    posterior: DiagonalGaussian,
    K: torch.Tensor,
    c2w: torch.Tensor,
    height: int,
    width: int,
    num_samples: int,
    generator: torch.Generator | None = None,
    density_grid: DensityGridConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Render one scene's ``posterior`` (latents ``[1, T, C]``, e.g. from
    :func:`nerfvae.inference.infer_posterior`) from target cameras ``K [V, 3, 3]``,
    ``c2w [V, 4, 4]``, with the posterior mean and with ``num_samples`` posterior samples.

    Returns ``mean_latent`` renders (``colour [V, H, W, 3]``, ``depth``, ``opacity``) and, over the
    samples, per-pixel ``sample_mean [V, H, W, 3]``, ``sample_std [V, H, W]`` (colour standard
    deviation averaged over channels), ``depth_std [V, H, W]`` and ``samples [N, V, H, W, 3]``.
    ``density_grid`` as in :func:`render_latents`; the samples are rendered at the positions
    the posterior mean's grid places, so their spread is the field's, not the quadrature's.
    """
    # one grid, baked from the mean, for the mean's render and the samples'
    options = _grid_sampling(model, posterior.mean, density_grid)
    mean_render = _render_latents(model, posterior.mean, K, c2w, height, width, options)
    out = {key: value[0] for key, value in mean_render.items()}
    if num_samples > 0:
        latents = torch.cat([posterior.rsample(generator) for _ in range(num_samples)])
        shared = shared_grid_sampling(options, num_samples)
        sampled = _render_latents(model, latents, K, c2w, height, width, shared)
        out["samples"] = sampled["colour"]
        out["sample_mean"] = sampled["colour"].mean(0)
        out["sample_std"] = sampled["colour"].std(0, unbiased=num_samples > 1).mean(-1)
        out["depth_std"] = sampled["depth"].std(0, unbiased=num_samples > 1)
    return out


def write_png(path: Path, image: torch.Tensor | np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = image if isinstance(image, np.ndarray) else to_uint8(image)
    iio.imwrite(path, array)


def write_video(path: Path, frames: torch.Tensor, fps: int = 12) -> None:
    """Frames ``[F, H, W, 3]`` in [0, 1] -> GIF (Pillow) or MP4 (H.264 through PyAV) by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = to_uint8(frames)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, array, duration=int(1000 / fps), loop=0)
    elif path.suffix.lower() == ".mp4":
        iio.imwrite(path, array, fps=fps, codec="libx264", plugin="pyav")
    else:
        raise ValueError(f"unsupported video format {path.suffix!r} (use .gif or .mp4)")


def image_grid(rows: list[list[torch.Tensor]], pad: int = 2) -> torch.Tensor:
    """Tile ``[H, W, 3]`` images (rows may differ in length) on a white background."""
    height = max(image.shape[0] for row in rows for image in row)
    width = max(image.shape[1] for row in rows for image in row)
    columns = max(len(row) for row in rows)
    grid = torch.ones(
        len(rows) * (height + pad) + pad, columns * (width + pad) + pad, 3, dtype=torch.float32
    )
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            grid[top : top + image.shape[0], left : left + image.shape[1]] = image.float()
    return grid
