"""The planes MLP in cache-sized blocks (``point_mlp``) against the plain modules, one process.

    python benchmarks/point_mlp.py [--repeats 20] [--threads N]

Times the shipped model's MLP shape (16 plane features + 15 encoded point inputs, 2 × 64 trunk,
density head, 32-wide colour layer on 15 encoded direction inputs, colour head) in float32 on the
CPU, at two sizes: a rendered 64 × 64 view's field points without gradients (4,096 rays × 24
samples) and ``small``'s training batch forward + backward (36,864 points). The two
implementations alternate, best of ``--repeats`` each; prints a markdown table with the ratio.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from nerfvae.cli.malloc import reexec_with_tuned_malloc
from nerfvae.models.point_mlp import BLOCK_ROWS, point_mlp, point_mlp_reference
from nerfvae.precision import cpu_description

RENDER_POINTS = 4096 * 24
TRAIN_POINTS = 4 * 192 * 48


def shipped_shape_mlp() -> tuple[list[nn.Linear], nn.Linear, nn.Linear, nn.Linear]:
    torch.manual_seed(0)
    trunk = [nn.Linear(16 + 15, 64), nn.Linear(64, 64)]
    return trunk, nn.Linear(64, 1), nn.Linear(64 + 15, 32), nn.Linear(32, 3)


def main() -> None:
    reexec_with_tuned_malloc()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    modules = shipped_shape_mlp()
    parameters = [p for m in (*modules[0], *modules[1:]) for p in m.parameters()]
    generator = torch.Generator().manual_seed(0)

    def inputs(points: int, features_grad: bool):
        features = torch.randn(points, 16, generator=generator, requires_grad=features_grad)
        return features, torch.randn(points, 15, generator=generator), torch.randn(points, 15)

    render_inputs = inputs(RENDER_POINTS, False)
    train_inputs = inputs(TRAIN_POINTS, True)

    def render(function):
        with torch.no_grad():
            function(*render_inputs, *modules)

    def train(function):
        density, colour = function(*train_inputs, *modules)
        grads = torch.autograd.grad(density.sum() + colour.sum(), [train_inputs[0], *parameters])
        return grads

    cases = {"render, no gradients": render, "train, forward + backward": train}
    implementations = {"blocked": point_mlp, "modules": point_mlp_reference}
    best = {(case, name): float("inf") for case in cases for name in implementations}
    for case, run in cases.items():
        for function in implementations.values():
            run(function)  # warm-up
        for _ in range(args.repeats):
            for name, function in implementations.items():
                start = time.perf_counter()
                run(function)
                best[case, name] = min(best[case, name], time.perf_counter() - start)
    cpu = cpu_description()
    print(
        f"CPU: {cpu['name']} | native bfloat16: {cpu['native_bf16']} | threads: {cpu['threads']}"
        f" | block {BLOCK_ROWS} rows | best of {args.repeats}, float32"
    )
    print("| case | points | blocked ms | modules ms | × faster |")
    print("|---|---:|---:|---:|---:|")
    for case in cases:
        points = RENDER_POINTS if case.startswith("render") else TRAIN_POINTS
        blocked, plain = 1000 * best[case, "blocked"], 1000 * best[case, "modules"]
        print(f"| {case} | {points:,} | {blocked:.1f} | {plain:.1f} | {plain / blocked:.2f} |")


if __name__ == "__main__":
    main()
