"""Throughput of nerfvae.rendering.render_rays with a reference NeRF MLP field, on CPU.

Run from the repository root: ``python benchmarks/render.py`` (about 1-2 minutes on 2 idle
cores; no-grad batches of 1k/4k/16k rays, training batches of 1k rays) or
``python benchmarks/render.py --quick`` (about 15 s). ``--forward-rays``/``--train-rays`` choose
other batch sizes. Prints a markdown table. Other processes on the machine slow everything
down, so the load average is printed and the matmul reference is re-measured next to every row.

Reference field: positional encoding of the point (10 frequencies -> 63 features) and of the
direction (4 frequencies -> 27 features), concatenated (90 features), then a 4-hidden-layer,
256-wide ReLU MLP with a 4-channel head (softplus density, sigmoid RGB). Its cost per point is
``2 * (90*256 + 3*256*256 + 256*4) = 441,344`` FLOPs forward (a multiply-add counts as 2); the
encoding, activations and compositing are not counted. A backward pass costs the same again for
the weight gradients plus the same minus the first layer for the input gradients.

Every ray evaluates the field at ``num_coarse`` points in the coarse pass and at
``num_coarse + num_fine`` points in the fine pass, so "samples/s" counts field evaluations.
The no-grad forward pass goes through ``render_in_chunks`` (chunks of ``--chunk`` rays), as
evaluation does; forward+backward renders the whole batch at once, as a training step does.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn

from nerfvae.rendering import RaySamplingConfig, render_in_chunks, render_rays

POSITION_FREQUENCIES = 10
DIRECTION_FREQUENCIES = 4
WIDTH = 256
HIDDEN_LAYERS = 4
INPUT_FEATURES = 3 * (1 + 2 * POSITION_FREQUENCIES) + 3 * (1 + 2 * DIRECTION_FREQUENCIES)
FIRST_LAYER_FLOPS = 2 * INPUT_FEATURES * WIDTH
FORWARD_FLOPS_PER_POINT = FIRST_LAYER_FLOPS + 2 * ((HIDDEN_LAYERS - 1) * WIDTH * WIDTH + WIDTH * 4)
# Backward: weight gradients cost one forward; input gradients one forward minus the first layer
# (the encoded input needs no gradient).
TRAIN_FLOPS_PER_POINT = 3 * FORWARD_FLOPS_PER_POINT - FIRST_LAYER_FLOPS


def positional_encoding(values: torch.Tensor, frequencies: int) -> torch.Tensor:
    """``[..., 3] -> [..., 3 * (1 + 2 * frequencies)]``: the input, then sin/cos of 2^k pi x."""
    scales = math.pi * 2.0 ** torch.arange(frequencies, dtype=values.dtype, device=values.device)
    angles = (values.unsqueeze(-1) * scales).flatten(-2)
    return torch.cat([values, torch.sin(angles), torch.cos(angles)], dim=-1)


class ReferenceField(nn.Module):
    """NeRF-style MLP field ``(points [..., N, 3], directions [..., N, 3]) -> density, colour``."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(INPUT_FEATURES, WIDTH), nn.ReLU()]
        for _ in range(HIDDEN_LAYERS - 1):
            layers += [nn.Linear(WIDTH, WIDTH), nn.ReLU()]
        layers.append(nn.Linear(WIDTH, 4))
        self.mlp = nn.Sequential(*layers)

    def forward(
        self, points: torch.Tensor, directions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.cat(
            [
                positional_encoding(points, POSITION_FREQUENCIES),
                positional_encoding(directions, DIRECTION_FREQUENCIES),
            ],
            dim=-1,
        )
        output = self.mlp(features).float()  # composite in fp32 even under bf16 autocast
        return nn.functional.softplus(output[..., 0]), torch.sigmoid(output[..., 1:])


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    """Best-of-``repeats`` GFLOP/s of a ``size``³ matrix product in ``dtype``."""
    generator = torch.Generator().manual_seed(0)
    left = torch.randn(size, size, generator=generator).to(dtype)
    right = torch.randn(size, size, generator=generator).to(dtype)
    left @ right  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        left @ right
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def make_rays(scenes: int, rays: int, generator: torch.Generator):
    """Rays from a ring of cameras through a unit-ish scene; ``[scenes, rays, ...]``."""
    origins = torch.nn.functional.normalize(
        torch.randn(scenes, rays, 3, generator=generator), dim=-1
    )
    origins = origins * 4.0
    targets = torch.randn(scenes, rays, 3, generator=generator) * 0.5
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    near = torch.full((scenes, rays), 2.0)
    far = torch.full((scenes, rays), 6.0)
    return origins, directions, near, far


def time_call(function: Callable[[], None], min_seconds: float) -> float:
    """Mean seconds per call, repeating until ``min_seconds`` have passed (at least once)."""
    calls, start = 0, time.perf_counter()
    while True:
        function()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


MATMUL_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
FORWARD = "forward (no_grad)"
TRAIN = "forward+backward"


def measure(
    field: ReferenceField,
    config: RaySamplingConfig,
    precision: str,
    mode: str,
    rays: int,
    chunk: int,
    generator: torch.Generator,
    min_seconds: float,
) -> float:
    """Seconds per batch of ``rays`` rays for one precision (fp32 | bf16) and mode."""
    origins, directions, near, far = make_rays(1, rays, generator)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def render_fn(o, d, n, f):
        return render_rays(field, o, d, n, f, config, generator=generator)

    def forward_only() -> None:
        with autocast:
            render_in_chunks(render_fn, origins, directions, near, far, chunk)

    def forward_backward() -> None:
        field.zero_grad(set_to_none=True)
        with autocast:
            output = render_fn(origins, directions, near, far)
            loss = output.final.colour.square().mean() + output.coarse.colour.mean()
        loss.backward()

    return time_call(forward_only if mode == FORWARD else forward_backward, min_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches, a few seconds")
    parser.add_argument("--num-coarse", type=int, default=64)
    parser.add_argument("--num-fine", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=1024, help="rays per no-grad chunk")
    parser.add_argument("--forward-rays", type=int, nargs="*", help="override no-grad batch sizes")
    parser.add_argument("--train-rays", type=int, nargs="*", help="override training batch sizes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.quick:
        forward_rays, train_rays, min_seconds = [256, 1024], [256], 0.3
    else:
        # 16k training rays would need ~16 GB of activations for this MLP and ~1 min per step.
        forward_rays, train_rays, min_seconds = [1024, 4096, 16384], [1024], 1.0
    forward_rays = args.forward_rays or forward_rays
    train_rays = args.train_rays or train_rays

    torch.manual_seed(0)
    field = ReferenceField()
    config = RaySamplingConfig(num_coarse=args.num_coarse, num_fine=args.num_fine)
    points_per_ray = 2 * args.num_coarse + args.num_fine if args.num_fine else args.num_coarse
    generator = torch.Generator().manual_seed(0)

    matmul_peak = {name: matmul_gflops(dtype) for name, dtype in MATMUL_DTYPES.items()}
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs ({platform.machine()}), load average before: {load}"
    )
    print(
        f"reference MLP: {INPUT_FEATURES} -> {HIDDEN_LAYERS}x{WIDTH} ReLU -> 4; "
        f"{FORWARD_FLOPS_PER_POINT:,} FLOPs/point forward, "
        f"{TRAIN_FLOPS_PER_POINT:,} forward+backward"
    )
    print(
        f"samples per ray: {args.num_coarse} coarse + {args.num_coarse + args.num_fine} fine pass"
        f" = {points_per_ray} field evaluations"
    )
    print(
        f"2048^3 matmul at start: fp32 {matmul_peak['fp32']:.1f} GFLOP/s, "
        f"bf16 {matmul_peak['bf16']:.1f} GFLOP/s\n"
    )

    rows = []
    for precision in ("fp32", "bf16"):
        for mode, ray_counts in ((FORWARD, forward_rays), (TRAIN, train_rays)):
            # Untimed warm-up at the largest working-set size of this mode: first calls pay for
            # kernel selection and for first-touching fresh memory pages (slow on this machine),
            # which would otherwise be charged to the first measured batch.
            largest = min(max(ray_counts), args.chunk) if mode == FORWARD else max(ray_counts)
            measure(field, config, precision, mode, largest, args.chunk, generator, 0.0)
            for rays in ray_counts:
                seconds = measure(
                    field, config, precision, mode, rays, args.chunk, generator, min_seconds
                )
                samples_per_second = rays * points_per_ray / seconds
                flops = FORWARD_FLOPS_PER_POINT if mode == FORWARD else TRAIN_FLOPS_PER_POINT
                gflops = samples_per_second * flops / 1e9
                # Re-measure the matmul right after each row: other processes on a shared machine
                # change the available CPU over time, and the ratio should compare like with like.
                matmul_now = matmul_gflops(MATMUL_DTYPES[precision], repeats=2)
                fraction = gflops / matmul_now
                rows.append(
                    (
                        precision,
                        mode,
                        rays,
                        seconds,
                        rays / seconds,
                        samples_per_second,
                        gflops,
                        matmul_now,
                        fraction,
                    )
                )
                print(f"  measured {precision} {mode} {rays} rays: {seconds:.3f} s", flush=True)

    print()
    print(
        "| precision | pass | rays | s/batch | rays/s | samples/s | MLP GFLOP/s "
        "| 2048³ matmul GFLOP/s | MLP / matmul |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for precision, mode, rays, seconds, ray_rate, sample_rate, gflops, matmul, fraction in rows:
        print(
            f"| {precision} | {mode} | {rays} | {seconds:.3f} | {ray_rate:,.0f} | "
            f"{sample_rate / 1e6:.2f} M | {gflops:.1f} | {matmul:.0f} | {100 * fraction:.0f}% |"
        )

    # Renderer overhead alone: sampling, sorting, compositing with a field that costs ~nothing.
    def free_field(points: torch.Tensor, directions: torch.Tensor):
        return points[..., 0].abs(), directions.abs()

    rays = forward_rays[-1]
    origins, directions, near, far = make_rays(1, rays, generator)

    def overhead() -> None:
        with torch.no_grad():
            render_rays(free_field, origins, directions, near, far, config, generator=generator)

    overhead()  # warm-up
    seconds = time_call(overhead, min_seconds)
    print(
        f"\nrenderer overhead (trivial field, no_grad, {rays} rays): {seconds:.3f} s/batch, "
        f"{rays * points_per_ray / seconds / 1e6:.1f} M samples/s"
    )


if __name__ == "__main__":
    main()
