"""The ``planes`` scene function: the latent decoded once per scene into dense features.

The other conditionings run a 4 × 128 MLP and, for attention, a cross-attention to every latent
token at every sample of every ray. Here the per-scene work is done once: a small CNN turns the
latent grid ``z [S, T, C]`` into feature maps at ``plane_upsample`` × the latent grid's resolution
(:class:`PlaneDecoder`), and each point only reads ``plane_channels`` features there (trilinear or
bilinear interpolation) and runs a narrow MLP. The per-point cost does not depend on the number of
latent tokens.

Two layouts of the decoded features (``scene_function.plane_layout``):

* ``volume`` — a ground-plane map whose channels are ``plane_channels`` features at each of
  ``plane_height_bins`` heights, i.e. a feature volume ``[S, R, R, D, F]`` read trilinearly. It
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

from nerfvae.models.config import LatentConfig, SceneFunctionConfig, ground_plane_axes
from nerfvae.models.encoding import PositionalEncoding
from nerfvae.models.point_mlp import point_mlp

_PLANE_AXES = {pair: torch.tensor(pair) for pair in ((0, 1), (0, 2), (1, 2))}
"""The grid coordinates each triplane map is read at: ground (first, second), then each
vertical plane (its ground axis, up)."""

GLOBAL_BASE_GRID = 4
"""A global latent (one vector per scene) is mapped to a grid this many cells per side first."""


@dataclass
class PlaneCode:
    """One batch of scenes decoded by :class:`PlaneDecoder` (volume layout: ``ground`` only).

    Attributes:
        ground: ``volume``: ``[S, R, R, D, F]`` channels-last (second axis, first axis, height);
            ``triplane``: the ground-plane map ``[S, F, R, R]`` (second axis, first axis).
        first_up: ``triplane``: the plane of the first ground axis and up ``[S, F, D, R]``.
        second_up: ``triplane``: the plane of the second ground axis and up ``[S, F, D, R]``.
        proposal: the proposal density's logits, laid out like the features with one channel.
    """

    ground: torch.Tensor
    proposal: tuple[torch.Tensor, ...]
    first_up: torch.Tensor | None = None
    second_up: torch.Tensor | None = None


def _axis_corners(
    coordinate: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower and upper cell indices ``[...]`` and the fraction towards the upper one of
    coordinates in ``[-1, 1]`` on an axis of ``size`` cells (cell centres at ``(i + 0.5) / size``,
    clamped at the border: grid_sample's ``align_corners=False, padding_mode="border"``)."""
    position = (((coordinate + 1.0) * size - 1.0) / 2.0).clamp(0.0, size - 1.0)
    lower = position.floor().clamp(max=max(size - 2, 0))
    fraction = position - lower
    lower = lower.long()
    return lower, (lower + 1).clamp(max=size - 1), fraction


