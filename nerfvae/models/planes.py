"""The ``planes`` scene function: the latent decoded once per scene into dense features.

The other conditionings run a 4 × 128 MLP and, for attention, a cross-attention to every latent
token at every sample of every ray. Here the per-scene work is done once: a small CNN turns the
latent grid ``z [S, T, C]`` into feature maps at ``plane_upsample`` × the latent grid's resolution
(:class:`PlaneDecoder`), and each point only reads ``plane_channels`` features there (trilinear or
bilinear interpolation) and runs a narrow MLP. The per-point cost does not depend on the number of
latent tokens.

Two layouts of the decoded features (``scene_function.plane_layout``):

* ``volume`` — a ground-plane map whose channels are ``plane_channels`` features at each of
  ``plane_height_bins`` heights, i.e. a feature volume ``[S, F, D, R, R]`` read trilinearly. It
  follows the spatial latent's structure (a token describes the column above its cell), and every
  column has its own features at every height.
* ``triplane`` — a ground-plane map ``[S, F, R, R]`` plus two vertical planes ``[S, F, D, R]``
  (EG3D), read bilinearly and summed. The vertical planes are decoded from the ground features
  averaged along one horizontal axis, so two objects in the same row share them.

A one-channel proposal density is decoded beside the features (from the decoder's features with
the gradient stopped, so its own loss never shapes the latent): the proposal sampler
(:func:`nerfvae.rendering.render_with_proposal`) reads it at many cheap samples to place the few
samples where the MLP runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nerfvae.errors import ConfigError
from nerfvae.models.config import LatentConfig, SceneFunctionConfig, ground_plane_axes
from nerfvae.models.encoding import PositionalEncoding

GLOBAL_BASE_GRID = 4
"""A global latent (one vector per scene) is mapped to a grid this many cells per side first."""


@dataclass
class PlaneCode:
    """One batch of scenes decoded by :class:`PlaneDecoder` (volume layout: ``ground`` only).

    Attributes:
        ground: ``volume``: ``[S, F, D, R, R]`` (height, second axis, first axis);
            ``triplane``: the ground-plane map ``[S, F, R, R]`` (second axis, first axis).
        first_up: ``triplane``: the plane of the first ground axis and up ``[S, F, D, R]``.
        second_up: ``triplane``: the plane of the second ground axis and up ``[S, F, D, R]``.
        proposal: the proposal density's logits, laid out like the features with one channel.
    """

    ground: torch.Tensor
    proposal: tuple[torch.Tensor, ...]
    first_up: torch.Tensor | None = None
    second_up: torch.Tensor | None = None


def _check_config(config: SceneFunctionConfig, latent: LatentConfig) -> None:
    factor = config.plane_upsample
    if factor < 4 or factor & (factor - 1):
        raise ConfigError(
            f"scene_function.plane_upsample must be a power of 2 and at least 4, got {factor}"
        )
    for name in ("plane_channels", "plane_height_bins", "plane_decoder_channels", "width"):
        if getattr(config, name) < 1:
            raise ConfigError(f"scene_function.{name} must be >= 1, got {getattr(config, name)}")
    if config.depth < 1:
        raise ConfigError(f"scene_function.depth must be >= 1, got {config.depth}")
    if config.plane_layout not in ("volume", "triplane"):
        raise ConfigError(
            f"scene_function.plane_layout must be 'volume' or 'triplane', got {config.plane_layout!r}"
        )
    if latent.grid < 1 or latent.channels < 1:
        raise ConfigError(
            f"latent.grid and latent.channels must be >= 1, got {latent.grid} and {latent.channels}"
        )


class PlaneDecoder(nn.Module):
    """Latent tokens ``[S, T, C]`` -> :class:`PlaneCode` at ``plane_upsample`` × the grid.

    A spatial latent's tokens are a grid × grid map on the ground plane (token ``i * grid + j`` is
    row ``i`` along the second ground axis, column ``j`` along the first, as the encoder lays them
    out); a global latent is mapped linearly to a 4 × 4 map. Then ``log2(plane_upsample)`` stages
    of (nearest ×2 upsampling, 3 × 3 convolution, ReLU) and 1 × 1 heads.
    """

    def __init__(self, config: SceneFunctionConfig, latent: LatentConfig) -> None:
        super().__init__()
        _check_config(config, latent)
        self.layout = config.plane_layout
        self.spatial = latent.layout == "spatial"
        self.grid = latent.grid if self.spatial else GLOBAL_BASE_GRID
        channels = config.plane_decoder_channels
        self.channels = channels
        self.features = config.plane_channels
        self.heights = config.plane_height_bins
        if self.spatial:
            self.stem = nn.Conv2d(latent.channels, channels, 3, padding=1)
        else:
            self.stem = nn.Linear(latent.channels, channels * self.grid * self.grid)
        stages = config.plane_upsample.bit_length() - 1
        self.stages = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1) for _ in range(stages)
        )
        if self.layout == "volume":
            self.feature_head = nn.Conv2d(channels, self.features * self.heights, 1)
            self.proposal_head = nn.Conv2d(channels, self.heights, 1)
        else:
            self.feature_head = nn.Conv2d(channels, self.features, 1)
            self.proposal_head = nn.Conv2d(channels, 1, 1)
            # each vertical plane from the ground features averaged along the other ground axis
            self.vertical_heads = nn.ModuleList(
                nn.Conv1d(channels, (self.features + 1) * self.heights, 3, padding=1)
                for _ in range(2)
            )

    @property
    def resolution(self) -> int:
        """Cells per side of the decoded ground plane."""
        return self.grid * 2 ** len(self.stages)

    def forward(self, latent: torch.Tensor) -> PlaneCode:
        scenes = latent.shape[0]
        if self.spatial:
            grid_map = latent.transpose(1, 2).reshape(scenes, -1, self.grid, self.grid)
            hidden = torch.relu(self.stem(grid_map))
        else:
            hidden = torch.relu(self.stem(latent[:, 0]))
            hidden = hidden.reshape(scenes, self.channels, self.grid, self.grid)
        for stage in self.stages:
            hidden = F.interpolate(hidden, scale_factor=2.0, mode="nearest")
            hidden = torch.relu(stage(hidden))
        resolution = hidden.shape[-1]
        # the proposal learns from its own (non-ELBO) loss: keep that loss off the latent
        detached = hidden.detach()
        if self.layout == "volume":
            shape = (scenes, self.features, self.heights, resolution, resolution)
            ground = self.feature_head(hidden).reshape(shape)
            proposal = self.proposal_head(detached).reshape(scenes, 1, *shape[2:])
            return PlaneCode(ground=ground, proposal=(proposal,))
        ground = self.feature_head(hidden)
        ground_proposal = self.proposal_head(detached)
        vertical, vertical_proposal = [], []
        # first_up: averaged over the second axis (rows, dim 2); second_up: over the first (dim 3)
        for head, pooled_dim in zip(self.vertical_heads, (2, 3)):
            plane = head(hidden.mean(dim=pooled_dim))  # [S, (F + 1) * D, R]
            plane = plane.reshape(scenes, self.features + 1, self.heights, resolution)
            vertical.append(plane[:, : self.features])
            detached_plane = head(detached.mean(dim=pooled_dim)).reshape(plane.shape)
            vertical_proposal.append(detached_plane[:, self.features :])
        return PlaneCode(
            ground=ground,
            proposal=(ground_proposal, *vertical_proposal),
            first_up=vertical[0],
            second_up=vertical[1],
        )


class PlanesSceneFunction(nn.Module):
    """Radiance field read from per-scene decoded features (``conditioning planes``).

    Use: ``code = decode(latent [S, T, C])`` once per scene, then ``forward(points [S, P, 3],
    directions [S, P, 3], code) -> density [S, P], colour [S, P, 3]`` and
    ``proposal_density(points [S, P, 3], code) -> [S, P]`` for any number of points.
    """

    has_proposal = True

    def __init__(
        self,
        config: SceneFunctionConfig,
        latent: LatentConfig,
        scene_min: tuple[float, float, float],
        scene_max: tuple[float, float, float],
        up_axis: str = "z",
    ) -> None:
        super().__init__()
        self.config = config
        self.decoder = PlaneDecoder(config, latent)
        first, second, up = ground_plane_axes(up_axis)
        self.axes = [first, second, up]
        scene_min_t = torch.tensor(scene_min, dtype=torch.float32)
        scene_max_t = torch.tensor(scene_max, dtype=torch.float32)
        self.register_buffer("box_centre", (scene_min_t + scene_max_t) / 2)
        self.register_buffer("box_half_size", (scene_max_t - scene_min_t).clamp_min(1e-6) / 2)
        self.point_encoding = PositionalEncoding(3, config.point_frequencies)
        width = config.width
        layers, in_dim = [], config.plane_channels + self.point_encoding.output_dim
        for _ in range(config.depth):
            layers.append(nn.Linear(in_dim, width))
            in_dim = width
        self.layers = nn.ModuleList(layers)
        self.density_head = nn.Linear(width, 1)
        self.direction_encoding = (
            PositionalEncoding(3, config.direction_frequencies) if config.view_dependent else None
        )
        colour_in = width + (self.direction_encoding.output_dim if self.direction_encoding else 0)
        self.colour_hidden = nn.Linear(colour_in, max(1, width // 2))
        self.colour_head = nn.Linear(max(1, width // 2), 3)

    def decode(self, latent: torch.Tensor) -> PlaneCode:
        """The per-scene features of latents ``[S, T, C]`` (run once per scene and batch).

        The decoded maps are kept in float32 whatever the weights' precision: interpolation
        coordinates in bfloat16 are off by a quarter of a cell on a 64-cell map (measured: errors
        of 0.7 on unit-variance features), so every lookup runs in float32."""
        code = self.decoder(latent.to(self.decoder.stem.weight.dtype))
        as_float = lambda t: None if t is None else t.float()
        return PlaneCode(
            ground=code.ground.float(),
            proposal=tuple(t.float() for t in code.proposal),
            first_up=as_float(code.first_up),
            second_up=as_float(code.second_up),
        )

    def _grid(self, points: torch.Tensor) -> torch.Tensor:
        """Points ``[S, P, 3]`` -> sampling coordinates ``[S, P, 3]`` in ``[-1, 1]`` ordered
        (first ground axis, second ground axis, up) as grid_sample's (x, y, z)."""
        normalised = (points.float() - self.box_centre) / self.box_half_size
        return normalised[..., self.axes]

    @staticmethod
    def _read(maps: tuple[torch.Tensor, ...], grid: torch.Tensor, layout: str) -> torch.Tensor:
        """Interpolate float32 ``maps`` (a volume, or ground + two vertical planes) at float32
        ``grid [S, P, 3]``; returns ``[S, P, channels]``."""
        if layout == "volume":
            coordinates = grid[:, :, None, None, :]  # [S, P, 1, 1, 3]
            sampled = F.grid_sample(
                maps[0], coordinates, mode="bilinear", padding_mode="border", align_corners=False
            )  # [S, C, P, 1, 1]
            return sampled.flatten(2).transpose(1, 2)
        ground, first_up, second_up = maps
        total = None
        for plane, pair in ((ground, (0, 1)), (first_up, (0, 2)), (second_up, (1, 2))):
            coordinates = grid[..., list(pair)][:, :, None, :]  # [S, P, 1, 2]
            sampled = F.grid_sample(
                plane, coordinates, mode="bilinear", padding_mode="border", align_corners=False
            )  # [S, C, P, 1]
            total = sampled if total is None else total + sampled
        return total.flatten(2).transpose(1, 2)

    def _maps(self, code: PlaneCode) -> tuple[torch.Tensor, ...]:
        if self.decoder.layout == "volume":
            return (code.ground,)
        return (code.ground, code.first_up, code.second_up)

    def forward(
        self, points: torch.Tensor, directions: torch.Tensor, code: PlaneCode
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Density ``[S, P]`` and colour ``[S, P, 3]`` at ``points [S, P, 3]`` seen along unit
        ``directions [S, P, 3]``."""
        dtype = self.layers[0].weight.dtype
        grid = self._grid(points)
        features = self._read(self._maps(code), grid, self.decoder.layout).to(dtype)
        encoded = self.point_encoding(grid).to(dtype)
        hidden = torch.cat([features, encoded], dim=-1)
        for layer in self.layers:
            hidden = torch.relu(layer(hidden))
        density = F.softplus(
            self.density_head(hidden).squeeze(-1).float() + self.config.density_bias
        )
        colour_input = hidden
        if self.direction_encoding is not None:
            encoded_directions = self.direction_encoding(directions.float()).to(dtype)
            colour_input = torch.cat([colour_input, encoded_directions], dim=-1)
        colour = torch.sigmoid(self.colour_head(torch.relu(self.colour_hidden(colour_input))))
        return density, colour.float()

    def proposal_density(self, points: torch.Tensor, code: PlaneCode) -> torch.Tensor:
        """The proposal density ``[S, P]`` at ``points [S, P, 3]``: one interpolated channel."""
        logits = self._read(code.proposal, self._grid(points), self.decoder.layout)
        return F.softplus(logits.squeeze(-1).float() + self.config.density_bias)
