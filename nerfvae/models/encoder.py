"""Geometry-aware encoder: context views -> posterior q(z | context) over a world-aligned latent grid.

Each context view (image + per-pixel Plücker rays) goes through a shared ResNet-style CNN. The
resulting feature maps are *lifted* into the scene: the centres of a ground-plane grid over the
scene box, at several heights, are projected into every view and the features there are sampled
bilinearly, averaged over the views that see the point (permutation invariant, any number of
views), and a small CNN over the ground-plane grid turns them into the posterior of one latent
token per cell (spatial layout) or, pooled over cells, of one global vector.

Why lift instead of pooling image-space feature maps: views of one scene have different cameras,
so cell (i, j) of one view's feature map and of another's show unrelated parts of the scene, and
averaging them mixes those parts. A world-aligned grid means token (i, j) describes the same
piece of the scene whichever views were given, which is what lets the attentive scene function
look up "the token above this point". An image-space grid of the first prototype trained for
2,750 steps (small config, CPU) without learning any scene-specific content.

The grid spans the scene box's two horizontal axes (the model config's ``up_axis``, copied from the
dataset's ``world_up``, names the vertical one); the lifting heights span the vertical extent.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nerfvae.geometry import image_rays, plucker_coordinates, project_points
from nerfvae.models.config import EncoderConfig, LatentConfig, ground_plane_axes
from nerfvae.models.latent import DiagonalGaussian

INPUT_CHANNELS = 3 + 6  # RGB + Plücker coordinates of each pixel's ray


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm over ``channels`` with up to 8 groups: ``min(8, channels)`` where that divides
    the channels, else the largest divisor of 8 that does (any width builds, e.g. 12 -> 4)."""
    groups = min(8, channels)
    if channels % groups:
        groups = math.gcd(8, channels)
    return nn.GroupNorm(groups, channels)


class ResidualBlock(nn.Module):
    """Pre-activation residual block; ``stride=2`` halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1, stride=stride)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(torch.relu(self.norm1(x)))
        h = self.conv2(torch.relu(self.norm2(h)))
        return self.shortcut(x) + h


def ground_grid_points(
    scene_min: torch.Tensor, scene_max: torch.Tensor, cells: int, heights: int, up_axis: str
) -> torch.Tensor:
    """World points ``[heights * cells * cells, 3]``: the centres of a ``cells × cells`` grid over
    the box's ground plane (the two axes other than ``up_axis``, called a and b) at ``heights``
    heights evenly spread over its up extent. Height-major, then row-major with b as the row
    (point ``h * cells² + i * cells + j`` is height ``h``, row ``i`` along b, column ``j`` along
    a) — the order of the latent tokens."""
    first, second, up = ground_plane_axes(up_axis)

    def centres(axis: int, count: int) -> torch.Tensor:
        fractions = (torch.arange(count, dtype=torch.float32) + 0.5) / count
        return scene_min[axis] + fractions * (scene_max[axis] - scene_min[axis])

    level, row, column = torch.meshgrid(
        centres(up, heights), centres(second, cells), centres(first, cells), indexing="ij"
    )
    points = torch.empty(*level.shape, 3)
    points[..., first], points[..., second], points[..., up] = column, row, level
    return points.reshape(-1, 3)


def lift_features(
    feature_maps: list[torch.Tensor],
    points: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    image_height: int,
    image_width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average, over the views that see them, the image features at world points.

    Args:
        feature_maps: per-view maps ``[S, V, C_i, h_i, w_i]``, each covering the whole image.
        points: ``[P, 3]`` world points (shared by all scenes).
        K: ``[S, V, 3, 3]``; c2w: ``[S, V, 4, 4]`` (OpenCV convention).
        image_height, image_width: size of the images the cameras describe, in pixels.

    Returns:
        ``features [S, P, sum C_i]`` (zero where no view sees a point) and ``seen [S, P]``, the
        fraction of the views in whose frustum (in front of the camera, inside the image) each
        point lies.
    """
    scenes, views = K.shape[:2]
    projected = project_points(points.expand(scenes, views, -1, -1), K, c2w)  # [S, V, P, 3]
    # grid_sample's normalised coordinates with align_corners=False: -1 and 1 are the image edges
    u = projected[..., 0] / image_width * 2.0 - 1.0
    v = projected[..., 1] / image_height * 2.0 - 1.0
    in_front = projected[..., 2] > 1e-4
    visible = in_front & (u.abs() <= 1.0) & (v.abs() <= 1.0)  # [S, V, P]
    # points behind the camera project to meaningless places: park them outside the image
    u = torch.where(in_front, u, torch.full_like(u, 2.0))
    sample_at = torch.stack([u, v], dim=-1).flatten(0, 1).unsqueeze(1)  # [S*V, 1, P, 2]
    weights = visible.float()
    count = weights.sum(dim=1).clamp_min(1.0)  # [S, P]
    lifted = []
    for feature_map in feature_maps:
        sampled = F.grid_sample(
            feature_map.flatten(0, 1), sample_at, mode="bilinear", align_corners=False
        )  # [S*V, C, 1, P]
        sampled = sampled.squeeze(2).reshape(scenes, views, -1, points.shape[0])
        lifted.append((sampled * weights.unsqueeze(2)).sum(dim=1) / count.unsqueeze(1))
    features = torch.cat(lifted, dim=1).transpose(1, 2)  # [S, P, C]
    return features, weights.mean(dim=1)


