"""A linear layer applied to a concatenation of inputs without building the concatenation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def concat_linear(layer: nn.Linear, parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """``layer(torch.cat(parts, dim=-1))`` for ``parts [..., C_i]`` -> ``[..., C_out]``, as a sum
    of one matrix product per part with its slice of the weight.

    The same function of the same parameters (checkpoints are unchanged). The concatenated copy
    is never written, and autograd computes an input gradient only for the parts that need one:
    a scene function's encoded points and view directions do not, and on the CPU the matrix
    product of that gradient with the odd widths of a concatenation (31, 79) ran at a fifth of
    the speed of the aligned ones (``benchmarks/scene_function.py``)."""
    total = sum(part.shape[-1] for part in parts)
    if total != layer.in_features:
        raise ValueError(f"parts have {total} features in all; the layer takes {layer.in_features}")
    leading = parts[0].shape[:-1]
    out = None
    start = 0
    for part in parts:
        width = part.shape[-1]
        weight = layer.weight[:, start : start + width]
        start += width
        flat = part.reshape(-1, width)
        if out is None:
            out = (
                torch.mm(flat, weight.t())
                if layer.bias is None
                else torch.addmm(layer.bias, flat, weight.t())
            )
        else:
            # in place: an out-of-place addmm would first copy ``out`` (a pass over it). In-place
            # ops are not autocast, so the operands take ``out``'s dtype as autocast gave it.
            out = out.addmm_(flat.to(out.dtype), weight.t().to(out.dtype))
    return out.reshape(*leading, layer.out_features)
