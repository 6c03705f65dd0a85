"""The ``planes`` scene function's per-point MLP, evaluated in cache-sized blocks of points.

The MLP is narrow (``2 × 64`` in the shipped model) and runs on ~10⁵ points per view, so on the
CPU it is bound by memory traffic, not by arithmetic: composed from ``nn.Linear`` and ReLU,
every layer writes a ``[N, 64]`` activation to memory, copies the bias into it, reads and writes
it again for the ReLU, and the backward pass makes as many passes again (plus an outer product for
the one-output density head and a sum of the two gradients that reach the last hidden layer).

:func:`point_mlp` computes the same function of the same ``nn.Linear`` parameters block by block:
a block of :data:`BLOCK_ROWS` points goes through every layer while its activations are still in
cache, the layers' ReLUs are fused into their matrix products (oneDNN's fused linear, where
PyTorch has it), and the backward pass, written out by hand, runs the same way and accumulates
the weight gradients block by block. It applies to float32 on the CPU outside autocast; anything
else (bfloat16 autocast, CUDA) runs :func:`point_mlp_reference`, the plain composition, which is
also the definition the fused version is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nerfvae.models.concat_linear import concat_linear

BLOCK_ROWS = 8192
"""Points per block: ``[8192, 64]`` float32 activations (2 MB) stay in a core's cache while a
block goes through every layer (``benchmarks/scene_function.py``)."""


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
    first copying it into the output (MKL's ``addmm`` does). Measured on a 2-core AMD EPYC
    without AVX-512: the four layers of the shipped MLP over 98,304 points in 23 ms against 32 ms
    with ``addmm`` + ``relu_`` in the same blocks and 40 ms unblocked."""
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
    tensors = [features, encoded] + ([] if directions is None else [directions])
    fused = (
        features.device.type == "cpu"
        and not torch.is_autocast_enabled("cpu")
        and all(t.dtype == torch.float32 for t in tensors)
        and all(m.weight.dtype == torch.float32 and m.bias is not None for m in modules)
    )
    if not fused:
        return point_mlp_reference(
            features, encoded, directions, trunk, density_head, colour_hidden, colour_head
        )
    parameters = [p for m in modules for p in (m.weight, m.bias)]
    if torch.is_grad_enabled() and (
        features.requires_grad or any(p.requires_grad for p in parameters)
    ):
        no_directions = features.new_empty(0)
        return _BlockedPointMLP.apply(
            len(trunk),
            features,
            encoded,
            no_directions if directions is None else directions,
            *parameters,
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
    density = torch.cat([block[-1][0] for block in blocks])
    colour = torch.cat([block[-1][1] for block in blocks])
    return density, colour


def _row_blocks(rows: int) -> list[slice]:
    return [slice(start, min(start + BLOCK_ROWS, rows)) for start in range(0, rows, BLOCK_ROWS)]


def _forward_block(
    features: torch.Tensor,
    encoded: torch.Tensor,
    directions: torch.Tensor | None,
    parameters: Sequence[torch.Tensor],
    depth: int,
) -> tuple[list[torch.Tensor], torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One block through every layer: ``(hidden activations per trunk layer, colour features,
    (density_logit [n], colour_logit [n, 3]))``."""
    weights, biases = parameters[0::2], parameters[1::2]
    x = torch.cat([features, encoded], dim=-1)
    hidden = []
    for layer in range(depth):
        x = _linear(x, weights[layer], biases[layer], relu=True)
        hidden.append(x)
    density_logit = _linear(x, weights[depth], biases[depth], relu=False).squeeze(-1)
    colour_input = x if directions is None else torch.cat([x, directions], dim=-1)
    colour_features = _linear(colour_input, weights[depth + 1], biases[depth + 1], relu=True)
    colour_logit = _linear(colour_features, weights[depth + 2], biases[depth + 2], relu=False)
    return hidden, colour_features, (density_logit, colour_logit)


class _BlockedPointMLP(torch.autograd.Function):
    """:func:`point_mlp` with gradients: the forward and the hand-written backward both run block
    by block; parameters are ``(weight, bias)`` of the trunk layers, then of the density head, the
    colour hidden layer and the colour head."""

    @staticmethod
    def forward(ctx, depth, features, encoded, directions, *parameters):
        rows = features.shape[0]
        width = parameters[0].shape[0]
        colour_width = parameters[2 * depth + 2].shape[0]
        hidden = [features.new_empty(rows, width) for _ in range(depth)]
        colour_features = features.new_empty(rows, colour_width)
        density = features.new_empty(rows)
        colour = features.new_empty(rows, 3)
        has_directions = directions.numel() > 0
        for block in _row_blocks(rows):
            block_hidden, block_colour_features, (block_density, block_colour) = _forward_block(
                features[block],
                encoded[block],
                directions[block] if has_directions else None,
                parameters,
                depth,
            )
            for saved, value in zip(hidden, block_hidden):
                saved[block] = value
            colour_features[block] = block_colour_features
            density[block] = block_density
            colour[block] = block_colour
        ctx.depth = depth
        ctx.features_need_grad = features.requires_grad
        ctx.save_for_backward(features, encoded, directions, colour_features, *hidden, *parameters)
        return density, colour

    @staticmethod
    def backward(ctx, density_grad, colour_grad):
        depth = ctx.depth
        features, encoded, directions, colour_features, *rest = ctx.saved_tensors
        hidden, parameters = rest[:depth], rest[depth:]
        weights = parameters[0::2]
        has_directions = directions.numel() > 0
        rows, feature_width = features.shape
        width = weights[0].shape[0]
        if density_grad is None:
            density_grad = features.new_zeros(rows)
        if colour_grad is None:
            colour_grad = features.new_zeros(rows, 3)
        colour_grad = colour_grad.contiguous()
        # the density head and the colour layer read the same last hidden layer: one product
        # with their weights stacked gives that layer's gradient from both at once
        heads_weight = torch.cat([weights[depth], weights[depth + 1][:, :width]])  # [1 + C, width]
        parameter_grads = [torch.zeros_like(p) for p in parameters]
        weight_grads, bias_grads = parameter_grads[0::2], parameter_grads[1::2]
        heads_grad = features.new_zeros(heads_weight.shape)
        heads_bias_grad = features.new_zeros(heads_weight.shape[0])
        features_grad = torch.empty_like(features) if ctx.features_need_grad else None
        for block in _row_blocks(rows):
            block_colour_grad = colour_grad[block]
            block_colour_features = colour_features[block]
            weight_grads[depth + 2].addmm_(block_colour_grad.t(), block_colour_features)
            bias_grads[depth + 2].add_(block_colour_grad.sum(0))
            colour_pre_grad = torch.ops.aten.threshold_backward(
                block_colour_grad @ weights[depth + 2], block_colour_features, 0
            )  # [n, C]
            if has_directions:
                weight_grads[depth + 1][:, width:].addmm_(colour_pre_grad.t(), directions[block])
            heads_pre_grad = torch.cat(
                [density_grad[block].unsqueeze(-1), colour_pre_grad], dim=-1
            )  # [n, 1 + C]
            last = hidden[depth - 1][block]
            heads_grad.addmm_(heads_pre_grad.t(), last)
            heads_bias_grad.add_(heads_pre_grad.sum(0))
            hidden_grad = heads_pre_grad @ heads_weight  # [n, width]
            for layer in range(depth - 1, 0, -1):
                pre_grad = torch.ops.aten.threshold_backward(hidden_grad, hidden[layer][block], 0)
                weight_grads[layer].addmm_(pre_grad.t(), hidden[layer - 1][block])
                bias_grads[layer].add_(pre_grad.sum(0))
                hidden_grad = pre_grad @ weights[layer]
            pre_grad = torch.ops.aten.threshold_backward(hidden_grad, hidden[0][block], 0)
            weight_grads[0][:, :feature_width].addmm_(pre_grad.t(), features[block])
            weight_grads[0][:, feature_width:].addmm_(pre_grad.t(), encoded[block])
            bias_grads[0].add_(pre_grad.sum(0))
            if features_grad is not None:
                torch.mm(pre_grad, weights[0][:, :feature_width], out=features_grad[block])
        weight_grads[depth].copy_(heads_grad[:1])
        weight_grads[depth + 1][:, :width].copy_(heads_grad[1:])
        bias_grads[depth].copy_(heads_bias_grad[:1])
        bias_grads[depth + 1].copy_(heads_bias_grad[1:])
        return (None, features_grad, None, None, *parameter_grads)


__all__ = ["BLOCK_ROWS", "point_mlp", "point_mlp_reference"]
