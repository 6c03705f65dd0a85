"""Models: NeRF-VAE (encoder, posterior, latent-conditioned scene function) and baselines."""

from nerfvae.models.base import SceneModel
from nerfvae.models.config import (
    EncoderConfig,
    LatentConfig,
    NeRFVAEConfig,
    SceneFunctionConfig,
)
from nerfvae.models.latent import DiagonalGaussian
from nerfvae.models.nerfvae import NeRFVAE
from nerfvae.models.ray_model import RaySceneModel

__all__ = [
    "DiagonalGaussian",
    "EncoderConfig",
    "LatentConfig",
    "NeRFVAE",
    "NeRFVAEConfig",
    "RaySceneModel",
    "SceneFunctionConfig",
    "SceneModel",
]
