"""The scene function f(x, d | z) -> (density, colour), shared by all scenes.

Three ways to condition the MLP on the latent tokens ``z [scenes, tokens, channels]``:

* ``concat`` — z joins the encoded point at the input (and at the skip layer). Because z is the same
  for every point of a scene, its contribution ``W_z z`` is computed once per scene and added as a
  per-scene bias instead of concatenating z to every point (same function, far fewer FLOPs).
* ``ain`` — adaptive instance normalisation / FiLM: each hidden layer's pre-activation is normalised
  per point, then scaled and shifted by ``(1 + γ_l(z), β_l(z))``.
* ``attention`` — after the first hidden layer (and the skip layer, with more layers), each point's
  features query the latent tokens with multi-head cross-attention (the paper's attentive scene
  function). A spatial latent's tokens are cells of a ground-plane grid over the scene box (see
  :mod:`nerfvae.models.encoder`); attention knows where they are (see :class:`CrossAttention`).

Points are normalised to ``[-1, 1]`` inside the scene box before positional encoding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nerfvae.errors import ConfigError
from nerfvae.models.concat_linear import concat_linear
from nerfvae.models.config import LatentConfig, SceneFunctionConfig, ground_plane_axes
from nerfvae.models.encoding import PositionalEncoding

ATTENTION_BLOCK_ELEMENTS = 2**22
"""Most attention logits (scenes x heads x points x tokens) one block computes when rendering
(16 MB in float32). Smaller blocks were also faster: ``benchmarks/attention_render.py``."""


def written_out_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """``softmax(q·kᵀ/√d + bias)·v`` for ``query [S, H, P, D]``, ``key, value [S, H, T, D]`` and a
    float32 ``bias [S, H, P, T]``, logits and softmax in float32. Autograd stores the ``[S, H, P,
    T]`` weights; the bias gets its gradient from them."""
    logits = (query @ key.transpose(-1, -2)).float() * query.shape[-1] ** -0.5
    weights = torch.softmax(logits + bias, dim=-1)
    return weights.to(value.dtype) @ value


def fused_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """The same function through ``scaled_dot_product_attention`` with ``bias`` as its mask (cast
    to the query's dtype): one kernel that never stores the softmax weights."""
    return F.scaled_dot_product_attention(query, key, value, attn_mask=bias.to(query.dtype))


class CrossAttention(nn.Module):
    """Points ``[S, P, width]`` attend to latent tokens ``[S, T, channels]``; residual, pre-norm.

    With a spatial latent (``cell_centres`` given) the tokens are cells of a ground-plane grid: each
    token gets an embedding of its cell centre (so keys say where they are), and each head adds
    ``-d² / (2 σ_h²)`` to its logits, ``d`` the ground-plane distance between the point and the
    cell centre and ``σ_h`` a learned per-head length scale initialised from half a cell up to
    scene-wide. That locality prior is what makes "the token above this point" easy to find.
    """

    def __init__(
        self, width: int, latent_channels: int, heads: int, cell_centres: torch.Tensor | None
    ) -> None:
        super().__init__()
        self.heads = heads  # width % heads == 0: SceneFunctionConfig.check
        self.query_norm = nn.LayerNorm(width)
        self.token_norm = nn.LayerNorm(latent_channels)
        self.query = nn.Linear(width, width, bias=False)
        self.key_value = nn.Linear(latent_channels, 2 * width, bias=False)
        self.out = nn.Linear(width, width)
        self.spatial = cell_centres is not None
        if cell_centres is not None:
            # cell_centres [cells]: the grid's centres along each axis, in [-1, 1]; token
            # i * cells + j is at (x, y) = (centres[j], centres[i])
            cells = cell_centres.shape[0]
            self.register_buffer("cell_centres", cell_centres, persistent=False)
            grid_y, grid_x = torch.meshgrid(cell_centres, cell_centres, indexing="ij")
            token_xy = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)
            self.register_buffer("token_xy", token_xy, persistent=False)  # [T, 2]
            self.position_encoding = PositionalEncoding(2, 3)
            self.token_position = nn.Linear(self.position_encoding.output_dim, latent_channels)
            initial = (1.0 / cells) * 2.0 ** torch.arange(heads, dtype=torch.float32)
            self.log_length_scale = nn.Parameter(initial.log())

    def keys_values(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-scene keys and values ``[S, heads, T, width / heads]``, computed once per scene."""
        scenes, num_tokens, _ = tokens.shape
        if self.spatial:
            encoded = self.position_encoding(self.token_xy).to(self.token_position.weight.dtype)
            position = self.token_position(encoded)
            tokens = tokens + position.to(tokens.dtype)
        key, value = self.key_value(self.token_norm(tokens)).chunk(2, -1)
        split = lambda t: t.reshape(scenes, num_tokens, self.heads, -1).transpose(1, 2)
        return split(key), split(value)

    def forward(
        self,
        features: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        point_xy: torch.Tensor,
    ) -> torch.Tensor:
        """``features [S, P, width]``, keys/values from :meth:`keys_values`, ``point_xy [S, P, 2]``
        the points' ground-plane coordinates normalised like the tokens'."""
        scenes, points, width = features.shape
        query = self.query(self.query_norm(features))
        query = query.reshape(scenes, points, self.heads, -1).transpose(1, 2)
        if not self.spatial:
            attended = F.scaled_dot_product_attention(query, key, value)
        elif torch.is_grad_enabled():
            attended = self._spatial_attention(query, key, value, point_xy)
        else:
            # Rendering: the logits are [S, H, P, T], 6 GB for a 16x16 grid and 8192-ray chunks of
            # 4 scenes; attend in blocks of points so memory stays bounded whatever the caller's
            # chunk size.
            block = max(1, ATTENTION_BLOCK_ELEMENTS // (scenes * self.heads * key.shape[-2]))
            attended = torch.cat(
                [
                    self._spatial_attention(
                        query[:, :, start : start + block],
                        key,
                        value,
                        point_xy[:, start : start + block],
                    )
                    for start in range(0, points, block)
                ],
                dim=2,
            )
        attended = attended.transpose(1, 2).reshape(scenes, points, width)
        return features + self.out(attended)

    def _spatial_attention(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, point_xy: torch.Tensor
    ) -> torch.Tensor:
        """``query [S, H, P, D]`` attends to ``key, value [S, H, T, D]`` with the distance bias of
        ``point_xy [S, P, 2]``; returns ``[S, H, P, D]``."""
        # squared ground-plane distance to every cell centre, [S, P, T], from the per-axis
        # distances (the grid is regular), so nothing [S, P, T, 2]-sized is materialised
        axis_distance2 = (point_xy.float().unsqueeze(-1) - self.cell_centres).square()
        dx2, dy2 = axis_distance2[..., 0, :], axis_distance2[..., 1, :]  # [S, P, cells]
        distance2 = (dy2.unsqueeze(-1) + dx2.unsqueeze(-2)).flatten(-2)
        inverse_variance = (-2.0 * self.log_length_scale).exp().view(-1, 1, 1) * 0.5
        bias = distance2.unsqueeze(1) * -inverse_variance  # [S, H, P, T]
        if bias.requires_grad:
            # training the length scales: the mask needs a gradient, which the fused kernel would
            # materialise at [S, H, P, T] too; it is level in bfloat16 and 1.24x faster on the
            # attention alone in float32 (benchmarks/attention_kernel.py, docs/training.md), so
            # training keeps the written-out form and its numerics
            return written_out_attention(query, key, value, bias)
        # a mask without gradient (rendering; test-time refinement, whose weights are frozen): the
        # fused kernel never stores the softmax weights, 2-3x faster and far less memory
        return fused_attention(query, key, value, bias)


class SceneFunction(nn.Module):
    """Latent-conditioned radiance field (``concat``, ``ain`` or ``attention`` conditioning).

    ``forward(points [S, P, 3], directions [S, P, 3], decode(latent [S, T, C])) -> density [S, P],
    colour [S, P, 3]``: softplus density, sigmoid colour. ``decode`` is the identity here (the
    per-scene work of these conditionings is cheap next to their per-point MLP); the ``planes``
    scene function (:mod:`nerfvae.models.planes`) shares this interface.
    """

    has_proposal = False
    """No proposal density: use ``sampling.sampler hierarchical``."""

    def __init__(
        self,
        config: SceneFunctionConfig,
        latent: LatentConfig,
        scene_min: tuple[float, float, float],
        scene_max: tuple[float, float, float],
        up_axis: str = "z",
    ) -> None:
        super().__init__()
        config.check()
        latent.check()
        self.config = config
        self.mode = config.conditioning
        self.plane_axes = list(ground_plane_axes(up_axis)[:2])
        if self.mode not in ("concat", "ain", "attention"):
            raise ConfigError(f"unknown conditioning {self.mode!r}")
        scene_min_t = torch.tensor(scene_min, dtype=torch.float32)
        scene_max_t = torch.tensor(scene_max, dtype=torch.float32)
        self.register_buffer("box_centre", (scene_min_t + scene_max_t) / 2)
        self.register_buffer("box_half_size", (scene_max_t - scene_min_t).clamp_min(1e-6) / 2)
        self.point_encoding = PositionalEncoding(3, config.point_frequencies)
        width, latent_size = config.width, latent.channels * latent.num_tokens
        input_dim = self.point_encoding.output_dim
        self.layers = nn.ModuleList()
        for index in range(config.depth):
            in_dim = input_dim if index == 0 else width
            if index == config.skip_layer and index > 0:
                in_dim += input_dim
            self.layers.append(nn.Linear(in_dim, width))
        if self.mode in ("concat", "ain") and config.latent_hidden > 0:
            self.latent_mapping = nn.Sequential(
                nn.Linear(latent_size, config.latent_hidden), nn.ReLU()
            )
            latent_size = config.latent_hidden
        else:
            self.latent_mapping = nn.Identity()
        if self.mode == "concat":
            # W_z z for the input layer and the skip layer, as a per-scene bias.
            self.latent_to_bias = nn.ModuleDict(
                {str(i): nn.Linear(latent_size, width, bias=False) for i in self._latent_layers()}
            )
        elif self.mode == "ain":
            self.latent_to_film = nn.Linear(latent_size, 2 * width * config.depth)
            nn.init.zeros_(self.latent_to_film.weight)
            nn.init.zeros_(self.latent_to_film.bias)
        else:
            cell_centres = None
            if latent.layout == "spatial":
                # cell centres in the normalised box coordinates of the ground plane (row = its
                # second axis), the token order of the encoder
                centres = (torch.arange(latent.grid, dtype=torch.float32) + 0.5) / latent.grid
                cell_centres = centres * 2.0 - 1.0
            self.attention = nn.ModuleDict(
                {
                    str(i): CrossAttention(
                        width, latent.channels, config.attention_heads, cell_centres
                    )
                    for i in self._attention_after_layers()
                }
            )
        self.density_head = nn.Linear(width, 1)
        self.feature_head = nn.Linear(width, width)
        self.direction_encoding = (
            PositionalEncoding(3, config.direction_frequencies) if config.view_dependent else None
        )
        colour_in = width + (self.direction_encoding.output_dim if self.direction_encoding else 0)
        self.colour_hidden = nn.Linear(colour_in, width // 2)
        self.colour_head = nn.Linear(width // 2, 3)

    def _latent_layers(self) -> list[int]:
        skip = self.config.skip_layer
        return [0] + ([skip] if 0 < skip < self.config.depth else [])

    def _attention_after_layers(self) -> list[int]:
        # Attention after the first `attention_layers` hidden layers (at most one per layer).
        count = max(1, self.config.attention_layers)
        return [min(i, self.config.depth - 1) for i in range(count)]

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """The per-scene input of :meth:`forward`: the latent tokens ``[S, T, C]`` themselves."""
        return latent

    def normalise_points(self, points: torch.Tensor) -> torch.Tensor:
        return (points - self.box_centre) / self.box_half_size

    def forward(
        self, points: torch.Tensor, directions: torch.Tensor, latent: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Density ``[S, P]`` and colour ``[S, P, 3]`` at points ``[S, P, 3]`` seen along
        directions ``[S, P, 3]`` (unit), for scenes with latents ``[S, T, C]``."""
        # Encodings are computed in float32 (phases of high frequencies need it), then cast to the
        # weights' dtype: a no-op under autocast, bfloat16 for the inference copy (see NeRFVAE).
        dtype = self.layers[0].weight.dtype
        normalised = self.normalise_points(points.float())
        encoded = self.point_encoding(normalised).to(dtype)
        latent = latent.to(dtype)
        flat_latent = self.latent_mapping(latent.flatten(1))  # [S, T*C] (or [S, latent_hidden])
        film = None
        if self.mode == "ain":
            film = self.latent_to_film(flat_latent).unsqueeze(1).chunk(2 * self.config.depth, -1)
        attention_inputs = {}
        if self.mode == "attention":
            attention_inputs = {k: block.keys_values(latent) for k, block in self.attention.items()}
        hidden = encoded
        for index, layer in enumerate(self.layers):
            if index == self.config.skip_layer and index > 0:
                hidden = concat_linear(layer, (hidden, encoded))
            else:
                hidden = layer(hidden)
            if self.mode == "concat" and str(index) in self.latent_to_bias:
                hidden = hidden + self.latent_to_bias[str(index)](flat_latent).unsqueeze(1)
            if film is not None:
                scale, shift = film[2 * index], film[2 * index + 1]
                # one fused multiply-add instead of a multiply and an add over all points
                normalised = F.layer_norm(hidden, hidden.shape[-1:])
                hidden = torch.addcmul(shift, normalised, 1.0 + scale)
            hidden = torch.relu(hidden)
            if self.mode == "attention" and str(index) in self.attention:
                key, value = attention_inputs[str(index)]
                hidden = self.attention[str(index)](
                    hidden, key, value, normalised[..., self.plane_axes]
                )
        raw_density = self.density_head(hidden).squeeze(-1)
        density = F.softplus(raw_density.float() + self.config.density_bias)
        colour_inputs = [self.feature_head(hidden)]
        if self.direction_encoding is not None:
            colour_inputs.append(self.direction_encoding(directions.float()).to(hidden.dtype))
        colour_hidden = torch.relu(concat_linear(self.colour_hidden, colour_inputs))
        colour = torch.sigmoid(self.colour_head(colour_hidden))
        return density, colour.float()