class ContextEncoder(nn.Module):
    """Encodes any number of context views into a diagonal-Gaussian posterior over z.

    Args:
        config: CNN widths and lifting resolution.
        latent: latent layout (global vector or ``grid × grid`` tokens) and channels.
        scene_min, scene_max: the scene box the latent grid covers (world units).
        up_axis: the scene's vertical axis; the grid lies on the plane of the other two.
    """

    def __init__(
        self,
        config: EncoderConfig,
        latent: LatentConfig,
        scene_min: tuple[float, float, float],
        scene_max: tuple[float, float, float],
        up_axis: str = "z",
    ) -> None:
        super().__init__()
        self.config = config
        self.latent = latent
        if config.lift_oversample < 1 or config.lift_oversample & (config.lift_oversample - 1):
            raise ValueError(f"lift_oversample must be a power of 2, got {config.lift_oversample}")
        if config.lift_heights < 1:
            raise ValueError(f"lift_heights must be >= 1, got {config.lift_heights}")
        channels = config.stage_channels
        # A strided stem: full-resolution convolutions cost the most and a 64×64 view needs no
        # full-resolution features to place a handful of objects in a coarse latent grid.
        self.stem = nn.Conv2d(INPUT_CHANNELS, channels[0], 4, stride=2, padding=1)
        self.stages = nn.ModuleList()
        previous = channels[0]
        for index, stage_width in enumerate(channels):
            blocks = []
            for block in range(config.blocks_per_stage):
                stride = 2 if (index > 0 and block == 0) else 1
                blocks.append(ResidualBlock(previous, stage_width, stride))
                previous = stage_width
            self.stages.append(nn.Sequential(*blocks))
        # the two last stages are lifted: the finer one locates small objects, the coarser one
        # carries context
        self.lifted_stages = list(range(max(0, len(channels) - 2), len(channels)))
        # + the image itself (its colours, at full resolution) + the fraction of views that see
        lifted_channels = sum(channels[i] for i in self.lifted_stages) + 3 + 1

        lift_cells = latent.grid * config.lift_oversample
        points = ground_grid_points(
            torch.tensor(scene_min, dtype=torch.float32),
            torch.tensor(scene_max, dtype=torch.float32),
            lift_cells,
            config.lift_heights,
            up_axis,
        )
        self.register_buffer("lift_points", points, persistent=False)
        self.lift_cells = lift_cells

        grid_width = channels[-1]
        self.grid_in = nn.Conv2d(config.lift_heights * lifted_channels, grid_width, 1)
        grid_blocks: list[nn.Module] = [ResidualBlock(grid_width, grid_width, 1)]
        for _ in range(int(math.log2(config.lift_oversample))):
            grid_blocks.append(ResidualBlock(grid_width, grid_width, 2))
        grid_blocks.append(ResidualBlock(grid_width, grid_width, 1))
        self.grid_blocks = nn.Sequential(*grid_blocks)
        self.out_norm = group_norm(grid_width)
        self.head = nn.Conv2d(grid_width, 2 * latent.channels, 1)
        # Start at the prior (mean 0, std 1) so early KL is small and decoding learns first.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor) -> DiagonalGaussian:
        """Posterior from context views.

        Args:
            images: ``[scenes, views, H, W, 3]`` colours in ``[0, 1]``.
            K: ``[scenes, views, 3, 3]``; c2w: ``[scenes, views, 4, 4]`` (OpenCV convention).

        Returns:
            Posterior over latents ``[scenes, tokens, channels]``; token ``i * grid + j`` is the
            cell in row ``i`` and column ``j`` of the ground-plane grid (see
            :func:`ground_grid_points`).
        """
        scenes, views, height, width, _ = images.shape
        origins, directions = image_rays(K, c2w, height, width)
        rays = plucker_coordinates(origins, directions)  # [S, V, H, W, 6]
        per_view = torch.cat([images * 2.0 - 1.0, rays], dim=-1)
        per_view = per_view.reshape(scenes * views, height, width, INPUT_CHANNELS)
        features = self.stem(per_view.permute(0, 3, 1, 2))
        # the raw colours are lifted too: a direct path from "what colour is there" to the token
        feature_maps = [images.permute(0, 1, 4, 2, 3)]
        for index, stage in enumerate(self.stages):
            features = stage(features)
            if index in self.lifted_stages:
                feature_maps.append(features.reshape(scenes, views, *features.shape[1:]))
        lifted, seen = lift_features(feature_maps, self.lift_points, K, c2w, height, width)
        cells, heights = self.lift_cells, self.config.lift_heights
        per_point = torch.cat([lifted, seen.unsqueeze(-1)], dim=-1)  # [S, heights * G², C]
        grid = per_point.reshape(scenes, heights, cells, cells, -1)
        grid = grid.permute(0, 1, 4, 2, 3).reshape(scenes, -1, cells, cells)
        grid = self.grid_blocks(self.grid_in(grid))
        grid = torch.relu(self.out_norm(grid))
        if self.latent.layout == "global":
            grid = grid.mean(dim=(2, 3), keepdim=True)
        raw = self.head(grid).flatten(2).transpose(1, 2)  # [S, tokens, 2 * channels]
        return DiagonalGaussian.from_raw(raw)
