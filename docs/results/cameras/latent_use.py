"""How much a trained model's renders use its latent: PSNR on the ID targets (views 3-9) from the
posterior mean of K = 3 context views minus PSNR from z = 0, per test scene, with its 95%
bootstrap interval over scenes.

``python docs/results/cameras/latent_use.py RUN DATA [--scenes 20]``
"""

from __future__ import annotations

import argparse

import torch

from nerfvae.experiments.common import load_dataset, load_run
from nerfvae.inference import infer_scene
from nerfvae.metrics import psnr
from nerfvae.statistics import bootstrap_interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("data")
    parser.add_argument("--scenes", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, _, record = load_run(args.run)
    dataset = load_dataset(args.data, "test")
    targets = list(range(3, 10))
    differences = []
    for index in range(min(args.scenes, len(dataset))):
        scene = dataset.load_scene(index)
        generator = torch.Generator().manual_seed(index)
        posterior = infer_scene(model, scene.images, scene.K, scene.c2w, [0, 1, 2], None, generator)
        K, c2w = scene.K[targets][None].float(), scene.c2w[targets][None].float()
        truth = scene.images[targets].float() / 255.0
        scores = []
        for latent in (posterior.mean, torch.zeros_like(posterior.mean)):
            colour = model.render_views(latent, K, c2w, *truth.shape[1:3])["colour"][0]
            scores.append(
                sum(psnr(colour[v], truth[v]) for v in range(len(targets))) / len(targets)
            )
        differences.append(scores[0] - scores[1])
    interval = bootstrap_interval(differences)
    print(
        f"{args.run} (step {record['step']}): PSNR from the posterior mean − from z = 0, K = 3, "
        f"{interval.count} scenes: {interval.mean:.2f} dB [{interval.low:.2f}, {interval.high:.2f}]"
    )


if __name__ == "__main__":
    main()
