"""nerfvae: NeRF-VAE, geometry-aware 3D scene generation."""

__version__ = "0.1.0"
