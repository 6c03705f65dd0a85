"""Density-grid sampling against the model's own sampling, on a trained run and real views.

    python benchmarks/density_grid.py --run assets/model --data data/small [--height 128]

For each test scene, the posterior mean from context views ``0..K-1`` is rendered from the
scene's other views (ID and OOD) twice: with the model's own sampling (``small``: 32 coarse + 16
fine field evaluations per ray) and with a density grid baked from the latent
(:mod:`nerfvae.rendering.density_grid`) placing ``--field-samples`` field evaluations per ray,
for every grid ``--resolutions``. Prints, per setting: the bake's time per scene, a frame's time
and its ratio to the model's own sampling measured in the same process, the grid render's PSNR
against the model's own render (how much the approximation changes the picture) and, at the
dataset's image size, both renders' PSNR against the dataset image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from nerfvae.data.loader import MultiSceneDataset
from nerfvae.inference import infer_scene
from nerfvae.metrics import psnr
from nerfvae.precision import cpu_description
from nerfvae.rendering import DensityGridConfig, bake_density_grid
from nerfvae.training.loading import load_trained_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="assets/model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--context", type=int, default=3)
    parser.add_argument("--views", type=int, default=4, help="target views per scene (at most)")
    parser.add_argument("--height", type=int, default=0, help="render height (0: the dataset's)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[48, 64, 96])
    parser.add_argument("--field-samples", type=int, nargs="+", default=[4, 6, 8, 12])
    parser.add_argument("--precision", default=None, help="auto, fp32 or bf16 (default: run's)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", help="write the rows to this JSON file")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model, config, record = load_trained_model(args.run, precision=args.precision)
    dataset = MultiSceneDataset(args.data, args.split)
    meta = dataset.meta
    height = args.height or meta.image_height
    scale = height / meta.image_height
    width = round(meta.image_width * scale)
    native = height == meta.image_height
    cpu = cpu_description()
    print(
        f"CPU: {cpu['name']} | native bfloat16: {cpu['native_bf16']} | threads: "
        f"{torch.get_num_threads()} | precision {config.precision} | run {args.run} (step "
        f"{record['step']}) | {height}x{width} frames | model sampling {model.sampling}"
    )

    exact_ms, rows = [], {}
    exact_truth, grid_truth = [], {}
    for index in range(min(args.scenes, len(dataset))):
        scene = dataset.load_scene(index)
        context = list(range(args.context))
        generator = torch.Generator().manual_seed(0)
        latent = infer_scene(model, scene.images, scene.K, scene.c2w, context, None, generator).mean
        views = [v for v in range(scene.num_views) if v not in context][: args.views]
        K = scene.K[views].clone()
        K[:, :2] *= scale
        c2w = scene.c2w[views]
        truth = scene.images[views].float() / 255
        exact = []
        for v in range(len(views)):
            start = time.perf_counter()
            out = model.render_views(
                latent, K[None, v : v + 1], c2w[None, v : v + 1], height, width
            )
            exact_ms.append(1000 * (time.perf_counter() - start))
            exact.append(out["colour"][0, 0])
            if native:
                exact_truth.append(float(psnr(out["colour"][0, 0], truth[v])))
        for resolution in args.resolutions:
            start = time.perf_counter()
            with torch.no_grad():
                grid = bake_density_grid(
                    model.field(latent), model.scene_min, model.scene_max, 1, resolution
                )
            bake_ms = 1000 * (time.perf_counter() - start)
            for samples in args.field_samples:
                sampling = DensityGridConfig(resolution, samples).sampling(model.sampling)
                row = rows.setdefault(
                    (resolution, samples), {"bake_ms": [], "frame_ms": [], "psnr_vs_own": []}
                )
                row["bake_ms"].append(bake_ms)
                for v in range(len(views)):
                    start = time.perf_counter()
                    out = model.render_views(
                        latent, K[None, v : v + 1], c2w[None, v : v + 1], height, width,
                        sampling=sampling, proposal_density=grid,
                    )  # fmt: skip
                    row["frame_ms"].append(1000 * (time.perf_counter() - start))
                    colour = out["colour"][0, 0]
                    row["psnr_vs_own"].append(float(psnr(colour, exact[v])))
                    if native:
                        grid_truth.setdefault((resolution, samples), []).append(
                            float(psnr(colour, truth[v]))
                        )

    own_ms = statistics.median(exact_ms)
    print(
        f"\nmodel's own sampling: {own_ms:.0f} ms a frame"
        + (f", PSNR vs dataset {statistics.mean(exact_truth):.2f} dB" if native else "")
        + f" (median / mean over {len(exact_ms)} views)\n"
    )
    print(
        "| grid nodes | field samples | bake ms | frame ms | x faster | PSNR vs own (mean / min) "
        "| PSNR vs dataset |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    table = []
    for (resolution, samples), row in rows.items():
        frame_ms = statistics.median(row["frame_ms"])
        entry = {
            "resolution": resolution,
            "field_samples": samples,
            "bake_ms": statistics.mean(row["bake_ms"]),
            "frame_ms": frame_ms,
            "speedup": own_ms / frame_ms,
            "psnr_vs_own_mean": statistics.mean(row["psnr_vs_own"]),
            "psnr_vs_own_min": min(row["psnr_vs_own"]),
        }
        if native:
            entry["psnr_vs_dataset"] = statistics.mean(grid_truth[(resolution, samples)])
        table.append(entry)
        truth_text = f"{entry['psnr_vs_dataset']:.2f}" if native else "–"
        print(
            f"| {resolution} | {samples} | {entry['bake_ms']:.0f} | {frame_ms:.0f} | "
            f"{entry['speedup']:.1f} | {entry['psnr_vs_own_mean']:.1f} / "
            f"{entry['psnr_vs_own_min']:.1f} | {truth_text} |"
        )
    if args.json:
        result = {
            "cpu": cpu,
            "threads": torch.get_num_threads(),
            "precision": config.precision,
            "run": args.run,
            "height": height,
            "own_frame_ms": own_ms,
            "own_psnr_vs_dataset": statistics.mean(exact_truth) if native else None,
            "rows": table,
        }
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
