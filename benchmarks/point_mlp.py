"""The planes MLP in cache-sized blocks (``point_mlp``) against the plain modules, one process.

    python benchmarks/point_mlp.py [--repeats 20] [--threads N]

Times the shipped model's MLP shape (16 plane features + 15 encoded point inputs, 2 × 64 trunk,
density head, 32-wide colour layer on 15 encoded direction inputs, colour head) in float32 on the
CPU without gradients, at a rendered 64 × 64 view's field points (4,096 rays × 24 samples) and a
128 × 128 viewer frame's chunk (the same count). The two implementations alternate, best of
``--repeats`` each; prints a markdown table with the ratio. (With gradients ``point_mlp`` runs
the modules themselves, so there is nothing to compare.)
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
    generator = torch.Generator().manual_seed(0)

    features = torch.randn(RENDER_POINTS, 16, generator=generator)
    encoded = torch.randn(RENDER_POINTS, 15, generator=generator)
    directions = torch.randn(RENDER_POINTS, 15, generator=generator)

    implementations = {"blocked": point_mlp, "modules": point_mlp_reference}
    best = dict.fromkeys(implementations, float("inf"))
    with torch.no_grad():
        for function in implementations.values():
            function(features, encoded, directions, *modules)  # warm-up
        for _ in range(args.repeats):
            for name, function in implementations.items():
                start = time.perf_counter()
                function(features, encoded, directions, *modules)
                best[name] = min(best[name], time.perf_counter() - start)
    cpu = cpu_description()
    print(
        f"CPU: {cpu['name']} | native bfloat16: {cpu['native_bf16']} | threads: {cpu['threads']}"
        f" | block {BLOCK_ROWS} rows | best of {args.repeats}, float32"
    )
    blocked, plain = 1000 * best["blocked"], 1000 * best["modules"]
    print("| points, no gradients | blocked ms | modules ms | × faster |")
    print("|---:|---:|---:|---:|")
    print(f"| {RENDER_POINTS:,} | {blocked:.1f} | {plain:.1f} | {plain / blocked:.2f} |")


if __name__ == "__main__":
    main()
