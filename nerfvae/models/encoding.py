"""Positional (Fourier-feature) encoding of points and directions, as in NeRF."""

from __future__ import annotations

import math

import torch


class PositionalEncoding(torch.nn.Module):
    """``x [..., D] -> [x, sin(2^k π x), cos(2^k π x)]_{k < num_frequencies}``, ``[..., D (1 + 2L)]``.

    Inputs are expected roughly in ``[-1, 1]`` (points are normalised to the scene box first), so the
    lowest frequency spans the whole scene once.
    """

    def __init__(self, input_dim: int, num_frequencies: int, include_input: bool = True) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.num_frequencies = num_frequencies
        self.include_input = include_input
        self.register_buffer(
            "frequencies", math.pi * 2.0 ** torch.arange(num_frequencies, dtype=torch.float32)
        )

    @property
    def output_dim(self) -> int:
        return self.input_dim * (2 * self.num_frequencies + int(self.include_input))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = (x.unsqueeze(-1) * self.frequencies).flatten(-2)  # [..., D * L]
        parts = [x] if self.include_input else []
        parts += [scaled.sin(), scaled.cos()]
        return torch.cat(parts, dim=-1)
