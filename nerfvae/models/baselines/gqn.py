"""GQN-style baseline: a conditional latent-variable model that renders with convolutions.

In the spirit of the Generative Query Network (Eslami et al., Science 2018), written for the
NeRF-VAE model contract (:class:`nerfvae.models.base.SceneModel`):

* **representation network** (GQN's "tower"): each context view's image goes through strided
  convolutions; at quarter resolution the view's camera code is broadcast over the feature map and
  concatenated (GQN broadcasts its 7-d viewpoint at 16×16); more convolutions give a per-view code
  ``r_v [channels, grid, grid]``. The codes are **summed** over views, as in GQN, so any number of
  views in any order gives one scene representation ``r``.
* **latent** ``z`` is a spatial map ``[latent_channels, grid, grid]`` (stored as ``grid²`` tokens)
  with a diagonal-Gaussian posterior ``q(z | context)`` computed from ``r`` and the prior
  ``N(0, I)``, exactly like NeRF-VAE's, so KL and ELBO (bits/dim) are directly comparable. With
  ``latent_layout global`` the per-view codes are pooled to one vector (GQN's "pool"
  representation) and ``z`` is one token ``[1, latent_channels]``.
* **generator**: a convolutional VAE decoder (instead of GQN's ConvDRAW: no autoregressive steps,
  one latent) conditioned on the *query* camera, whose code is broadcast spatially and concatenated
  at every resolution; nearest-neighbour upsampling stages take ``grid`` to ``grid · 2^stages`` and a
  bilinear resize gives any requested ``H × W``. A global latent enters through a fully connected
  layer of ``[z, camera code]`` to the ``grid × grid`` map: where things are in the query view is
  then any function of the latent and the camera, not something a stack of 3 × 3 convolutions has
  to move across a map laid out in the context views' image coordinates.

Unlike GQN, the latent here depends on the context views only (GQN's posterior also sees the query
image and its prior is conditioned on ``r``); that makes it a NeRF-VAE with a convolutional renderer
in place of the NeRF, which is the comparison the camera-generalisation experiment needs: same
encoder input, same latent prior and ELBO, different decoder.

The camera code ``[16]`` is: camera centre normalised to the scene box (3), the camera-to-world
rotation (9: right, down, forward axes in world coordinates), ``fx/W, fy/H`` and the principal point
offset from the image centre ``cx/W - 1/2, cy/H - 1/2`` (4). It carries the full pose, unlike GQN's
yaw/pitch, so scenes with any up axis work.

There is no per-ray rendering and no depth: GQN fulfils the base :class:`SceneModel` contract but
not :class:`nerfvae.models.ray_model.RaySceneModel`'s (no ``render`` of rays, no field, no
test-time refinement), and :meth:`GQN.render_views` returns ``depth`` and ``opacity`` filled with
NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nerfvae.errors import check_bounds, check_config_fields, check_range
from nerfvae.models.base import Batch
from nerfvae.models.encoder import ResidualBlock, group_norm
from nerfvae.models.latent import DiagonalGaussian
from nerfvae.models.objective import GaussianELBOModel, TargetReconstruction

CAMERA_CODE_DIMS = 16


@dataclass
class GQNConfig:
    """GQN-style baseline: representation tower, spatial Gaussian latent, convolutional generator.

    The defaults match the ``small`` NeRF-VAE preset in size: about 430k parameters (NeRF-VAE
    small: 360k) and a 512-dimensional latent (8 × 8 × 8; NeRF-VAE small: 4 × 4 × 32)."""

    tower_channels: tuple[int, int] = (32, 64)
    """Channels of the two strided stages of the representation tower (to 1/2 and 1/4 resolution)."""
    representation_channels: int = 64
    """Channels of each per-view code r_v (and of their sum r)."""
    latent_channels: int = 8
    """Channels of the latent map z."""
    latent_grid: int = 8
    """Side of the latent map (z has latent_grid² tokens); with a global latent, the side of the
    map the generator starts from."""
    latent_layout: str = "spatial"
    """``spatial``: z is a latent_grid × latent_grid map of latent_channels; ``global``: z is one
    vector of latent_channels, read by a fully connected layer together with the query camera."""
    generator_channels: int = 64
    """Channels of the generator at the latent resolution; halved at every upsampling stage."""
    generator_blocks: int = 2
    """Residual blocks of the generator at the latent resolution."""
    upsample_stages: int = 3
    """×2 upsampling stages of the generator (8 → 64 with the defaults); the output is resized
    bilinearly to the requested image size."""
    pixel_std: float = 0.1
    """Standard deviation of the Gaussian pixel likelihood; the trainer may anneal it."""
    target_views_per_scene: int = 1
    """Whole target views per scene per training step (GQN: one query per scene)."""
    max_views_per_decode: int = 64
    """Views decoded at once by render_views (bounds evaluation memory)."""

    @property
    def latent_side(self) -> int:
        """Side of the latent as a map: ``latent_grid`` (spatial), 1 (global); z has its square
        of tokens."""
        return self.latent_grid if self.latent_layout == "spatial" else 1

    def check(self, where: str = "gqn") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        check_range(
            len(self.tower_channels) == 2,
            where,
            "tower_channels",
            "two numbers",
            self.tower_channels,
        )
        sizes = {"tower_channels": (1, 4096), "representation_channels": (1, 4096)}
        sizes |= {"latent_channels": (1, 4096), "latent_grid": (1, 256)}
        sizes |= {"generator_channels": (1, 4096), "generator_blocks": (0, 64)}
        sizes |= {"upsample_stages": (0, 8), "target_views_per_scene": (1, 1024)}
        check_bounds(self, where, sizes | {"max_views_per_decode": (1, 65536)})
        check_range(
            self.latent_layout in ("spatial", "global"),
            where,
            "latent_layout",
            "spatial or global",
            self.latent_layout,
        )
        check_range(
            math.isfinite(self.pixel_std) and self.pixel_std > 0,
            where,
            "pixel_std",
            "a finite number > 0",
            self.pixel_std,
        )


def camera_code(
    K: torch.Tensor,
    c2w: torch.Tensor,
    height: int,
    width: int,
    scene_min: torch.Tensor,
    scene_max: torch.Tensor,
) -> torch.Tensor:
    """Camera codes ``[..., 16]`` of cameras ``K [..., 3, 3]``, ``c2w [..., 4, 4]`` (see module doc)."""
    centre = (scene_min + scene_max) / 2
    half_size = (scene_max - scene_min).clamp_min(1e-6) / 2
    position = (c2w[..., :3, 3] - centre) / half_size
    rotation = c2w[..., :3, :3].transpose(-1, -2).flatten(-2)  # rows = right, down, forward axes
    intrinsics = torch.stack(
        [
            K[..., 0, 0] / width,
            K[..., 1, 1] / height,
            K[..., 0, 2] / width - 0.5,
            K[..., 1, 2] / height - 0.5,
        ],
        dim=-1,
    )
    return torch.cat([position, rotation, intrinsics], dim=-1)


def _broadcast(code: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[B, D] -> [B, D, height, width]``."""
    return code[:, :, None, None].expand(*code.shape, height, width)


