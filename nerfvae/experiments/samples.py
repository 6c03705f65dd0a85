"""``nerfvae experiment samples``: scenes sampled from the prior and a latent interpolation between
two inferred scenes, rendered from the same cameras.

Prior samples ``z ~ p(z)`` show what the model believes a scene can be; the interpolation
``z_t = (1 - t) z_a + t z_b`` between the posterior means of two test scenes (each inferred from its
first K ID views) shows whether the latent space is smooth. Both are rendered from held-out views of
the first scene or an orbit around it; the JSON records statistics of the renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from nerfvae import visualise as vis
from nerfvae.errors import ConfigError
from nerfvae.evaluation.views import parse_index_list
from nerfvae.experiments import common
from nerfvae.experiments import markdown as md
from nerfvae.experiments.figures import write_image_grid

DESCRIPTION = "prior samples and a latent interpolation between two scenes, rendered as figures"


@dataclass(kw_only=True)
class SamplesArgs(common.RunArgs):
    """Render `--num-prior` scenes drawn from the prior p(z), and the linear interpolation between
    the posterior means of two scenes (each inferred from its first `--context` ID views), from the
    same cameras. Writes prior_samples.png, interpolation.png, samples.json and samples.md."""

    num_prior: int = 6
    """Number of prior samples."""
    scenes: str = "0,1"
    """The two scene indices to interpolate between (`A,B`, distinct); scene A's cameras are used
    for every render."""
    context: int = 3
    """Context views K: ID views 0..K-1 of each scene give its posterior mean."""
    steps: int = 6
    """Interpolation steps, t = 0, 1/(steps-1), ..., 1 (at least 2)."""
    cameras: int = 3
    """Number of cameras every latent is rendered from."""
    camera_path: Literal["dataset", "orbit"] = "dataset"
    """`dataset`: non-context views of scene A spread over its held-out ID then OOD views; `orbit`:
    a circle around the scene at the ID cameras' mean distance and height."""
    out: str = "docs/results/samples"


def parse_scene_pair(text: str, num_scenes: int, split: str) -> tuple[int, int]:
    """``"A,B"`` -> two distinct scene indices of a split with ``num_scenes`` scenes."""
    extent = f"split {split!r} has scenes 0..{num_scenes - 1}"
    pair = parse_index_list(text, "--scenes", limit=num_scenes, noun="scene", extent=extent)
    if len(pair) != 2:
        raise ConfigError(f"--scenes {text!r}: expected exactly two scene indices, e.g. 0,1")
    return int(pair[0]), int(pair[1])


def spread_views(num_views: int, count: int) -> list[int]:
    """``count`` distinct view indices spread evenly over ``0..num_views-1`` (first and last
    included when ``count >= 2``), so both ID (first) and OOD (last) views appear."""
    if count == 1:
        return [0]
    return sorted({round(i * (num_views - 1) / (count - 1)) for i in range(count)})


