"""NeRF-VAE: amortized inference of a scene latent from context views, rendered by a shared NeRF."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from nerfvae.geometry import rays_through_pixels, sample_ray_indices
from nerfvae.models.base import SceneModel
from nerfvae.models.config import NeRFVAEConfig
from nerfvae.models.encoder import ContextEncoder
from nerfvae.models.latent import LOG_STD_MAX, LOG_STD_MIN, DiagonalGaussian
from nerfvae.models.scene_function import SceneFunction
from nerfvae.rendering import RenderOutput, render_rays

LOG_2PI = math.log(2.0 * math.pi)
# Continuous Gaussian likelihood on colours in [0, 1]; adding log2(256) bits per dimension gives the
# usual discretised-8-bit bits/dim (density times bin width 1/256).
BITS_PER_8BIT_BIN = 8.0


def gaussian_log_likelihood(
    prediction: torch.Tensor, target: torch.Tensor, std: float
) -> torch.Tensor:
    """Per-element log N(target; prediction, std²) in nats (same shape as the inputs)."""
    return -0.5 * ((target - prediction) / std).square() - math.log(std) - 0.5 * LOG_2PI


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


class PosteriorRefiner(nn.Module):
    """One iterative-amortized-inference update (Marino et al., 2018), shared across steps.

    Maps (posterior parameters, ELBO gradient w.r.t. them) per latent token to a gated update of
    the parameters. Gradients are squashed with sign·log1p(|g|) because their scale varies by orders
    of magnitude over training.
    """

    def __init__(self, channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(4 * channels, hidden), nn.ReLU(), nn.Linear(hidden, 4 * channels)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(
        self, posterior: DiagonalGaussian, grad_mean: torch.Tensor, grad_log_std: torch.Tensor
    ) -> DiagonalGaussian:
        squash = lambda g: g.sign() * g.abs().log1p()
        inputs = torch.cat(
            [posterior.mean, posterior.log_std, squash(grad_mean), squash(grad_log_std)], dim=-1
        )
        update, gate_logits = self.net(inputs).chunk(2, dim=-1)
        gate = torch.sigmoid(gate_logits)
        new = torch.cat([posterior.mean, posterior.log_std], dim=-1) * (1 - gate) + gate * update
        # gate starts at 0.5 and update at 0: blend towards a learned update, starting halfway.
        mean, log_std = new.chunk(2, dim=-1)
        return DiagonalGaussian(mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX))


class NeRFVAE(SceneModel):
    """Encoder -> q(z | context) (+ T refinement steps) -> scene function -> volume rendering."""

    def __init__(self, config: NeRFVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("scene_min", torch.tensor(config.scene_min, dtype=torch.float32))
        self.register_buffer("scene_max", torch.tensor(config.scene_max, dtype=torch.float32))
        self.register_buffer("background", torch.tensor(config.background, dtype=torch.float32))
        self.encoder = ContextEncoder(config.encoder, config.latent)
        self.scene_function = SceneFunction(
            config.scene_function, config.latent, config.scene_min, config.scene_max
        )
        self.refiner = (
            PosteriorRefiner(config.latent.channels) if config.refinement_steps > 0 else None
        )
        self.mixed_precision = False
        """Run the scene function under CPU/GPU bfloat16 autocast (set by the trainer/evaluator)."""

    # -- inference -------------------------------------------------------------------------
    def prior(self, scenes: int) -> DiagonalGaussian:
        shape = (scenes, self.config.latent.num_tokens, self.config.latent.channels)
        zeros = torch.zeros(shape, device=self.scene_min.device)
        return DiagonalGaussian(zeros, zeros.clone())

    def infer(self, context_images, context_K, context_c2w, generator=None) -> DiagonalGaussian:
        posterior = self.encoder(context_images, context_K, context_c2w)
        for _ in range(self.config.refinement_steps):
            posterior = self._refine(posterior, context_images, context_K, context_c2w, generator)
        return posterior

    def _refine(self, posterior, images, K, c2w, generator) -> DiagonalGaussian:
        """One refinement step from the gradient of the context-view ELBO w.r.t. q's parameters.

        The gradient is an input to the refiner (no second-order terms), as in Marino et al.
        """
        scenes, views, height, width, _ = images.shape
        rays = self.config.refinement_rays
        view, row, col = sample_ray_indices(
            scenes, views, height, width, rays, generator=generator, device=images.device
        )
        scene = torch.arange(scenes, device=images.device).unsqueeze(1)
        pixels = torch.stack([col, row], dim=-1).float() + 0.5  # [S, R, 2]
        origins, directions = rays_through_pixels(
            pixels.unsqueeze(-2), K[scene, view], c2w[scene, view]
        )
        origins, directions = origins.squeeze(-2), directions.squeeze(-2)
        target = images[scene, view, row, col]
        with torch.enable_grad():
            mean = posterior.mean.detach().requires_grad_(True)
            log_std = posterior.log_std.detach().requires_grad_(True)
            probe = DiagonalGaussian(mean, log_std)
            latent = probe.rsample(generator)
            colour = self.render(latent, origins, directions, generator=generator).final.colour
            pixel_dims = views * height * width * 3
            log_likelihood = gaussian_log_likelihood(colour, target, self.config.pixel_std)
            elbo = log_likelihood.flatten(1).mean(1) * pixel_dims - probe.kl_to_standard_normal()
            grad_mean, grad_log_std = torch.autograd.grad(elbo.sum(), [mean, log_std])
        return self.refiner(posterior, grad_mean / pixel_dims, grad_log_std / pixel_dims)

    # -- rendering -------------------------------------------------------------------------
    def field(self, latent: torch.Tensor):
        """The scene function of scenes with ``latent [S, T, C]`` as a rendering callback
        ``(points [S, R, N, 3], directions [S, R, N, 3]) -> (density [S, R, N], colour [..., 3])``."""

        def query(points: torch.Tensor, directions: torch.Tensor):
            scenes = points.shape[0]
            sample_shape = points.shape[:-1]
            device_type = points.device.type
            with torch.autocast(device_type, torch.bfloat16, enabled=self.mixed_precision):
                density, colour = self.scene_function(
                    points.reshape(scenes, -1, 3), directions.reshape(scenes, -1, 3), latent
                )
            return density.reshape(sample_shape), colour.reshape(*sample_shape, 3)

        return query

    def render(self, latent, origins, directions, near=None, far=None, *, generator=None):
        if near is None or far is None:
            near, far = self.ray_bounds(origins, directions)
        return render_rays(
            self.field(latent),
            origins,
            directions,
            near,
            far,
            self.config.sampling,
            background=self.background,
            generator=generator,
            training=self.training,
        )

    # -- objective -------------------------------------------------------------------------
    def loss(
        self,
        batch: dict[str, torch.Tensor],
        *,
        target_dims: int | None = None,
        kl_weight: float = 1.0,
        pixel_std: float | None = None,
        object_pixel_weight: float = 1.0,
        generator: torch.Generator | None = None,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        """Negative ELBO (per dimension) with KL weight, on random target rays of each scene.

        Args:
            batch: ``context_images [S, C, H, W, 3]``, ``context_K``, ``context_c2w``,
                ``target_origins / target_directions / target_colours [S, R, 3]``,
                ``target_object_mask [S, R]`` (optional).
            target_dims: number of dimensions of a scene's whole target set (views × H × W × 3):
                the rays are a random subset of it, so the likelihood per dimension is estimated by
                the subset mean and the KL is spread over this many dimensions. Defaults to the
                context views' size.
            kl_weight: β (or the KL warm-up factor); 1 gives the ELBO.
            pixel_std: likelihood standard deviation (annealed by the trainer); default config's.
            object_pixel_weight: weight of object pixels in the training likelihood (1 = ELBO).
        """
        pixel_std = pixel_std or self.config.pixel_std
        context = batch["context_images"]
        if target_dims is None:
            target_dims = int(context[0].numel())
        posterior = self.infer(context, batch["context_K"], batch["context_c2w"], generator)
        latent = posterior.rsample(generator)
        output: RenderOutput = self.render(
            latent, batch["target_origins"], batch["target_directions"], generator=generator
        )
        target = batch["target_colours"]
        final = output.final
        log_likelihood = gaussian_log_likelihood(final.colour, target, pixel_std)  # [S, R, 3]
        kl = posterior.kl_to_standard_normal()  # [S]
        elbo_per_dim = log_likelihood.mean() - kl.mean() / target_dims

        weights = torch.ones_like(target[..., 0])
        object_mask = batch.get("target_object_mask")
        if object_mask is not None and object_pixel_weight != 1.0:
            weights = weights + (object_pixel_weight - 1.0) * object_mask.float()
        weights = (weights / weights.mean()).unsqueeze(-1)
        training_likelihood = (weights * log_likelihood).mean()
        if output.fine is not None:  # NeRF supervises the coarse pass too
            coarse_ll = gaussian_log_likelihood(output.coarse.colour, target, pixel_std)
            training_likelihood = training_likelihood + (weights * coarse_ll).mean()
        loss = -training_likelihood + kl_weight * kl.mean() / target_dims

        with torch.no_grad():
            squared_error = (final.colour - target).square()
            metrics = {
                "mse": squared_error.mean(),
                "psnr": psnr_from_mse(squared_error.mean()),
                "kl_nats": kl.mean(),
                "elbo_per_dim": elbo_per_dim,
                "nelbo_bits_per_dim": -elbo_per_dim / math.log(2.0) + BITS_PER_8BIT_BIN,
                "posterior_std": posterior.std.mean(),
            }
            if object_mask is not None and bool(object_mask.any()):
                object_error = squared_error[object_mask].mean()
                metrics["object_psnr"] = psnr_from_mse(object_error)
        return {"loss": loss, **{k: v.detach() for k, v in metrics.items()}}
