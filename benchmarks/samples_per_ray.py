"""Render quality and cost against samples per ray, for a trained run.

    python benchmarks/samples_per_ray.py --run RUN --data DATA [--scenes 8] [--context 3]

Infers each test scene from its first K views with the encoder, then renders the scene's held-out
ID and OOD views with several sampling settings and prints, per setting, the PSNR of the renders
against the ground truth, their PSNR against the densest setting's renders (how far fewer samples
move the picture), and the render time per 64 × 64 view. For a run with the proposal sampler the
settings vary the proposal's samples (``num_coarse``) and the field's (``num_fine``); for a
hierarchical run, the coarse and fine counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from nerfvae.cli.malloc import reexec_with_tuned_malloc
from nerfvae.data.loader import MultiSceneDataset
from nerfvae.inference import infer_scene
from nerfvae.training.loading import load_trained_model

PROPOSAL_SETTINGS = ((128, 64), (64, 48), (64, 24), (64, 16), (32, 16), (64, 8), (32, 8))
HIERARCHICAL_SETTINGS = ((128, 64), (64, 32), (32, 16), (24, 8), (16, 8), (16, 0))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10.0 * torch.log10((a - b).square().mean().clamp_min(1e-10)))


def main() -> None:
    reexec_with_tuned_malloc()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--context", type=int, default=3)
    parser.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16"))
    args = parser.parse_args()

    model, config, _ = load_trained_model(args.run, precision=args.precision)
    sampling = model.config.sampling
    settings = PROPOSAL_SETTINGS if sampling.sampler == "proposal" else HIERARCHICAL_SETTINGS
    dataset = MultiSceneDataset(args.data, args.split)
    meta = dataset.meta
    height, width = meta.image_height, meta.image_width
    scenes = [dataset.load_scene(i) for i in range(min(args.scenes, len(dataset)))]
    latents, targets = [], []
    for scene in scenes:
        posterior = infer_scene(model, scene.images, scene.K, scene.c2w, list(range(args.context)))
        latents.append(posterior.mean)
        targets.append(slice(args.context, scene.num_views))
    print(
        f"run {args.run} ({sampling.sampler} sampler, trained with {sampling.num_coarse} + "
        f"{sampling.num_fine}), precision {config.precision}, {len(scenes)} {args.split} scenes, "
        f"K = {args.context}, {height}x{width}"
    )
    renders: dict[tuple[int, int], list[torch.Tensor]] = {}
    timings: dict[tuple[int, int], float] = {}
    for coarse, fine in settings:
        model.config.sampling = dataclasses.replace(sampling, num_coarse=coarse, num_fine=fine)
        views, started = [], time.perf_counter()
        count = 0
        for scene, latent, target in zip(scenes, latents, targets):
            out = model.render_views(
                latent.clone(), scene.K[None, target], scene.c2w[None, target], height, width
            )
            views.append(out["colour"][0])
            count += out["colour"].shape[1]
        timings[(coarse, fine)] = 1000.0 * (time.perf_counter() - started) / count
        renders[(coarse, fine)] = views
    model.config.sampling = sampling
    densest = settings[0]
    header = (
        f"{'coarse':>6} {'fine':>5} {'PSNR vs truth':>14} {'PSNR vs densest':>16} {'ms / view':>10}"
    )
    print(header)
    print("-" * len(header))
    for key in settings:
        truth = torch.cat(
            [scene.images[target].float() / 255.0 for scene, target in zip(scenes, targets)]
        )
        rendered = torch.cat(renders[key], dim=0)
        reference = torch.cat(renders[densest], dim=0)
        versus_densest = psnr(rendered, reference) if key != densest else float("inf")
        print(
            f"{key[0]:>6} {key[1]:>5} {psnr(rendered, truth):>14.2f} {versus_densest:>16.2f} "
            f"{timings[key]:>10.1f}"
        )


if __name__ == "__main__":
    main()
