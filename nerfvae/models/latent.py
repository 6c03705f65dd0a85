"""Latent distributions: the diagonal-Gaussian posterior q(z | context) and the prior N(0, I).

Latents are always token grids ``[scenes, tokens, channels]``: a global latent vector is one token,
a spatial latent is ``grid × grid`` tokens. Keeping one shape lets every conditioning mode accept
either latent layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Bounds on log-std keep exp() finite and the KL well defined under bad updates early in training.
LOG_STD_MIN, LOG_STD_MAX = -7.0, 3.0


@dataclass
class DiagonalGaussian:
    """A diagonal Gaussian over latents ``[scenes, tokens, channels]``."""

    mean: torch.Tensor
    log_std: torch.Tensor

    @classmethod
    def from_raw(cls, raw: torch.Tensor) -> DiagonalGaussian:
        """Split ``raw [..., 2 * channels]`` into mean and a clamped log-std."""
        mean, raw_log_std = raw.chunk(2, dim=-1)
        log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        return cls(mean, log_std)

    @classmethod
    def standard_normal_like(cls, reference: torch.Tensor) -> DiagonalGaussian:
        return cls(torch.zeros_like(reference), torch.zeros_like(reference))

    @property
    def std(self) -> torch.Tensor:
        return self.log_std.exp()

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised sample ``[scenes, tokens, channels]``."""
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * noise

    def kl_to_standard_normal(self) -> torch.Tensor:
        """KL(q ‖ N(0, I)) per scene, ``[scenes]``, in nats (closed form)."""
        variance = (2.0 * self.log_std).exp()
        per_dim = 0.5 * (variance + self.mean.square() - 1.0) - self.log_std
        return per_dim.flatten(1).sum(dim=1)

    def kl(self, other: DiagonalGaussian) -> torch.Tensor:
        """KL(self ‖ other) per scene, ``[scenes]``, in nats (closed form)."""
        variance_ratio = (2.0 * (self.log_std - other.log_std)).exp()
        mean_term = ((self.mean - other.mean) / other.std).square()
        per_dim = 0.5 * (variance_ratio + mean_term - 1.0) - (self.log_std - other.log_std)
        return per_dim.flatten(1).sum(dim=1)
