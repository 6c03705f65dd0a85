"""The spatial cross-attention's gradient pass: the fused kernel against the explicit softmax.

Run from the repository root: ``python benchmarks/attention_kernel.py`` (under a minute on 2 idle
cores). At the shape of one training step of the ``small`` preset with the shipped model's 16×16
latent grid (4 scenes × 192 rays × 32 coarse samples, 4 heads of 32 channels, 256 tokens) and of
one test-time refinement step (4 scenes × 512 rays × 32 coarse samples), it times forward +
backward of ``softmax(q·kᵀ/√d + bias)·v`` written out (the reference: it stores the
``[S, H, P, T]`` weights for the backward pass) and through ``scaled_dot_product_attention`` with
the bias as its mask (``written_out_attention`` and ``fused_attention`` of
:mod:`nerfvae.models.scene_function`), in float32 and, where this CPU computes it natively,
bfloat16. In training the bias needs a gradient (it trains the length scales); in refinement the
weights are frozen and it needs none. :class:`nerfvae.models.scene_function.CrossAttention` runs
the written-out form where the mask needs a gradient and the fused kernel elsewhere. Prints a
markdown table: milliseconds per pass, the speed-up over the reference in the same process, and
the largest difference of the outputs and gradients (a check that both compute the same function;
bfloat16 rounds differently in each).
"""

from __future__ import annotations

import argparse
import time

import torch

from nerfvae.models.scene_function import fused_attention, written_out_attention
from nerfvae.precision import cpu_has_native_bf16

SHAPES = {"training step": (4, 192 * 32, True), "refinement step": (4, 512 * 32, False)}
"""name: (scenes, points, whether the bias needs a gradient: training trains the length scales,
refinement has the weights frozen)."""
HEADS, HEAD_CHANNELS, TOKENS = 4, 32, 256


def pass_ms(attend, tensors, repeats: int) -> tuple[float, list[torch.Tensor]]:
    """Mean milliseconds of forward + backward, and the output and gradients of the last pass."""
    upstream = torch.ones(tensors[0].shape, dtype=tensors[0].dtype)
    attend(*tensors).backward(upstream)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        for tensor in tensors:
            tensor.grad = None
        output = attend(*tensors)
        output.backward(upstream)
    elapsed = (time.perf_counter() - started) / repeats * 1e3
    return elapsed, [output.detach().float().clone()] + [
        t.grad.float().clone() for t in tensors if t.requires_grad
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    precisions = [torch.float32] + ([torch.bfloat16] if cpu_has_native_bf16() else [])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"native bf16: {cpu_has_native_bf16()}\n"
    )
    print("| shape | precision | explicit softmax (ms) | fused kernel (ms) | speed-up | max diff |")
    print("|---|---|---|---|---|---|")
    for name, (scenes, points, bias_grad) in SHAPES.items():
        for dtype in precisions:
            generator = torch.Generator().manual_seed(0)
            shapes = (
                (scenes, HEADS, points, HEAD_CHANNELS),  # queries
                (scenes, HEADS, TOKENS, HEAD_CHANNELS),  # keys
                (scenes, HEADS, TOKENS, HEAD_CHANNELS),  # values
            )
            tensors = [
                torch.randn(*shape, generator=generator).to(dtype).requires_grad_(True)
                for shape in shapes
            ]
            bias = torch.randn(scenes, HEADS, points, TOKENS, generator=generator) * 3.0
            tensors.append(bias.requires_grad_(bias_grad))  # float32, as the model computes it
            reference_ms, reference = pass_ms(written_out_attention, tensors, args.repeats)
            fused_ms, result = pass_ms(fused_attention, tensors, args.repeats)
            diff = max(float((a - b).abs().max()) for a, b in zip(reference, result, strict=True))
            label = "fp32" if dtype == torch.float32 else "bf16"
            print(
                f"| {name} | {label} | {reference_ms:.0f} | {fused_ms:.0f} | "
                f"{reference_ms / fused_ms:.2f} | {diff:.1e} |"
            )


if __name__ == "__main__":
    main()
