"""Convolutional encoder: context views (image + per-pixel Plücker rays) -> posterior q(z | context)."""

from __future__ import annotations

import torch
from torch import nn

from nerfvae.geometry import image_rays, plucker_coordinates
from nerfvae.models.config import EncoderConfig, LatentConfig
from nerfvae.models.latent import DiagonalGaussian

INPUT_CHANNELS = 3 + 6  # RGB + Plücker coordinates of each pixel's ray


class ResidualBlock(nn.Module):
    """Pre-activation residual block; ``stride=2`` halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.norm2 = nn.GroupNorm(min(8, out_channels), out_channels)
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


class ContextEncoder(nn.Module):
    """Encodes any number of context views into a diagonal-Gaussian posterior over z.

    Each view is encoded independently (weights shared), the per-view feature maps are averaged over
    views — so the posterior is invariant to the order of the views and accepts 1..K of them — and a
    head maps the pooled features to the posterior parameters of a global vector or a spatial grid
    of latent tokens.
    """

    def __init__(self, config: EncoderConfig, latent: LatentConfig) -> None:
        super().__init__()
        self.latent = latent
        channels = config.stage_channels
        # A strided stem: full-resolution convolutions cost the most and a 64×64 view needs no
        # full-resolution features to place a handful of objects in a coarse latent grid.
        self.stem = nn.Conv2d(INPUT_CHANNELS, channels[0], 4, stride=2, padding=1)
        stages: list[nn.Module] = []
        previous = channels[0]
        for index, stage_width in enumerate(channels):
            for block in range(config.blocks_per_stage):
                stride = 2 if (index > 0 and block == 0) else 1
                stages.append(ResidualBlock(previous, stage_width, stride))
                previous = stage_width
        self.stages = nn.Sequential(*stages)
        self.out_norm = nn.GroupNorm(min(8, previous), previous)
        self.pool = nn.AdaptiveAvgPool2d(1 if latent.layout == "global" else latent.grid)
        self.head = nn.Conv2d(previous, 2 * latent.channels, 1)
        # Start at the prior (mean 0, std 1) so early KL is small and decoding learns first.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor) -> DiagonalGaussian:
        """Posterior from context views.

        Args:
            images: ``[scenes, views, H, W, 3]`` colours in ``[0, 1]``.
            K: ``[scenes, views, 3, 3]``; c2w: ``[scenes, views, 4, 4]`` (OpenCV convention).

        Returns:
            Posterior over latents ``[scenes, tokens, channels]``.
        """
        scenes, views, height, width, _ = images.shape
        origins, directions = image_rays(K, c2w, height, width)
        rays = plucker_coordinates(origins, directions)  # [S, V, H, W, 6]
        per_view = torch.cat([images * 2.0 - 1.0, rays], dim=-1)
        per_view = per_view.reshape(scenes * views, height, width, INPUT_CHANNELS)
        features = self.stages(self.stem(per_view.permute(0, 3, 1, 2)))
        features = features.reshape(scenes, views, *features.shape[1:]).mean(dim=1)
        pooled = self.pool(torch.relu(self.out_norm(features)))
        raw = self.head(pooled).flatten(2).transpose(1, 2)  # [S, tokens, 2 * channels]
        return DiagonalGaussian.from_raw(raw)
