"""Typed, documented configs of the model components (each field's docstring shows in ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from nerfvae.errors import (
    ConfigError,
    check_bounds,
    check_colour,
    check_config_fields,
    check_range,
    field_name,
)
from nerfvae.rendering import RaySamplingConfig


@dataclass
class EncoderConfig:
    """ResNet-style convolutional encoder over each context view (image + Plücker rays)."""

    stage_channels: tuple[int, ...] = (32, 64, 128)
    """Channels of each residual stage; a strided stem halves the input resolution, then every stage
    after the first halves it again."""
    blocks_per_stage: int = 1
    """Residual blocks per stage."""
    lift_heights: int = 4
    """Heights (evenly spread over the scene box's z extent) at which each ground-plane cell's
    centre is projected into the context views to gather their features."""
    lift_oversample: int = 2
    """Features are lifted on a grid this many times finer than the latent grid (a power of 2),
    then strided convolutions bring it to the latent grid, so small objects between cell centres
    are not missed."""

    def check(self, where: str = "encoder") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        check_range(len(self.stage_channels) >= 1, where, "stage_channels", "non-empty", ())
        bounds = {"stage_channels": (1, 4096), "blocks_per_stage": (1, 64)}
        check_bounds(self, where, {**bounds, "lift_heights": (1, 256), "lift_oversample": (1, 16)})
        factor = self.lift_oversample
        check_range(not factor & (factor - 1), where, "lift_oversample", "a power of 2", factor)


@dataclass
class LatentConfig:
    """Shape of the per-scene latent z (always stored as tokens ``[scenes, tokens, channels]``)."""

    layout: Literal["global", "spatial"] = "spatial"
    """``global``: one latent vector per scene; ``spatial``: a grid × grid of latent tokens laid
    over the scene box's ground plane (x–y), each describing the column of the scene above it."""
    channels: int = 32
    """Channels per latent token (the global vector's size when layout is global)."""
    grid: int = 4
    """Tokens per side of the spatial latent grid (for the global layout, the grid over which the
    encoder lifts features before pooling them into one vector)."""

    def check(self, where: str = "latent") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        check_bounds(self, where, {"channels": (1, 4096), "grid": (1, 256)})

    @property
    def num_tokens(self) -> int:
        return 1 if self.layout == "global" else self.grid * self.grid


@dataclass
class SceneFunctionConfig:
    """The shared scene function f(x, d | z) -> (density, colour)."""

    conditioning: Literal["concat", "ain", "attention", "planes"] = "attention"
    """How z enters the MLP: ``concat`` (z joins the input), ``ain`` (per-layer scale and shift from z
    after a normalisation, AIN/FiLM), ``attention`` (points cross-attend to the latent tokens) or
    ``planes`` (z is decoded once per scene by a small CNN into a dense feature volume over the
    scene box; each point reads its features there and a narrow MLP gives density and colour —
    the cheapest per point, and the only one with a proposal density for ``sampling.sampler
    proposal``)."""
    width: int = 128
    """Hidden width of the MLP."""
    depth: int = 4
    """Number of hidden layers of the MLP."""
    skip_layer: int = 2
    """Hidden layer that gets the encoded point again as input (NeRF's skip connection); -1 for none."""
    point_frequencies: int = 6
    """Positional-encoding frequencies for points (normalised to the scene box)."""
    direction_frequencies: int = 2
    """Positional-encoding frequencies for view directions (0 with view_dependent=False)."""
    view_dependent: bool = True
    """Whether colour depends on the view direction."""
    attention_layers: int = 1
    """Cross-attention layers (attention conditioning only)."""
    attention_heads: int = 4
    """Heads per cross-attention layer. With a spatial latent each head also has a learned length
    scale: its attention logits fall off with the squared ground-plane distance between the point
    and the token's cell, so heads range from local to scene-wide lookups."""
    density_bias: float = -1.0
    """Added to the raw density before softplus; negative starts the scene mostly empty."""
    plane_layout: Literal["volume", "triplane"] = "volume"
    """``planes`` only: ``volume`` decodes the latent into a ground-plane map whose channels are
    features at ``plane_height_bins`` heights (read trilinearly; every column of the scene has its
    own features at every height); ``triplane`` decodes a ground-plane map plus two vertical planes
    (EG3D-style, read bilinearly and summed)."""
    plane_upsample: int = 4
    """``planes`` only: the decoded maps have this many times the latent grid's cells per side (a
    power of 2, at least 4). A global latent is first mapped to a 4 × 4 grid."""
    plane_channels: int = 16
    """``planes`` only: feature channels a point reads from the decoded maps."""
    plane_height_bins: int = 16
    """``planes`` only: resolution of the decoded features along the up axis."""
    plane_decoder_channels: int = 64
    """``planes`` only: channels of the per-scene convolutional decoder."""
    latent_hidden: int = 0
    """``concat`` and ``ain`` only: width of a hidden layer (with ReLU) between the flattened latent
    and its per-layer biases or scales and shifts; 0 maps the latent to them directly. A direct map
    from a spatial latent's tokens × channels values is most of those modes' parameters; a narrow
    hidden layer lets them match attention's parameter count (the conditioning ablation)."""

    def check(self, where: str = "scene_function") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range.
        The one home of these checks: :class:`NeRFVAEConfig` runs it, and so do the scene
        functions when built on their own."""
        check_config_fields(self, where)
        bounds = {"width": (1, 4096), "depth": (1, 64), "skip_layer": (-1, 64)}
        bounds |= {"point_frequencies": (0, 32), "direction_frequencies": (0, 32)}
        bounds |= {"attention_layers": (1, 64), "attention_heads": (1, 64)}
        bounds |= {"plane_upsample": (1, 64), "plane_channels": (1, 1024)}
        bounds |= {"plane_height_bins": (1, 1024), "plane_decoder_channels": (1, 4096)}
        check_bounds(self, where, {**bounds, "latent_hidden": (0, 4096)})
        heads = self.attention_heads
        check_range(
            self.conditioning != "attention" or self.width % heads == 0,
            where,
            "width",
            f"divisible by attention_heads ({heads})",
            self.width,
        )
        factor = self.plane_upsample
        check_range(
            factor >= 4 and not factor & (factor - 1),  # checked whatever the conditioning
            where,
            "plane_upsample",
            "a power of 2 and at least 4",
            factor,
        )


@dataclass
class NeRFVAEConfig:
    """NeRF-VAE: encoder, posterior, latent-conditioned scene function and volume rendering."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    scene_function: SceneFunctionConfig = field(default_factory=SceneFunctionConfig)
    sampling: RaySamplingConfig = field(default_factory=RaySamplingConfig)
    iterative_inference_steps: int = 0
    """Learned iterative amortized inference steps T (Marino et al., 2018): a trained network
    updates the encoder's posterior from its context-view ELBO gradient T times, in training and
    at inference; 0 is plain amortized inference. (Not test-time refinement, which is plain Adam
    on the posterior of a trained model: ``--test-time.steps`` of eval, render, export, demo.)"""
    iterative_inference_rays: int = 128
    """Context-view rays per scene used for the ELBO gradient in each iterative inference step."""
    pixel_std: float = 0.1
    """Standard deviation of the Gaussian pixel likelihood (colours in [0, 1]); the trainer may anneal it."""
    scene_min: tuple[float, float, float] = (-1.0, -1.0, -1.0)
    """Lower corner of the scene's bounding box (world units); training copies it from the dataset."""
    scene_max: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Upper corner of the scene's bounding box; rays are sampled only inside this box."""
    up_axis: Literal["x", "y", "z"] = "z"
    """The scene's vertical axis; the spatial latent grid lies on the plane of the other two.
    Training copies it from the dataset's ``world_up``."""
    background: tuple[float, float, float] | None = None
    """Colour (r g b in [0, 1]) seen where a ray leaves the box without hitting anything. Default:
    the dataset's own background (``dataset.json``), black for closed scenes; a colour given here
    overrides it, with a warning when the data says otherwise."""

    def check(self, where: str = "nerfvae") -> None:
        """Raise ConfigError naming the field (``where.section.field``) if a value has the wrong
        type or is out of range; checks every section."""
        check_config_fields(self, where)
        self.encoder.check(field_name(where, "encoder"))
        self.latent.check(field_name(where, "latent"))
        self.scene_function.check(field_name(where, "scene_function"))
        self.sampling.check(field_name(where, "sampling"))
        bounds = {"iterative_inference_steps": (0, 1000), "iterative_inference_rays": (1, 2**20)}
        check_bounds(self, where, bounds)
        check_range(self.pixel_std > 0, where, "pixel_std", "> 0", self.pixel_std)
        check_range(
            all(low < high for low, high in zip(self.scene_min, self.scene_max)),
            where,
            "scene_max",
            f"above scene_min {self.scene_min} on every axis",
            self.scene_max,
        )
        if self.background is not None:
            check_colour(self.background, field_name(where, "background"), ConfigError)


def ground_plane_axes(up_axis: str) -> tuple[int, int, int]:
    """``(first, second, up)`` axis indices: the latent grid's plane (in x, y, z order) and up."""
    up = "xyz".index(up_axis)
    first, second = (axis for axis in range(3) if axis != up)
    return first, second, up