def trilinear_lookup(volume: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of a channels-last volume ``[S, Y, X, Z, C]`` at ``grid [S, P, 3]``
    (``(x, y, z)`` in ``[-1, 1]``, border padding) -> ``[S, P, C]``.

    The same values as ``F.grid_sample`` on the channels-first volume, computed as one weighted
    ``embedding_bag`` over the 8 corner rows: its backward accumulates into the volume faster than
    ``grid_sampler_3d_backward`` on the CPU (125 against 181 ms, forward and backward, for 4 × 27k
    points of a 16-channel 64 × 64 × 16 volume on one thread)."""
    scenes, size_y, size_x, size_z, channels = volume.shape
    x0, x1, fx = _axis_corners(grid[..., 0], size_x)
    y0, y1, fy = _axis_corners(grid[..., 1], size_y)
    z0, z1, fz = _axis_corners(grid[..., 2], size_z)
    scene_offset = (
        torch.arange(scenes, device=grid.device) * (size_y * size_x * size_z)
    ).unsqueeze(-1)
    indices, weights = [], []
    for y, weight_y in ((y0, 1.0 - fy), (y1, fy)):
        for x, weight_x in ((x0, 1.0 - fx), (x1, fx)):
            row = (y * size_x + x) * size_z + scene_offset
            weight_yx = weight_y * weight_x
            for z, weight_z in ((z0, 1.0 - fz), (z1, fz)):
                indices.append(row + z)
                weights.append(weight_yx * weight_z)
    corners = torch.stack(indices, dim=-1).reshape(-1, 8)
    corner_weights = torch.stack(weights, dim=-1).reshape(-1, 8).to(volume.dtype)
    sampled = F.embedding_bag(
        corners,
        volume.reshape(-1, channels),
        per_sample_weights=corner_weights,
        mode="sum",
    )
    return sampled.reshape(scenes, -1, channels)


# Which taps of a 3 x 3 kernel on a nearest-upsampled map land on which of the two low-resolution
# rows (or columns) an output pixel of phase 0 (even) or 1 (odd) reads: an even output row 2i
# reads upsampled rows 2i-1, 2i, 2i+1 = low rows i-1, i, i; an odd one 2i+1 reads i, i, i+1.
# _PHASE_TAPS[phase, low, tap] is 1 where tap `tap` of the 3 x 3 kernel reads low row `low`.
_PHASE_TAPS = torch.tensor(
    [[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]
)  # [2 phases, 2 low-resolution taps, 3 taps]
# A transposed convolution (stride 2, padding 1, 4 taps) gives output row 2i + p the low row
# i + p - 1 + a through its tap 3 - p - 2a: this orders the (phase, low tap) pairs by that tap.
_TRANSPOSED_TAP_ORDER = torch.argsort(torch.tensor([3, 1, 2, 0]))  # (p, a) = 00, 01, 10, 11


def upsample_conv(maps: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv`` (3 x 3, padding 1) applied to ``maps [S, C, R, R']`` upsampled ×2 by nearest
    neighbours -> ``[S, C_out, 2R, 2R']``, computed without the upsampled map.

    Each output pixel of the upsampled convolution reads only a 2 × 2 window of the
    low-resolution map, with a kernel that depends on its phase (row and column parity): summing
    the 3 × 3 kernel's taps that fall on the same low-resolution pixel gives four 2 × 2 kernels
    (the sub-pixel convolution of Shi et al. 2016). Those are exactly the taps of one 4 × 4
    transposed convolution with stride 2, so the whole stage is one library call, forward and
    backward: the same function of the same weights in 16 instead of 36 multiply-adds per output
    pixel and channel pair, with no phase slicing to undo in the backward pass (on a 2-core AMD
    EPYC, 18 against 22 ms forward and backward for 4 scenes' 44-channel 32² -> 64² stage).
    Gradients reach the 3 × 3 weights through the sums."""
    weight = conv.weight.float()  # [C_out, C_in, 3, 3]; the taps summed in float32
    taps = _PHASE_TAPS.to(weight.device)
    # per_phase[o, i, p, a, q, b]: the 3 x 3 taps (k, l) landing on low pixel (a, b) in phase (p, q)
    per_phase = torch.einsum("oikl,pak,qbl->oipaqb", weight, taps, taps)
    out_channels, in_channels = weight.shape[:2]
    order = _TRANSPOSED_TAP_ORDER.to(weight.device)
    kernel = per_phase.reshape(out_channels, in_channels, 4, 4)[:, :, order][:, :, :, order]
    # conv_transpose2d's weight is [C_in, C_out, kH, kW]
    kernel = kernel.transpose(0, 1).to(conv.weight.dtype)
    return F.conv_transpose2d(maps, kernel, conv.bias, stride=2, padding=1)


class ChannelLinear(nn.Linear):
    """A 1 × 1 convolution of maps ``[S, C_in, ...]`` -> ``[S, C_out, ...]`` as one batched
    matrix product. PyTorch's CPU convolution takes a slow path for 1 × 1 kernels with many output
    channels: the feature head's backward was 60% of a ``planes`` training step
    (``benchmarks/scene_function.py``); this is the same function at a fraction of the cost."""

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        flat = maps.flatten(2)  # [S, C_in, N]
        scenes = maps.shape[0]
        out = torch.baddbmm(
            self.bias.unsqueeze(-1).expand(scenes, -1, flat.shape[-1]),
            self.weight.expand(scenes, -1, -1),
            flat,
        )  # [S, C_out, N]
        return out.reshape(maps.shape[0], -1, *maps.shape[2:])


class PlaneDecoder(nn.Module):
    """Latent tokens ``[S, T, C]`` -> :class:`PlaneCode` at ``plane_upsample`` × the grid.

    A spatial latent's tokens are a grid × grid map on the ground plane (token ``i * grid + j`` is
    row ``i`` along the second ground axis, column ``j`` along the first, as the encoder lays them
    out); a global latent is mapped linearly to a 4 × 4 map. Then ``log2(plane_upsample)`` stages
    of (nearest ×2 upsampling, 3 × 3 convolution, ReLU) and 1 × 1 heads.
    """

    def __init__(self, config: SceneFunctionConfig, latent: LatentConfig) -> None:
        super().__init__()
        config.check()
        latent.check()
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
            # applied to channels-last maps: the volume comes out as [S, Y, X, Z, C] directly
            self.feature_head = nn.Linear(channels, self.features * self.heights)
            self.proposal_head = nn.Linear(channels, self.heights)
        else:
            self.feature_head = ChannelLinear(channels, self.features)
            self.proposal_head = ChannelLinear(channels, 1)
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
        for stage in self.stages:  # nearest ×2 upsampling, then the stage's 3 × 3 convolution
            hidden = torch.relu(upsample_conv(hidden, stage))
        resolution = hidden.shape[-1]
        # the proposal learns from its own (non-ELBO) loss: keep that loss off the latent
        detached = hidden.detach()
        if self.layout == "volume":
            shape = (scenes, resolution, resolution, self.heights, self.features)
            ground = self.feature_head(hidden.permute(0, 2, 3, 1)).reshape(shape)
            proposal = self.proposal_head(detached.permute(0, 2, 3, 1)).reshape(*shape[:-1], 1)
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
        if self.axes == [0, 1, 2]:
            return normalised
        return normalised.index_select(-1, torch.tensor(self.axes, device=normalised.device))

    @staticmethod
    def _read(maps: tuple[torch.Tensor, ...], grid: torch.Tensor, layout: str) -> torch.Tensor:
        """Interpolate float32 ``maps`` (a volume, or ground + two vertical planes) at float32
        ``grid [S, P, 3]``; returns ``[S, P, channels]``."""
        if layout == "volume":
            return trilinear_lookup(maps[0], grid)
        # three grid_samples: on the CPU they beat one embedding_bag over the 12 corners (the
        # volume's trick), measured forward + backward at `small`'s batch: 82 against 104 ms
        ground, first_up, second_up = maps
        scenes, points = grid.shape[:2]
        # PyTorch's CPU grid_sample parallelises over the batch only, so one scene (a viewer
        # frame, a rendered view) ran on one thread: there, the points are split into one batch
        # entry per thread over the same maps (expanded, not copied). 2.5 against 3.8 ms for
        # 98,304 points of a 16-channel map on two threads.
        split = torch.get_num_threads()
        if scenes != 1 or split < 2 or grid.device.type != "cpu" or points < split:
            split = 1
        per_split = -(-points // split)
        if split > 1:
            grid = F.pad(grid, (0, 0, 0, per_split * split - points)).reshape(split, per_split, 3)
        total = None
        for plane, pair in ((ground, (0, 1)), (first_up, (0, 2)), (second_up, (1, 2))):
            # a gathered (contiguous) copy: grid_sample is several times slower on a strided grid,
            # and index_select gathers 7x faster than advanced indexing (0.37 against 2.6 ms for
            # a view's 262,144 proposal points)
            index = _PLANE_AXES[pair].to(grid.device)
            coordinates = grid.index_select(-1, index)[:, :, None, :]  # [S, P, 1, 2]
            sampled = F.grid_sample(
                plane.expand(split, -1, -1, -1) if split > 1 else plane,
                coordinates,
                mode="bilinear",
                padding_mode="border",
                align_corners=False,
            )  # [S, C, P, 1]
            # in place: grid_sample's backward does not read its output
            total = sampled if total is None else total.add_(sampled)
        features = total.flatten(2).transpose(1, 2)  # [S, P, C]
        if split > 1:  # one copy back to [1, P, C], contiguous
            features = features.reshape(1, split * per_split, -1)[:, :points]
        return features

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
        scenes, count = grid.shape[:2]
        features = self._read(self._maps(code), grid, self.decoder.layout).to(dtype)
        encoded = self.point_encoding(grid).to(dtype)
        encoded_directions = None
        if self.direction_encoding is not None:
            encoded_directions = self.direction_encoding(directions.float()).to(dtype)
            encoded_directions = encoded_directions.reshape(scenes * count, -1)
        density_logit, colour_logit = point_mlp(
            features.reshape(scenes * count, -1),
            encoded.reshape(scenes * count, -1),
            encoded_directions,
            self.layers,
            self.density_head,
            self.colour_hidden,
            self.colour_head,
        )
        density = F.softplus(
            density_logit.reshape(scenes, count).float() + self.config.density_bias
        )
        colour = torch.sigmoid(colour_logit.reshape(scenes, count, 3))
        return density, colour.float()

    def proposal_density(self, points: torch.Tensor, code: PlaneCode) -> torch.Tensor:
        """The proposal density ``[S, P]`` at ``points [S, P, 3]``: one interpolated channel."""
        logits = self._read(code.proposal, self._grid(points), self.decoder.layout)
        return F.softplus(logits.squeeze(-1).float() + self.config.density_bias)
