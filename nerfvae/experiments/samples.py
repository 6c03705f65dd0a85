"""``nerfvae experiment samples``: scenes sampled from the prior and a latent interpolation between
two inferred scenes, rendered from the same cameras.

Prior samples ``z ~ p(z)`` (a seeded generator) show what the model believes a scene can be; the
interpolation ``z_t = (1 - t) z_a + t z_b`` between the posterior means of two test scenes (each
inferred from its first K ID views) shows whether the latent space is smooth. Both are rendered
from a few dataset cameras (held-out ID and OOD views of the first scene) or an orbit around them. The JSON
records the settings and simple statistics of the renders, so the figure can be checked by numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from nerfvae import visualise as vis
from nerfvae.errors import ConfigError
from nerfvae.evaluation.views import parse_index_list
from nerfvae.experiments.common import (
    RunArgs,
    finish,
    load_dataset,
    load_run,
    parse_args,
    result_header,
)
from nerfvae.experiments.markdown import MISSING, format_number, markdown_header, markdown_row
from nerfvae.experiments.provenance import provenance_section

DESCRIPTION = "prior samples and a latent interpolation between two scenes, rendered as figures"


@dataclass(kw_only=True)
class SamplesArgs(RunArgs):
    """Render `--num-prior` scenes drawn from the prior p(z), and the linear interpolation between
    the posterior means of two scenes (each inferred from its first `--context` ID views), from the
    same cameras. Writes `prior_samples.png`, `interpolation.png`, `samples.json` and `samples.md`
    under `--out`."""

    num_prior: int = 6
    """Number of prior samples."""
    scenes: str = "0,1"
    """The two scene indices to interpolate between, comma-separated, each at most once (`A,B`);
    scene A's cameras are used for every render."""
    context: int = 3
    """Context views K: ID views 0..K-1 of each scene give its posterior mean."""
    steps: int = 6
    """Interpolation steps, t = 0, 1/(steps-1), ..., 1 (at least 2)."""
    cameras: int = 3
    """Number of cameras every latent is rendered from."""
    camera_path: Literal["dataset", "orbit"] = "dataset"
    """`dataset`: views of scene A that are not context views, spread evenly over its held-out ID
    then OOD views; `orbit`: a circle around the scene at the ID cameras' mean distance and height
    (`orbit_cameras`)."""
    out: str = "docs/results/samples"
    """Output directory."""


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


def _mean_depth(depth: torch.Tensor) -> float:
    """Mean of finite depth values (NaN for models without depth, such as the GQN baseline)."""
    finite = depth[torch.isfinite(depth)]
    return float(finite.mean()) if finite.numel() else math.nan


def render_statistics(colour: torch.Tensor, depth: torch.Tensor) -> dict[str, Any]:
    """Per latent of renders ``colour [N, V, H, W, 3]``, ``depth [N, V, H, W]``: mean RGB colour
    and mean depth over all its views and pixels."""
    return {
        "mean_colour": [[round(float(c), 5) for c in row] for row in colour.mean((1, 2, 3))],
        "mean_depth": [_mean_depth(row) for row in depth],
    }


def _colour_text(colour: list[float]) -> str:
    """A mean RGB colour as ``r, g, b`` with three decimals."""
    return ", ".join(f"{c:.3f}" for c in colour)


def markdown_report(result: dict[str, Any]) -> str:
    """``samples.md``: settings, the statistics as tables, the command and provenance."""
    settings, prior, interp = result["settings"], result["prior"], result["interpolation"]
    prior_rows = markdown_header(["sample", "mean colour (RGB)", "mean depth"])
    for n, (colour, depth) in enumerate(zip(prior["mean_colour"], prior["mean_depth"])):
        prior_rows.append(markdown_row([n, _colour_text(colour), format_number(depth, 3)]))
    interp_rows = markdown_header(
        ["t", "mean colour (RGB)", "mean depth", "mean abs. change from previous step"]
    )
    for i, t in enumerate(interp["t"]):
        change = MISSING if i == 0 else format_number(interp["step_change"][i - 1], 4)
        interp_rows.append(
            markdown_row(
                [
                    f"{t:.2f}",
                    _colour_text(interp["mean_colour"][i]),
                    format_number(interp["mean_depth"][i], 3),
                    change,
                ]
            )
        )
    cameras = settings["cameras"]
    camera_text = (
        f"views {cameras['views']} of scene {settings['scenes'][0]}"
        if cameras["path"] == "dataset"
        else f"{cameras['count']} cameras on an orbit around scene {settings['scenes'][0]}"
    )
    return "\n".join(
        [
            "# Prior samples and latent interpolation",
            "",
            f"Run `{result['run']}` (checkpoint step {result.get('checkpoint_step')}) with "
            f"cameras from `{result['dataset']}` ({result['split']}): {camera_text}.",
            "",
            f"## Prior samples (`prior_samples.png`: one row per sample, colour then depth per "
            f"camera; seed {settings['seed']})",
            "",
            f"Per-pixel colour std across the {settings['num_prior']} samples, averaged over "
            f"pixels and cameras: {format_number(prior['image_std'], 4)} (0 would mean the prior "
            "samples all look alike).",
            "",
            *prior_rows,
            "",
            "## Interpolation (`interpolation.png`: top row the first context view of scene "
            f"{settings['scenes'][0]} and of scene {settings['scenes'][1]}; then one row per "
            "camera, one column per t)",
            "",
            f"z_t = (1 − t) z_a + t z_b between the posterior means of scenes {settings['scenes']} "
            f"(context: ID views {settings['context_views']}); |z_b − z_a| = "
            f"{format_number(interp['latent_distance'], 3)}. PSNR of the t = 0 render against "
            f"scene {settings['scenes'][0]}'s ground truth at these cameras: "
            f"{format_number(interp.get('start_psnr'))} dB.",
            "",
            *interp_rows,
            "",
            *provenance_section(result["provenance"]),
            "",
        ]
    )