class RepresentationNetwork(nn.Module):
    """Per-view tower: ``image [B, 3, H, W]`` + camera code ``[B, 16]`` -> ``r_v [B, R, g, g]``."""

    def __init__(self, config: GQNConfig) -> None:
        super().__init__()
        first, second = config.tower_channels
        self.stem = nn.Conv2d(3, first, 4, stride=2, padding=1)
        self.down = ResidualBlock(first, second, stride=2)
        self.merge = nn.Conv2d(second + CAMERA_CODE_DIMS, second, 3, padding=1)
        self.block = ResidualBlock(second, config.representation_channels, stride=1)
        self.pool = nn.AdaptiveAvgPool2d(config.latent_side)

    def forward(self, images: torch.Tensor, cameras: torch.Tensor) -> torch.Tensor:
        features = self.down(torch.relu(self.stem(images)))
        features = torch.cat([features, _broadcast(cameras, *features.shape[-2:])], dim=1)
        features = self.block(torch.relu(self.merge(features)))
        return self.pool(features)


class GenerationNetwork(nn.Module):
    """Convolutional decoder: ``z [B, Z, g, g]`` (a global latent: ``[B, Z, 1, 1]``) + query camera
    code ``[B, 16]`` -> colour logits ``[B, 3, H, W]``."""

    def __init__(self, config: GQNConfig) -> None:
        super().__init__()
        channels = config.generator_channels
        self.grid = config.latent_grid
        self.global_latent = config.latent_layout == "global"
        if self.global_latent:
            self.input = nn.Linear(
                config.latent_channels + CAMERA_CODE_DIMS, channels * self.grid * self.grid
            )
        else:
            self.input = nn.Conv2d(
                config.latent_channels + CAMERA_CODE_DIMS, channels, 3, padding=1
            )
        self.blocks = nn.Sequential(
            *[ResidualBlock(channels, channels, 1) for _ in range(config.generator_blocks)]
        )
        self.merges = nn.ModuleList()
        self.refines = nn.ModuleList()
        for _ in range(config.upsample_stages):
            narrower = max(16, channels // 2)
            self.merges.append(nn.Conv2d(channels + CAMERA_CODE_DIMS, narrower, 3, padding=1))
            self.refines.append(ResidualBlock(narrower, narrower, 1))
            channels = narrower
        self.out_norm = group_norm(channels)
        self.out = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(
        self, latent_map: torch.Tensor, cameras: torch.Tensor, height: int, width: int
    ) -> torch.Tensor:
        if self.global_latent:
            features = self.input(torch.cat([latent_map.flatten(1), cameras], dim=1))
            features = features.reshape(features.shape[0], -1, self.grid, self.grid)
        else:
            grid = latent_map.shape[-1]
            features = self.input(torch.cat([latent_map, _broadcast(cameras, grid, grid)], dim=1))
        features = self.blocks(features)
        for merge, refine in zip(self.merges, self.refines):
            features = F.interpolate(features, scale_factor=2.0, mode="nearest")
            camera_map = _broadcast(cameras, *features.shape[-2:])
            features = refine(merge(torch.cat([features, camera_map], dim=1)))
        logits = self.out(torch.relu(self.out_norm(features)))
        if logits.shape[-2:] != (height, width):
            logits = F.interpolate(
                logits, size=(height, width), mode="bilinear", align_corners=False
            )
        return logits


class GQN(GaussianELBOModel):
    """GQN-style model under the NeRF-VAE contract (``infer``, ``prior``, ``render_views``, ``loss``)."""

    def __init__(
        self,
        config: GQNConfig,
        scene_min: tuple[float, float, float] = (-1.0, -1.0, -1.0),
        scene_max: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("scene_min", torch.tensor(scene_min, dtype=torch.float32))
        self.register_buffer("scene_max", torch.tensor(scene_max, dtype=torch.float32))
        self.representation = RepresentationNetwork(config)
        channels = config.representation_channels
        self.posterior_norm = group_norm(channels)
        kernel = 3 if config.latent_layout == "spatial" else 1
        self.posterior_head = nn.Conv2d(
            channels, 2 * config.latent_channels, kernel, padding=kernel // 2
        )
        # Start at the prior (mean 0, std 1), as NeRF-VAE's encoder does.
        nn.init.zeros_(self.posterior_head.weight)
        nn.init.zeros_(self.posterior_head.bias)
        self.generation = GenerationNetwork(config)
        self.mixed_precision = False
        """Unused (the trainer sets it on every model); GQN runs in float32."""

    @property
    def whole_target_views(self) -> int:
        """The trainer must give whole target views, not random rays: the generator renders an
        image at a time (``config.target_views_per_scene`` per scene)."""
        return self.config.target_views_per_scene

    @property
    def num_tokens(self) -> int:
        return self.config.latent_side**2

    def _camera_code(self, K: torch.Tensor, c2w: torch.Tensor, height: int, width: int):
        return camera_code(K, c2w, height, width, self.scene_min, self.scene_max)

    # -- inference -------------------------------------------------------------------------
    def prior(self, scenes: int) -> DiagonalGaussian:
        shape = (scenes, self.num_tokens, self.config.latent_channels)
        zeros = torch.zeros(shape, device=self.scene_min.device)
        return DiagonalGaussian(zeros, zeros.clone())

    def representation_of(
        self, images: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor
    ) -> torch.Tensor:
        """Scene representation ``r [S, R, g, g]``: the sum over views of the per-view codes of
        ``images [S, V, H, W, 3]`` with cameras ``K [S, V, 3, 3]``, ``c2w [S, V, 4, 4]``."""
        scenes, views, height, width, _ = images.shape
        pixels = (images * 2.0 - 1.0).reshape(scenes * views, height, width, 3).permute(0, 3, 1, 2)
        cameras = self._camera_code(K, c2w, height, width).reshape(scenes * views, -1)
        per_view = self.representation(pixels, cameras)
        return per_view.reshape(scenes, views, *per_view.shape[1:]).sum(dim=1)

    def infer(self, context_images, context_K, context_c2w, generator=None) -> DiagonalGaussian:
        """Posterior over ``z [S, grid², latent_channels]`` from context views ``[S, V, H, W, 3]``."""
        representation = self.representation_of(context_images, context_K, context_c2w)
        raw = self.posterior_head(torch.relu(self.posterior_norm(representation)))
        return DiagonalGaussian.from_raw(raw.flatten(2).transpose(1, 2))

    # -- rendering -------------------------------------------------------------------------
    def decode(
        self, latent: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor, height: int, width: int
    ) -> torch.Tensor:
        """Colours ``[S, V, H, W, 3]`` in [0, 1] of views ``K [S, V, 3, 3]``, ``c2w [S, V, 4, 4]``
        of scenes with latents ``[S, grid², C]`` (with gradients)."""
        scenes, views = c2w.shape[:2]
        grid = self.config.latent_side
        latent_map = latent.transpose(1, 2).reshape(scenes, -1, grid, grid)
        latent_map = latent_map.unsqueeze(1).expand(scenes, views, *latent_map.shape[1:])
        cameras = self._camera_code(K, c2w, height, width)
        logits = self.generation(
            latent_map.reshape(scenes * views, *latent_map.shape[2:]),
            cameras.reshape(scenes * views, -1),
            height,
            width,
        )
        colour = torch.sigmoid(logits).permute(0, 2, 3, 1)
        return colour.reshape(scenes, views, height, width, 3)

    @torch.no_grad()
    def render_views(
        self,
        latent: torch.Tensor,
        K: torch.Tensor,
        c2w: torch.Tensor,
        height: int,
        width: int,
        chunk_rays: int = 4096,
    ) -> dict[str, torch.Tensor]:
        """``colour [S, V, H, W, 3]``; ``depth`` and ``opacity [S, V, H, W]`` are NaN (a
        convolutional generator has neither). ``chunk_rays`` is ignored: views are decoded
        ``max_views_per_decode`` at a time."""
        scenes, views = c2w.shape[:2]
        per_chunk = max(1, self.config.max_views_per_decode // max(1, scenes))
        colours = [
            self.decode(
                latent,
                K[:, start : start + per_chunk],
                c2w[:, start : start + per_chunk],
                height,
                width,
            )
            for start in range(0, views, per_chunk)
        ]
        colour = torch.cat(colours, dim=1)
        missing = torch.full(colour.shape[:-1], math.nan, device=colour.device)
        return {"colour": colour, "depth": missing, "opacity": missing.clone()}

    # -- objective -------------------------------------------------------------------------
    def reconstruct_targets(
        self, batch: Batch, latent: torch.Tensor, generator: torch.Generator | None
    ) -> TargetReconstruction:
        """Decode whole target views (the ELBO of :meth:`loss` on them; same terms and metrics as
        NeRF-VAE's).

        ``batch``: ``target_images [S, T, H, W, 3]``, ``target_K [S, T, 3, 3]``,
        ``target_c2w [S, T, 4, 4]``, ``target_object_mask [S, T, H, W]`` (optional). The default
        ``target_dims`` is the given target views' size.
        """
        if "target_images" not in batch:
            raise ValueError(
                "the GQN baseline trains on whole target views: the batch needs target_images, "
                "target_K and target_c2w (nerfvae.data.image_batches), not target rays"
            )
        target = batch["target_images"]
        height, width = target.shape[2:4]
        return TargetReconstruction(
            colour=self.decode(latent, batch["target_K"], batch["target_c2w"], height, width),
            target=target,
            object_mask=batch.get("target_object_mask"),
            default_target_dims=int(target[0].numel()),
        )
