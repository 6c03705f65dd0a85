"""A denoising diffusion model over the scene latent ``z [T, C]``: a learned prior for sampling.

NeRF-VAE's prior N(0, I) is not where trained posteriors lie, so its samples decode to fog. As in
two-stage latent generative models (GAUDI, Bautista et al., 2022; SSDNeRF, Chen et al., 2023),
a small DDPM (Ho et al., 2020) fitted after training to the training scenes' posteriors samples
latents the decoder has seen. It is trained with the simple ε- or v-prediction loss on a cosine
noise schedule (Nichol & Dhariwal, 2021), sampled with deterministic DDIM (Song et al., 2021), and
scores a latent with the discrete-time variational bound on −log p(z), so a held-out ELBO can use
it in place of N(0, I). With a guide (an early copy of the denoiser's averaged weights), sampling
can use autoguidance (Karras et al., 2024).

The denoiser follows the latent's layout: a spatial latent (T a perfect square > 1, token
``i * grid + j`` at row i, column j) is a ``[C, grid, grid]`` image for a small convolutional
ResNet; any other latent (the global layout's single token) is one flat vector for an MLP.

Pure torch: fitting, files and progress live in :mod:`nerfvae.evaluation.learned_prior`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nerfvae.errors import check_bounds, check_config_fields, check_range
from nerfvae.models.encoder import group_norm


@dataclass(frozen=True)
class LatentDiffusionConfig:
    """Size, noise schedule and sampler of the diffusion model over latents."""

    width: int = 64
    """Channels of the convolutional denoiser (spatial latents); the MLP denoiser of other latents
    is 4 × this wide."""
    blocks: int = 4
    """Residual blocks of the denoiser (two 3×3 convolutions or two linear layers each)."""
    attention: bool = False
    """Add one self-attention layer over the grid cells after the middle block (spatial latents
    only): every cell sees the whole room at once instead of through stacked convolutions."""
    timesteps: int = 1000
    """Noise levels of the training process (cosine schedule); the NLL bound sums over them."""
    sampling_steps: int = 50
    """Denoising steps of the DDIM sampler (deterministic; fewer is faster and coarser)."""
    ema_decay: float = 0.999
    """Decay of the exponential moving average of the weights that sampling uses (warmed up as
    min(decay, (1 + step) / (10 + step)), so short fits average over their own steps)."""
    prediction: Literal["epsilon", "v"] = "v"
    """What the denoiser predicts: the noise ε, or v = √ᾱ ε − √(1 − ᾱ) z (Salimans & Ho, 2022),
    which stays well scaled at the noisiest steps where the cosine schedule has ᾱ ≈ 0."""
    guidance: float = 2.0
    """Autoguidance weight w of the sampler (Karras et al., 2024, "Guiding a diffusion model with
    a bad version of itself"): each step uses guide + w · (denoiser − guide), where the guide is
    the same denoiser less trained. Where the two disagree most, between the data's modes (a
    half-formed object), the extrapolation pushes samples towards the modes: on the shipped model
    it halves the Fréchet distance of samples to real views (docs/evaluation.md). 1 samples the
    denoiser alone; above 1 the model carries a guide, which the fit takes
    (`LearnedPriorFit.guide_steps`). The NLL bound scores the denoiser alone."""

    def check(self, where: str = "diffusion") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        check_bounds(self, where, {"width": (8, 4096), "blocks": (1, 64)})
        check_bounds(self, where, {"timesteps": (2, 100000), "sampling_steps": (1, 100000)})
        check_range(
            self.sampling_steps <= self.timesteps,
            where,
            "sampling_steps",
            f"at most timesteps ({self.timesteps})",
            self.sampling_steps,
        )
        check_range(0.0 <= self.ema_decay < 1.0, where, "ema_decay", "in [0, 1)", self.ema_decay)
        weight = self.guidance
        check_range(1.0 <= weight <= 100.0, where, "guidance", "in [1, 100]", weight)

    @property
    def guided(self) -> bool:
        """Whether the model carries a guide denoiser (guidance above 1)."""
        return self.guidance > 1.0


def cosine_alpha_bar(timesteps: int, offset: float = 0.008) -> torch.Tensor:
    """ᾱ_t for t = 0..timesteps, ``[timesteps + 1]`` float64, of the cosine schedule; ᾱ_0 = 1.
    Each β_t = 1 − ᾱ_t / ᾱ_{t−1} is clipped at 0.999 so the last steps stay invertible."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    curve = torch.cos((steps + offset) / (1 + offset) * math.pi / 2).square()
    betas = (1 - curve[1:] / curve[:-1]).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``[N, dim]`` of integer timesteps ``[N]`` (Vaswani et al.)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * frequencies[None]
    embedding = torch.cat([angles.sin(), angles.cos()], dim=1)
    return F.pad(embedding, (0, dim - 2 * half))


