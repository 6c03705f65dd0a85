"""Baselines beside NeRF-VAE: a per-scene NeRF and a GQN-style convolutional model."""