def interpolate_latents(start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """Linear interpolation between latents ``start, end [T, C]``: ``[steps, T, C]`` with
    ``z_t = (1 - t) start + t end`` for ``t = linspace(0, 1, steps)``."""
    t = torch.linspace(0.0, 1.0, steps, dtype=start.dtype).reshape(steps, 1, 1)
    return (1.0 - t) * start + t * end


def render_statistics(colour: torch.Tensor, depth: torch.Tensor) -> dict[str, Any]:
    """Per latent of renders ``colour [N, V, H, W, 3]``, ``depth [N, V, H, W]``: mean RGB colour
    and mean finite depth (NaN for models without depth, such as GQN) over its views and pixels."""
    finite = [row[torch.isfinite(row)] for row in depth]
    return {
        "mean_colour": [[round(float(c), 5) for c in row] for row in colour.mean((1, 2, 3))],
        "mean_depth": [float(row.mean()) if row.numel() else math.nan for row in finite],
    }


def _colour_text(colour: list[float]) -> str:
    return ", ".join(f"{c:.3f}" for c in colour)


def markdown_report(result: dict[str, Any]) -> list[str]:
    """``samples.md``: settings and the statistics as tables."""
    settings, prior, interp = result["settings"], result["prior"], result["interpolation"]
    scene_a, scene_b = settings["scenes"]
    prior_rows = [
        [n, _colour_text(colour), md.format_number(depth, 3)]
        for n, (colour, depth) in enumerate(zip(prior["mean_colour"], prior["mean_depth"]))
    ]
    changes = [md.MISSING, *(md.format_number(change, 4) for change in interp["step_change"])]
    interp_rows = [
        [f"{t:.2f}", _colour_text(colour), md.format_number(depth, 3), change]
        for t, colour, depth, change in zip(
            interp["t"], interp["mean_colour"], interp["mean_depth"], changes
        )
    ]
    cameras = settings["cameras"]
    camera_text = (
        f"views {cameras['views']} of scene {scene_a}"
        if cameras["path"] == "dataset"
        else f"{cameras['count']} cameras on an orbit around scene {scene_a}"
    )
    return md.document(
        "Prior samples and latent interpolation",
        f"Run `{result['run']}` (checkpoint step {result.get('checkpoint_step')}) with "
        f"cameras from `{result['dataset']}` ({result['split']}): {camera_text}.",
        f"## Prior samples (`prior_samples.png`: one row per sample, colour then depth per "
        f"camera; seed {settings['seed']})",
        f"Per-pixel colour std across the {settings['num_prior']} samples, averaged over "
        f"pixels and cameras: {md.format_number(prior['image_std'], 4)} (0 would mean the "
        "prior samples all look alike).",
        md.table(["sample", "mean colour (RGB)", "mean depth"], prior_rows),
        "## Interpolation (`interpolation.png`: top row the first context view of scene "
        f"{scene_a} and of scene {scene_b}; then one row per camera, one column per t)",
        f"z_t = (1 − t) z_a + t z_b between the posterior means of scenes {settings['scenes']} "
        f"(context: ID views {settings['context_views']}); |z_b − z_a| = "
        f"{md.format_number(interp['latent_distance'], 3)}. PSNR of the t = 0 render against "
        f"scene {scene_a}'s ground truth at these cameras: "
        f"{md.format_number(interp.get('start_psnr'))} dB.",
        md.table(
            "t | mean colour (RGB) | mean depth | mean abs. change from previous step",
            interp_rows,
        ),
    )


def _check_positive(value: int, option: str, minimum: int, what: str) -> None:
    if value < minimum:
        raise ConfigError(f"{option} {value}: need at least {what}")


def run(argv: list[str], prog: str) -> int:
    args = common.parse_args(SamplesArgs, argv, prog)
    _check_positive(args.num_prior, "--num-prior", 1, "one prior sample")
    _check_positive(args.steps, "--steps", 2, "2 interpolation steps")
    _check_positive(args.cameras, "--cameras", 1, "one camera")

    from nerfvae.geometry import orbit_cameras
    from nerfvae.metrics import psnr

    model, _, record = common.load_run(args.run, args.checkpoint)
    dataset = common.load_dataset(args.data, args.split)
    scene_a, scene_b = parse_scene_pair(args.scenes, len(dataset), args.split)
    num_id, num_views = dataset.num_id_views, dataset.num_id_views + dataset.num_ood_views
    if not 1 <= args.context <= num_id:
        raise ConfigError(
            f"--context {args.context}: scenes of split {args.split!r} have {num_id} ID views"
        )
    held_out = num_views - args.context  # dataset cameras: views K.. (not context views)
    if args.camera_path == "dataset" and args.cameras > held_out:
        raise ConfigError(
            f"--cameras {args.cameras}: scenes of split {args.split!r} have only {held_out} views "
            f"besides the {args.context} context views (use --camera-path orbit for more)"
        )
    height, width = dataset.image_height, dataset.image_width
    scenes = [dataset.load_scene(scene_a), dataset.load_scene(scene_b)]
    images = [scene.images.float() / 255.0 for scene in scenes]
    first = scenes[0]
    if args.camera_path == "dataset":
        views = [args.context + v for v in spread_views(held_out, args.cameras)]
        K, c2w = first.K[views], first.c2w[views]
        view_is_ood = [bool(first.view_is_ood[v]) for v in views]
        camera_info = {"path": "dataset", "count": len(views), "views": views}
        camera_info["view_is_ood"] = view_is_ood
    else:
        views = []
        c2w = orbit_cameras(first.c2w[:num_id], args.cameras)
        K = first.K[0].expand(args.cameras, 3, 3)
        camera_info = {"path": "orbit", "count": args.cameras, "c2w": c2w.tolist()}

    generator = torch.Generator().manual_seed(args.seed)
    prior_latents = model.prior(args.num_prior).rsample(generator)  # [N, T, C]
    prior = vis.render_latents(model, prior_latents, K, c2w, height, width)
    prior_stats = render_statistics(prior["colour"], prior["depth"])
    prior_stats["image_std"] = math.nan  # a std needs two samples
    if args.num_prior > 1:
        pixel_std = prior["colour"].std(0)  # [V, H, W, 3] across samples
        prior_stats["image_std"] = float(pixel_std.mean())
        prior_stats["image_std_per_camera"] = pixel_std.mean((1, 2, 3)).tolist()
    prior_stats["latent_norm"] = prior_latents.flatten(1).norm(dim=1).tolist()

    context = list(range(args.context))
    with torch.no_grad():
        means = [
            model.infer(
                image[context][None], scene.K[context][None], scene.c2w[context][None]
            ).mean[0]
            for image, scene in zip(images, scenes)
        ]
    latents = interpolate_latents(means[0], means[1], args.steps)  # [steps, T, C]
    interp = vis.render_latents(model, latents, K, c2w, height, width)
    colour = interp["colour"]  # [steps, V, H, W, 3]
    interp_stats = {
        "t": torch.linspace(0.0, 1.0, args.steps).tolist(),
        **render_statistics(colour, interp["depth"]),
        "step_change": (colour[1:] - colour[:-1]).abs().mean((1, 2, 3, 4)).tolist(),
        "latent_distance": float((means[1] - means[0]).norm()),
    }
    if views:
        interp_stats["start_psnr"] = float(psnr(colour[0], images[0][views]))

    cameras = range(len(K))
    prior_rows = [
        [prior["colour"][n, j] for j in cameras]
        + [vis.depth_to_image(prior["depth"][n, j], dataset.far) for j in cameras]
        for n in range(args.num_prior)
    ]
    header = [images[0][0]] + [torch.ones(height, width, 3)] * (args.steps - 2) + [images[1][0]]
    interp_rows = [header] + [[colour[i, j] for i in range(args.steps)] for j in cameras]
    figures = {
        name: lambda _, path, rows=rows: write_image_grid(path, rows, min_height=96)
        for name, rows in (("prior_samples.png", prior_rows), ("interpolation.png", interp_rows))
    }
    note = f"held-out cameras {views}" if views else "orbit cameras"
    note += (
        f"; prior samples' per-pixel colour std {prior_stats['image_std']:.4f} over "
        f"{args.num_prior} samples"
    )
    result = common.result_header(
        "samples",
        "Prior samples z ~ p(z) and the linear interpolation between two scenes' posterior "
        "means, rendered from the same cameras.",
        run=str(args.run),
        checkpoint_step=record.get("step"),
        dataset=str(args.data),
        split=args.split,
        image_size=[height, width],
        settings={
            "num_prior": args.num_prior,
            "seed": args.seed,
            "scenes": [scene_a, scene_b],
            "scene_ids": [scene.scene_id for scene in scenes],
            "context_views": context,
            "steps": args.steps,
            "cameras": camera_info,
        },
        prior=prior_stats,
        interpolation=interp_stats,
        figures=list(figures),
        headline=[
            {
                "label": f"interpolation t = 0 (scene {scene_a}, K = {args.context})",
                "psnr": interp_stats.get("start_psnr"),
                "note": note,
            }
        ],
    )
    return common.finish(prog, argv, args.out, result, markdown_report, figures, [args.run])