class _ConvBlock(nn.Module):
    """Pre-activation residual block with the time embedding as FiLM between its convolutions."""

    def __init__(self, width: int, embedding: int) -> None:
        super().__init__()
        self.norm_in = group_norm(width)
        self.conv_in = nn.Conv2d(width, width, 3, padding=1)
        self.film = nn.Linear(embedding, 2 * width)
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv2d(width, width, 3, padding=1)
        # Zero-initialised residual: each block starts as the identity.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(F.silu(self.norm_in(x)))
        scale, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
        h = self.norm_out(h) * (1 + scale) + shift
        return x + self.conv_out(F.silu(h))


class _GridAttention(nn.Module):
    """Multi-head self-attention over the cells of ``[N, width, g, g]``, residual."""

    def __init__(self, width: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads if width % heads == 0 else 1
        self.norm = group_norm(width)
        self.qkv = nn.Conv2d(width, 3 * width, 1)
        self.out = nn.Conv2d(width, width, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count, width, rows, cols = x.shape
        qkv = self.qkv(self.norm(x)).view(count, 3, self.heads, width // self.heads, rows * cols)
        query, key, value = qkv.transpose(-1, -2).unbind(1)  # each [N, heads, cells, head_dim]
        attended = F.scaled_dot_product_attention(query, key, value)
        attended = attended.transpose(-1, -2).reshape(count, width, rows, cols)
        return x + self.out(attended)


class ConvDenoiser(nn.Module):
    """Denoiser of a spatial latent: ``[N, T, C]`` noisy latents and timesteps ``[N]`` ->
    prediction ``[N, T, C]``, as a ResNet over the ``[C, grid, grid]`` image of the tokens."""

    def __init__(self, channels: int, grid: int, config: LatentDiffusionConfig) -> None:
        super().__init__()
        width, embedding = config.width, 2 * config.width
        self.grid = grid
        self.time = nn.Sequential(
            nn.Linear(width, embedding), nn.SiLU(), nn.Linear(embedding, embedding)
        )
        self.input = nn.Conv2d(channels, width, 3, padding=1)
        # The grid is world-aligned (a cell is always the same place in the room: walls at the
        # border, objects near the centre), so each cell gets a learned position code. Zero
        # padding of the convolutions also tells the border cells where they are.
        self.position = nn.Parameter(torch.zeros(1, width, grid, grid))
        self.blocks = nn.ModuleList(_ConvBlock(width, embedding) for _ in range(config.blocks))
        self.attention = _GridAttention(width) if config.attention else None
        self.attention_after = config.blocks // 2
        self.norm = group_norm(width)
        self.output = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, latents: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        count, tokens, channels = latents.shape
        image = latents.transpose(1, 2).reshape(count, channels, self.grid, self.grid)
        embedding = self.time(timestep_embedding(timesteps, self.input.out_channels))
        h = self.input(image) + self.position
        for index, block in enumerate(self.blocks):
            if self.attention is not None and index == self.attention_after:
                h = self.attention(h)
            h = block(h, embedding)
        out = self.output(F.silu(self.norm(h)))
        return out.reshape(count, channels, tokens).transpose(1, 2)


class _MlpBlock(nn.Module):
    def __init__(self, width: int, embedding: int) -> None:
        super().__init__()
        self.norm_in = nn.LayerNorm(width)
        self.linear_in = nn.Linear(width, width)
        self.film = nn.Linear(embedding, 2 * width)
        self.norm_out = nn.LayerNorm(width)
        self.linear_out = nn.Linear(width, width)
        nn.init.zeros_(self.linear_out.weight)
        nn.init.zeros_(self.linear_out.bias)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.linear_in(F.silu(self.norm_in(x)))
        scale, shift = self.film(embedding).chunk(2, dim=1)
        h = self.norm_out(h) * (1 + scale) + shift
        return x + self.linear_out(F.silu(h))


class MlpDenoiser(nn.Module):
    """Denoiser of a latent without a square grid (the global layout's one token): ``[N, T, C]``
    and timesteps ``[N]`` -> ``[N, T, C]``, a residual MLP over the flattened latent."""

    def __init__(self, tokens: int, channels: int, config: LatentDiffusionConfig) -> None:
        super().__init__()
        width = 4 * config.width
        embedding = width
        self.time_width = config.width
        self.time = nn.Sequential(
            nn.Linear(config.width, embedding), nn.SiLU(), nn.Linear(embedding, embedding)
        )
        self.input = nn.Linear(tokens * channels, width)
        self.blocks = nn.ModuleList(_MlpBlock(width, embedding) for _ in range(config.blocks))
        self.norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, tokens * channels)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, latents: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        embedding = self.time(timestep_embedding(timesteps, self.time_width))
        h = self.input(latents.flatten(1))
        for block in self.blocks:
            h = block(h, embedding)
        return self.output(F.silu(self.norm(h))).view(latents.shape)


def _square_grid(tokens: int) -> int | None:
    """The side g of a g × g token grid, or None when ``tokens`` is 1 or not a perfect square."""
    grid = math.isqrt(tokens)
    return grid if tokens > 1 and grid * grid == tokens else None


class LatentDiffusion(nn.Module):
    """A DDPM over latents ``[T, C]``: the denoiser and the per-channel normalisation that makes
    the training latents zero-mean, unit-variance (buffers ``latent_mean``, ``latent_std``
    ``[C]``, set by :meth:`set_normalisation`). The diffusion runs on normalised latents; every
    method takes and returns latents in the model's own units.

    Only the denoiser's (and guide's) weights and the normalisation are state; the schedule
    follows from the config."""

    def __init__(self, config: LatentDiffusionConfig, latent_shape: tuple[int, int]) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.latent_shape = (int(latent_shape[0]), int(latent_shape[1]))
        tokens, channels = self.latent_shape
        grid = _square_grid(tokens)

        def denoiser() -> nn.Module:
            if grid is not None:
                return ConvDenoiser(channels, grid, config)
            return MlpDenoiser(tokens, channels, config)

        self.denoiser = denoiser()
        # The autoguidance guide: the same network, set by take_guide() during the fit.
        self.guide = denoiser().requires_grad_(False) if config.guided else None
        self.register_buffer("latent_mean", torch.zeros(channels))
        self.register_buffer("latent_std", torch.ones(channels))
        # float64 so ᾱ near 0 and 1 keeps its precision in the NLL bound; not saved.
        self.register_buffer("alpha_bar", cosine_alpha_bar(config.timesteps), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    # -- normalisation ---------------------------------------------------------------------------

    @torch.no_grad()
    def set_normalisation(self, means: torch.Tensor, stds: torch.Tensor | None = None) -> None:
        """Per-channel mean and standard deviation of the latents to be modelled: of ``means
        [N, T, C]``, or, with posterior ``stds [N, T, C]``, of the mixture of the Gaussians
        N(means, stds²) (the aggregate posterior: variance of the means + mean variance)."""
        flat = means.reshape(-1, means.shape[-1]).double()
        variance = flat.var(0, unbiased=False)
        if stds is not None:
            variance = variance + stds.reshape(-1, stds.shape[-1]).double().square().mean(0)
        self.latent_mean.copy_(flat.mean(0))
        # A floor keeps a channel that never varies (dead in the encoder) from dividing by zero.
        self.latent_std.copy_(variance.sqrt().clamp(min=1e-4))

    def normalise(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.latent_mean) / self.latent_std

    def denormalise(self, normalised: torch.Tensor) -> torch.Tensor:
        return normalised * self.latent_std + self.latent_mean

    # -- the diffusion ---------------------------------------------------------------------------

    def _randn(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        # Drawn on the generator's device, so a CPU seed gives the same numbers on any device.
        device = generator.device if generator is not None else self.device
        return torch.randn(shape, generator=generator, device=device).to(self.device)

    def _alpha_bar(self, timesteps: torch.Tensor) -> torch.Tensor:
        """ᾱ_t as ``[N, 1, 1]`` float32 for timesteps ``[N]``."""
        return self.alpha_bar[timesteps].float().view(-1, 1, 1)

    def _predict(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, guidance: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ẑ_0, ε̂)``, each ``[N, T, C]``, from normalised noisy latents at ``timesteps``;
        with ``guidance`` w ≠ 1 from the autoguided output guide + w · (denoiser − guide)."""
        output = self.denoiser(noisy, timesteps)
        if guidance != 1.0:
            guide = self.guide(noisy, timesteps)
            output = guide + guidance * (output - guide)
        alpha_bar = self._alpha_bar(timesteps)
        signal, noise = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
        if self.config.prediction == "v":
            return signal * noisy - noise * output, noise * noisy + signal * output
        # ε-prediction: ẑ_0 is unstable where ᾱ → 0, so it is kept in a generous range there.
        clean = ((noisy - noise * output) / signal).clamp(-20.0, 20.0)
        return clean, output

    def loss(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The simple denoising loss (scalar): mean squared error of the predicted ε or v on
        ``latents [N, T, C]`` noised to uniformly drawn timesteps."""
        clean = self.normalise(latents)
        count = clean.shape[0]
        device = generator.device if generator is not None else self.device
        timesteps = torch.randint(
            1, self.config.timesteps + 1, (count,), generator=generator, device=device
        ).to(self.device)
        noise = self._randn(tuple(clean.shape), generator)
        alpha_bar = self._alpha_bar(timesteps)
        noisy = alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise
        target = (
            noise
            if self.config.prediction == "epsilon"
            else alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * clean
        )
        return (self.denoiser(noisy, timesteps) - target).square().mean()

    @torch.no_grad()
    def sample(
        self,
        count: int,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """``count`` latents ``[count, T, C]`` by DDIM (η = 0) with ``steps`` denoising steps
        (default: the config's ``sampling_steps``) and autoguidance weight ``guidance`` (default:
        the config's; above 1 needs the model's guide); deterministic given ``generator``."""
        steps = self.config.sampling_steps if steps is None else steps
        guidance = self.config.guidance if guidance is None else guidance
        if not 1 <= steps <= self.config.timesteps:
            raise ValueError(f"steps must be in 1..{self.config.timesteps}, got {steps}")
        if guidance != 1.0 and self.guide is None:
            raise ValueError(f"guidance {guidance} needs a guide; this model has none")
        schedule = torch.linspace(self.config.timesteps, 1, steps).round().long().unique()
        schedule = [*schedule.flip(0).tolist(), 0]  # descending, ending at the clean ᾱ_0 = 1
        latents = self._randn((count, *self.latent_shape), generator)
        for current, following in itertools.pairwise(schedule):
            timesteps = torch.full((count,), current, device=self.device, dtype=torch.long)
            clean, noise = self._predict(latents, timesteps, guidance)
            alpha_bar = self.alpha_bar[following].float()
            latents = alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise
        return self.denormalise(latents)

    @torch.no_grad()
    def negative_log_likelihood_bound(
        self, latents: torch.Tensor, generator: torch.Generator | None = None, samples: int = 64
    ) -> torch.Tensor:
        """An upper bound on −log p(z) in nats, ``[N]``, of ``latents [N, T, C]``: the DDPM
        variational bound (Ho et al., 2020, eq. 5)

            L_T + Σ_{t=2..T} KL(q(z_{t−1} | z_t, z_0) ‖ p(z_{t−1} | z_t)) − log p(z_0 | z_1),

        with the reverse variances fixed to the posterior ones β̃_t and a Gaussian decoder of
        variance β_1 at t = 1, plus the log-Jacobian of the normalisation. L_T is exact; the sum
        over t is an unbiased Monte Carlo estimate from ``samples`` timesteps per latent, one in
        each of ``samples`` equal strata of 2..T (noise drawn with ``generator``). As a density
        of continuous values it may be negative."""
        clean = self.normalise(latents).double()
        count, dims = clean.shape[0], clean[0].numel()
        alpha_bar, total = self.alpha_bar, self.config.timesteps
        # L_T = KL(q(z_T | z_0) ‖ N(0, I)), closed form.
        last = alpha_bar[total]
        prior_term = 0.5 * (last * clean.square() + (1 - last) - 1 - torch.log1p(-last))
        bound = prior_term.flatten(1).sum(1)
        # Σ_{t=2..T} of the KL terms: stratified timesteps, each stratum's term times its width.
        samples = max(1, min(samples, total - 1))
        edges = torch.linspace(2, total + 1, samples + 1, dtype=torch.float64)
        uniform = torch.rand(
            (samples, count),
            generator=generator,
            device=generator.device if generator is not None else self.device,
            dtype=torch.float64,
        ).to(self.device)
        for stratum in range(samples):
            low, high = int(edges[stratum].ceil()), int(edges[stratum + 1].ceil())
            if high <= low:
                continue
            timesteps = (low + (uniform[stratum] * (high - low)).long()).clamp(max=high - 1)
            bound = bound + (high - low) * self._kl_term(clean, timesteps, generator)
        # −log p(z_0 | z_1): a Gaussian around the posterior mean at t = 1 (which is ẑ_0).
        ones = torch.ones(count, dtype=torch.long, device=self.device)
        variance = 1 - alpha_bar[1]
        noisy = self._noised(clean, ones, generator)
        predicted, _ = self._predict(noisy.float(), ones)
        squared = (clean - predicted.double()).square().flatten(1).sum(1)
        bound = bound + 0.5 * squared / variance + 0.5 * dims * torch.log(2 * math.pi * variance)
        jacobian = self.latent_shape[0] * self.latent_std.double().log().sum()
        return (bound + jacobian).float()

    def _noised(
        self, clean: torch.Tensor, timesteps: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        alpha_bar = self.alpha_bar[timesteps].view(-1, 1, 1)
        noise = self._randn(tuple(clean.shape), generator).double()
        return alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise

    def _kl_term(
        self, clean: torch.Tensor, timesteps: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """KL(q(z_{t−1} | z_t, z_0) ‖ p(z_{t−1} | z_t)) ``[N]`` at ``timesteps [N]`` (all ≥ 2)
        for one noisy z_t each: both Gaussians have variance β̃_t, so it is the squared
        distance of their means, c² ‖z_0 − ẑ_0‖² / (2 β̃_t) with c = √ᾱ_{t−1} β_t / (1 − ᾱ_t)."""
        noisy = self._noised(clean, timesteps, generator)
        predicted, _ = self._predict(noisy.float(), timesteps)
        alpha_bar, previous = self.alpha_bar[timesteps], self.alpha_bar[timesteps - 1]
        beta = 1 - alpha_bar / previous
        posterior_variance = beta * (1 - previous) / (1 - alpha_bar)
        coefficient = previous.sqrt() * beta / (1 - alpha_bar)
        squared = (clean - predicted.double()).square().flatten(1).sum(1)
        return coefficient.square() * squared / (2 * posterior_variance)

    @torch.no_grad()
    def update_average(self, trained: LatentDiffusion, step: int) -> None:
        """Move this copy's denoiser weights towards ``trained``'s: an exponential moving average
        with the config's decay, warmed up over the first steps; the normalisation is copied."""
        decay = min(self.config.ema_decay, (1 + step) / (10 + step))
        for average, current in zip(self.denoiser.parameters(), trained.denoiser.parameters()):
            average.lerp_(current, 1 - decay)
        self.latent_mean.copy_(trained.latent_mean)
        self.latent_std.copy_(trained.latent_std)

    @torch.no_grad()
    def take_guide(self) -> None:
        """Make the guide a copy of the denoiser as it is now (a model with a guide only)."""
        if self.guide is None:
            raise ValueError("take_guide: this model has no guide (its guidance is 1)")
        self.guide.load_state_dict(self.denoiser.state_dict())
