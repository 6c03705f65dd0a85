"""The ``planes`` scene function's per-point MLP, evaluated in cache-sized blocks when rendering.

The MLP is narrow (``2 × 64`` in the shipped model) and runs on ~10⁵ points per view, so on the
CPU it is bound by memory traffic, not by arithmetic: composed from ``nn.Linear`` and ReLU,
every layer writes a ``[N, 64]`` activation to memory, copies the bias into it, and reads and
writes it again for the ReLU.

Without gradients (rendering, evaluation, the viewer), :func:`point_mlp` computes the same
function of the same ``nn.Linear`` parameters block by block: a block of :data:`BLOCK_ROWS`
points goes through every layer while its activations are still in cache, with the ReLUs fused
into the matrix products (oneDNN's fused linear, where PyTorch has it): 1.3–1.8× faster than the
modules for a view's 98,304 points on a 2-core AMD EPYC (``benchmarks/point_mlp.py``). It applies
to float32 on the CPU outside autocast; with gradients, or in any other case (bfloat16, CUDA),
it runs :func:`point_mlp_reference`, the plain composition, which is also the definition the
blocked version is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nerfvae.models.concat_linear import concat_linear

BLOCK_ROWS = 8192
"""Points per block: ``[8192, 64]`` float32 activations (2 MB) stay in a core's cache while a
block goes through every layer (``benchmarks/point_mlp.py``)."""


def _has_onednn_linear() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(
            torch.ops.mkldnn, "_linear_pointwise"
        )
    except (AttributeError, RuntimeError):
        return False


_ONEDNN_LINEAR = _has_onednn_linear()


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu: bool) -> torch.Tensor:
    """``relu?(x @ weight.T + bias)`` for a contiguous float32 block ``x [n, in]`` -> ``[n, out]``.

    oneDNN's linear applies the ReLU while the block is in registers and reads the bias without
    first copying it into the output (MKL's ``addmm`` does); without oneDNN, ``addmm`` and an
    in-place ReLU in the same blocks."""
    if _ONEDNN_LINEAR:
        return torch.ops.mkldnn._linear_pointwise(
            x, weight, bias, "relu" if relu else "none", [], ""
        )
    out = torch.addmm(bias, x, weight.t())
    return out.relu_() if relu else out


def point_mlp_reference(
    features: torch.Tensor,
    encoded: torch.Tensor,
    directions: torch.Tensor | None,
    trunk: Sequence[nn.Linear],
    density_head: nn.Linear,
    colour_hidden: nn.Linear,
    colour_head: nn.Linear,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP as plain modules (any dtype, device or autocast); see :func:`point_mlp`."""
    first, *rest = trunk
    hidden = torch.relu(concat_linear(first, (features, encoded)))
    for layer in rest:
        hidden = torch.relu(layer(hidden))
    density_logit = density_head(hidden).squeeze(-1)
    colour_inputs = [hidden] if directions is None else [hidden, directions]
    colour_features = torch.relu(concat_linear(colour_hidden, colour_inputs))
    return density_logit, colour_head(colour_features)


def point_mlp(
    features: torch.Tensor,
    encoded: torch.Tensor,
    directions: torch.Tensor | None,
    trunk: Sequence[nn.Linear],
    density_head: nn.Linear,
    colour_hidden: nn.Linear,
    colour_head: nn.Linear,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Density and colour logits of the points' inputs.

    Args:
        features: ``[N, F]`` features read from the decoded planes (gradients flow back to them).
        encoded: ``[N, E]`` the points' positional encoding (no gradient taken).
        directions: ``[N, D]`` the view directions' encoding, or ``None`` (view-independent).
        trunk: the hidden layers; the first takes ``F + E`` inputs, each is followed by a ReLU.
        density_head: ``width -> 1``; colour_hidden: ``width (+ D) -> C``, followed by a ReLU;
            colour_head: ``C -> 3``.

    Returns:
        ``density_logit [N]`` and ``colour_logit [N, 3]`` (before their softplus and sigmoid).
    """
    modules = (*trunk, density_head, colour_hidden, colour_head)
    parameters = [p for m in modules for p in (m.weight, m.bias)]
    tensors = [features, encoded] + ([] if directions is None else [directions])
    blocked = (
        features.device.type == "cpu"
        and not torch.is_autocast_enabled("cpu")
        and all(t.dtype == torch.float32 for t in (*tensors, *parameters) if t is not None)
        and all(m.bias is not None for m in modules)
        # Training and test-time refinement take autograd's path: a blocked forward with a
        # hand-written blocked backward measured within the noise of it (0.97-1.15x, forward
        # and backward of 36,864 points on a 2-core AMD EPYC), not worth a second backward.
        and not (
            torch.is_grad_enabled()
            and any(t.requires_grad for t in (*tensors, *parameters) if t is not None)
        )
    )
    if not blocked:
        return point_mlp_reference(
            features, encoded, directions, trunk, density_head, colour_hidden, colour_head
        )
    with torch.no_grad():
        blocks = [
            _forward_block(
                features[rows],
                encoded[rows],
                None if directions is None else directions[rows],
                parameters,
                len(trunk),
            )
            for rows in _row_blocks(features.shape[0])
        ]
    density = torch.cat([block[0] for block in blocks])
    colour = torch.cat([block[1] for block in blocks])
    return density, colour


def _row_blocks(rows: int) -> list[slice]:
    return [slice(start, min(start + BLOCK_ROWS, rows)) for start in range(0, rows, BLOCK_ROWS)]


def _forward_block(
    features: torch.Tensor,
    encoded: torch.Tensor,
    directions: torch.Tensor | None,
    parameters: Sequence[torch.Tensor],
    depth: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One block of ``n`` points through every layer: ``density_logit [n], colour_logit [n, 3]``."""
    weights, biases = parameters[0::2], parameters[1::2]
    x = torch.cat([features, encoded], dim=-1)
    for layer in range(depth):
        x = _linear(x, weights[layer], biases[layer], relu=True)
    density_logit = _linear(x, weights[depth], biases[depth], relu=False).squeeze(-1)
    colour_input = x if directions is None else torch.cat([x, directions], dim=-1)
    colour_features = _linear(colour_input, weights[depth + 1], biases[depth + 1], relu=True)
    colour_logit = _linear(colour_features, weights[depth + 2], biases[depth + 2], relu=False)
    return density_logit, colour_logit


__all__ = ["BLOCK_ROWS", "point_mlp", "point_mlp_reference"]
