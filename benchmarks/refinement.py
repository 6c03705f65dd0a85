"""Cost of test-time refinement against the encoder alone, by scenes refined together and rays.

Run from the repository root: ``python benchmarks/refinement.py`` (about two minutes on 2 idle
cores). It builds the ``small`` NeRF-VAE with a 16×16 latent grid, as the attention model (random
weights: cost does not depend on them), with bf16 autocast as the CLI runs it, and 3 context views
of 64×64 per scene. The first row is the encoder's forward pass (``model.infer``); each other row
is ``--steps`` refinement steps with the given scenes per batch and rays per scene. Prints a
markdown table: seconds per scene for the whole inference, seconds per refinement step, and the
ratio of the per-scene time to the encoder's. Like the ``nerfvae`` command, it re-executes itself
once with glibc's allocator tuned to reuse large blocks (``nerfvae/cli/malloc.py``), so it
measures what ``nerfvae eval --test-time.steps N`` gets.
"""

from __future__ import annotations

import argparse
import time

import torch

from nerfvae.cli.malloc import reexec_with_tuned_malloc
from nerfvae.geometry import intrinsics_matrix, look_at
from nerfvae.inference import RefinementConfig, infer_posterior
from nerfvae.models.config import LatentConfig
from nerfvae.training.config import preset
from nerfvae.training.loading import build_model

ROWS = ((1, 512), (4, 256), (4, 512), (4, 1024))  # (scenes per batch, rays per scene and step)


def context_views(scenes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    azimuth = torch.tensor([0.0, 2.1, 4.2])
    eye = torch.stack([4 * azimuth.cos(), 4 * azimuth.sin(), torch.full_like(azimuth, 1.5)], -1)
    c2w = look_at(eye, torch.tensor([0.0, 0.0, 0.8])).expand(scenes, 3, 4, 4)
    K = intrinsics_matrix(56.0, 56.0, 32.0, 32.0).expand(scenes, 3, 3, 3)
    images = torch.rand(scenes, 3, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    return images, K.contiguous(), c2w.contiguous()


def seconds(function, repeats: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    reexec_with_tuned_malloc()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = preset("small")
    config.nerfvae.latent = LatentConfig(layout="spatial", channels=16, grid=16)
    config.nerfvae.scene_min, config.nerfvae.scene_max = (-3.0, -3.0, 0.0), (3.0, 3.0, 2.5)
    model = build_model(config).eval()
    model.mixed_precision = True
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps\n")
    print("| inference | scenes per batch | rays per scene | s per scene | s per step | ratio |")
    print("|---|---|---|---|---|---|")
    views = context_views(4)
    with torch.no_grad():
        model.infer(*views)  # warm-up
        encoder = seconds(lambda: model.infer(*views), repeats=5) / 4
    print(f"| encoder alone | 4 | – | {encoder:.4f} | – | 1.0 |")
    for scenes, rays in ROWS:
        views = context_views(scenes)
        refinement = RefinementConfig(steps=args.steps, rays_per_scene=rays)
        infer_posterior(model, *views, RefinementConfig(steps=1, rays_per_scene=rays))  # warm-up
        total = seconds(lambda: infer_posterior(model, *views, refinement))  # noqa: B023
        per_scene = total / scenes
        print(
            f"| encoder + {args.steps} steps | {scenes} | {rays} | {per_scene:.3f} | "
            f"{total / args.steps:.3f} | {per_scene / encoder:.0f} |"
        )


if __name__ == "__main__":
    main()
