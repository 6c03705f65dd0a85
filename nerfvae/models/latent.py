"""Latent distributions: the diagonal-Gaussian posterior q(z | context) and the prior N(0, I).

Latents are always token grids ``[scenes, tokens, channels]``: a global latent vector is one token,
a spatial latent is ``grid × grid`` tokens. Keeping one shape lets every conditioning mode accept
either latent layout.
"""

from __future__ import annotations

import math
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

    def log_prob(self, latents: torch.Tensor) -> torch.Tensor:
        """log q(latents) per scene, ``[scenes]``, in nats, of ``latents [scenes, tokens,
        channels]``."""
        standardised = (latents - self.mean) / self.std
        per_dim = -0.5 * (standardised.square() + math.log(2.0 * math.pi)) - self.log_std
        return per_dim.flatten(1).sum(dim=1)

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


@dataclass
class LowRankGaussian:
    """A Gaussian over latents ``[tokens, channels]`` with rank-``k`` covariance: a sample is
    ``mean + (scales * ε) @ basis`` with ``ε ~ N(0, I_k)``, reshaped to ``[tokens, channels]``.

    Fitted to the posterior means of many scenes it is an *ex-post* density estimate of the
    aggregate posterior (Ghosh et al., 2020): where N(0, I) puts mass the decoder never saw in
    training, this stays on the principal directions real scenes span.

    Attributes:
        mean: ``[T, C]``.
        basis: ``[k, T * C]``, orthonormal rows (principal directions).
        scales: ``[k]``, the standard deviation along each direction.
    """

    mean: torch.Tensor
    basis: torch.Tensor
    scales: torch.Tensor

    @classmethod
    def fit(cls, samples: torch.Tensor, components: int) -> LowRankGaussian:
        """Mean and the top ``components`` principal directions of ``samples [N, T, C]``, with
        the unbiased standard deviation along each (PCA by SVD)."""
        count = samples.shape[0]
        if not 1 <= components <= min(count - 1, samples[0].numel()):
            raise ValueError(
                f"components must be between 1 and {min(count - 1, samples[0].numel())} for "
                f"{count} samples of {samples[0].numel()} values, got {components}"
            )
        flat = samples.flatten(1).double()
        mean = flat.mean(0)
        _, singular, right = torch.linalg.svd(flat - mean, full_matrices=False)
        scales = singular[:components] / (count - 1) ** 0.5
        return cls(
            mean.view(samples.shape[1:]).float(),
            right[:components].float().contiguous(),
            scales.float(),
        )

    def rsample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` samples ``[count, T, C]``."""
        noise = torch.randn(
            count, self.scales.shape[0], generator=generator, device=self.scales.device
        )
        return self.mean + ((noise * self.scales) @ self.basis).view(count, *self.mean.shape)
