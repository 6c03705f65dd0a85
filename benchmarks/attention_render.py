"""Render time and peak memory of the attention scene function by attention block size, on CPU.

Run from the repository root: ``python benchmarks/attention_render.py`` (about a minute on 2 idle
cores). It builds the ``small`` NeRF-VAE with a ``--grid`` × ``--grid`` latent (16 by default,
as the shipped model; random weights: cost does not depend on them), then renders ``--scenes``
scenes × one 64×64 view each through ``render_views`` (chunks of 8192 rays, as ``nerfvae eval``)
with ``scene_function.ATTENTION_BLOCK_ELEMENTS`` set to each size in turn, smallest first. Prints a
markdown table: seconds per view, the ratio to the first row, and the process's peak resident
memory after that row. Peak memory only grows, so with block sizes in increasing order each row's
peak is the largest block's so far, i.e. that row's own (the earlier rows needed less).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from nerfvae.models import scene_function
from nerfvae.models.config import LatentConfig
from nerfvae.training.config import preset
from nerfvae.training.loading import build_model

BLOCKS = (2**22, 2**24, 2**26, 2**40)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = preset("small")
    config.nerfvae.latent = LatentConfig(layout="spatial", channels=16, grid=args.grid)
    config.nerfvae.scene_min, config.nerfvae.scene_max = (-3.0, -3.0, 0.0), (3.0, 3.0, 2.5)
    model = build_model(config).eval()
    latent = model.prior(args.scenes).mean
    K = torch.tensor([[56.0, 0.0, 32.0], [0.0, 56.0, 32.0], [0.0, 0.0, 1.0]])
    K = K.expand(args.scenes, 1, 3, 3)
    c2w = torch.eye(4).expand(args.scenes, 1, 4, 4).clone()
    c2w[..., :3, :3] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    c2w[..., :3, 3] = torch.tensor([0.0, -2.5, 1.2])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, grid {args.grid}")
    print(f"start: peak resident memory {peak_rss_gb():.2f} GB\n")
    print("| logits per block | s per view | ratio to first row | peak memory (GB) |")
    print("|---|---|---|---|")
    reference = None
    for block in BLOCKS:
        scene_function.ATTENTION_BLOCK_ELEMENTS = block
        model.render_views(latent, K, c2w, 64, 64, chunk_rays=8192)  # warm-up
        started = time.perf_counter()
        for _ in range(args.repeats):
            model.render_views(latent, K, c2w, 64, 64, chunk_rays=8192)
        per_view = (time.perf_counter() - started) / (args.repeats * args.scenes)
        reference = reference or per_view
        label = "unbounded" if block == BLOCKS[-1] else f"2^{block.bit_length() - 1}"
        print(f"| {label} | {per_view:.3f} | {per_view / reference:.2f} | {peak_rss_gb():.2f} |")


if __name__ == "__main__":
    main()