def run(argv: list[str], prog: str) -> int:
    args = parse_args(SamplesArgs, argv, prog)
    if args.num_prior < 1:
        raise ConfigError(f"--num-prior {args.num_prior}: need at least one prior sample")
    if args.steps < 2:
        raise ConfigError(f"--steps {args.steps}: need at least 2 interpolation steps")
    if args.cameras < 1:
        raise ConfigError(f"--cameras {args.cameras}: need at least one camera")

    from nerfvae.geometry import orbit_cameras
    from nerfvae.metrics import psnr

    model, _, record = load_run(args.run, args.checkpoint)
    dataset = load_dataset(args.data, args.split)
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
        camera_info: dict[str, Any] = {
            "path": "dataset",
            "count": len(views),
            "views": views,
            "view_is_ood": [bool(first.view_is_ood[v]) for v in views],
        }
    else:
        views = []
        c2w = orbit_cameras(first.c2w[:num_id], args.cameras)
        K = first.K[0].expand(args.cameras, 3, 3)
        camera_info = {"path": "orbit", "count": args.cameras, "c2w": c2w.tolist()}

    # Prior samples.
    generator = torch.Generator().manual_seed(args.seed)
    prior_latents = model.prior(args.num_prior).rsample(generator)  # [N, T, C]
    prior = vis.render_latents(model, prior_latents, K, c2w, height, width)
    prior_stats: dict[str, Any] = render_statistics(prior["colour"], prior["depth"])
    if args.num_prior > 1:
        prior_stats["image_std"] = float(prior["colour"].std(0).mean())
        prior_stats["image_std_per_camera"] = prior["colour"].std(0).mean((1, 2, 3)).tolist()
    else:
        prior_stats["image_std"] = math.nan
    prior_stats["latent_norm"] = prior_latents.flatten(1).norm(dim=1).tolist()

    # Interpolation between posterior means.
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
    t_values = torch.linspace(0.0, 1.0, args.steps).tolist()
    interp_stats: dict[str, Any] = {"t": t_values}
    interp_stats.update(render_statistics(colour, interp["depth"]))
    interp_stats["step_change"] = (colour[1:] - colour[:-1]).abs().mean((1, 2, 3, 4)).tolist()
    interp_stats["latent_distance"] = float((means[1] - means[0]).norm())
    if views:
        interp_stats["start_psnr"] = float(psnr(colour[0], images[0][views]))

    far = dataset.far
    prior_rows = [
        [prior["colour"][n, j] for j in range(len(K))]
        + [vis.depth_to_image(prior["depth"][n, j], far) for j in range(len(K))]
        for n in range(args.num_prior)
    ]
    blank = torch.ones(height, width, 3)
    header = [images[0][0]] + [blank] * (args.steps - 2) + [images[1][0]]
    interp_rows = [header] + [[colour[i, j] for i in range(args.steps)] for j in range(len(K))]
    scale = max(1, 96 // height)

    def grid_figure(rows: list[list[torch.Tensor]]):
        grid = vis.image_grid(rows).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
        return lambda path: vis.write_png(path, grid)

    figures = {
        "prior_samples.png": grid_figure(prior_rows),
        "interpolation.png": grid_figure(interp_rows),
    }
    if views:
        note = f"held-out cameras {views}"
    else:
        note = "orbit cameras"
    note += (
        f"; prior samples' per-pixel colour std {prior_stats['image_std']:.4f} over "
        f"{args.num_prior} samples"
    )
    result = result_header(
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
    return finish(prog, argv, [args.run], args.out, "samples", result, markdown_report, figures)
