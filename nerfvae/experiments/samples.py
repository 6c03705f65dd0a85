"""``nerfvae experiment samples``: scenes sampled from the prior and a latent interpolation between
two inferred scenes, rendered from the same cameras.

Prior samples ``z ~ p(z)`` show what the model believes a scene can be; the interpolation
``z_t = (1 - t) z_a + t z_b`` between the posterior means of two test scenes (each inferred from its
first K ID views) shows whether the latent space is smooth. Both are rendered from held-out views of
the first scene or an orbit around it; the JSON records statistics of the renders.

With ``--quality`` it also measures how close samples of each prior the run has (N(0, I), the
aggregate and the learned prior) are to real scenes (:mod:`nerfvae.evaluation.sample_quality`):
the Fréchet distance of a feature network trained on the dataset's own labels, over several seeds,
beside the distance between two sets of real views (the noise floor) and that of reconstructions;
and the objects counted in the sampled fields beside the generator's counts and the counter's
agreement with the truth on reconstructions of test scenes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from nerfvae import visualise as vis
from nerfvae.errors import ConfigError, check_at_least
from nerfvae.evaluation import markdown as md
from nerfvae.evaluation.aggregate_prior import posterior_means
from nerfvae.evaluation.figures import write_image_grid
from nerfvae.evaluation.sample_quality import (
    FeatureNetworkConfig,
    ObjectCounterConfig,
    counter_axes,
)
from nerfvae.evaluation.scene_priors import prior_samplers, scene_prior
from nerfvae.evaluation.views import parse_index_list
from nerfvae.experiment_reports import samples as samples_report
from nerfvae.experiments import common

DESCRIPTION = "prior samples and a latent interpolation between two scenes, rendered as figures"


@dataclass(kw_only=True)
class SamplesArgs(common.RunArgs):
    """Render `--num-prior` scenes drawn from the prior p(z), and the linear interpolation between
    the posterior means of two scenes (each inferred from its first `--context` ID views), from the
    same cameras. Writes prior_samples.png, interpolation.png, samples.json and samples.md. With
    `--quality`, also scores samples of each prior the run has against real test scenes."""

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
    prior: Literal["standard", "aggregate", "learned"] = "standard"
    """Prior of the prior-samples figure: `standard` N(0, I), `aggregate` (the run's
    RUN/aggregate_prior.safetensors for its checkpoint) or `learned` (its learned prior)."""
    guidance: float | None = None
    """Autoguidance weight of the learned prior's samples, in the figure and the quality measure
    (default: the prior's own; 1 samples without its guide; see `nerfvae sample --guidance`)."""
    quality: bool = False
    """Measure the quality of samples of the priors in --quality-priors (minutes: a feature network
    is trained once per run and dataset, and every sample is rendered and counted)."""
    quality_priors: str = "standard,aggregate,learned"
    """Priors whose samples --quality scores, comma-separated; those the run has no file for (for
    its checkpoint) are skipped with a note."""
    quality_seeds: int = 3
    """Seeds of the quality measure: --seed, --seed + 1, ... (the spread over seeds is reported)."""
    quality_samples: int = 50
    """Latents per prior and seed; sample i is rendered from the held-out cameras of scene
    i mod S, S = min(this, scenes in the split), and compared with those scenes' real views."""
    quality_views: int = 3
    """Cameras per sample: ID views K .. K + N - 1 of its scene (K = --context)."""
    features: FeatureNetworkConfig = field(default_factory=FeatureNetworkConfig)
    """How the feature network is trained (when RUN/sample_quality_features.safetensors does not
    hold one for this dataset)."""
    refit_features: bool = False
    """Train the feature network again even if the run has one for this dataset."""
    counter: ObjectCounterConfig = field(default_factory=ObjectCounterConfig)
    """How objects are counted in a sampled field."""
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


PRIOR_NAMES = ("standard", "aggregate", "learned")
"""The priors a run may sample from: N(0, I), and the two fitted to training posteriors."""


def parse_prior_names(text: str) -> list[str]:
    """``"standard,aggregate"`` -> the distinct prior names, in order; ConfigError naming
    --quality-priors for an unknown one or none."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in PRIOR_NAMES]
    if unknown or not names:
        raise ConfigError(
            f"--quality-priors {text!r}: choose from {', '.join(PRIOR_NAMES)} (comma-separated)"
        )
    return names


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


def check_quality_options(args: SamplesArgs, dataset) -> list[str]:
    """ConfigError naming the option for a --quality setting the split cannot serve (checked
    before anything is rendered); returns the prior names of --quality-priors."""
    names = parse_prior_names(args.quality_priors)
    check_at_least(args.quality_seeds, "--quality-seeds", 1, "one seed")
    check_at_least(args.quality_samples, "--quality-samples", 2, "2 samples per seed")
    check_at_least(args.quality_views, "--quality-views", 1, "one view per sample")
    if args.context + args.quality_views > dataset.num_id_views:
        raise ConfigError(
            f"--quality-views {args.quality_views}: scenes of split {args.split!r} have "
            f"{dataset.num_id_views} ID views, {args.context} of them context views"
        )
    args.features.check("--features")
    args.counter.check("--counter")
    counter_axes(*dataset.scene_bounds, args.counter)  # the margins leave room to count in
    return names


def measure_quality(args: SamplesArgs, model, record: dict[str, Any], dataset) -> dict[str, Any]:
    """The ``quality`` section of samples.json (:mod:`nerfvae.evaluation.sample_quality`): the
    feature network's record, per prior the Fréchet distance over seeds and the counted objects,
    and beside them the real views' noise floor, the posterior means' scores with the counter's
    calibration, and the generator's own statistics of the split."""
    from nerfvae.evaluation import sample_quality as quality
    from nerfvae.models import RaySceneModel

    names = check_quality_options(args, dataset)
    # the noise floor's real views: a split the feature network never saw, if there is one
    others = [name for name in ("val", "test") if name != args.split]
    floor_split = next((name for name in others if name in dataset.meta.splits), "train")
    path = Path(args.run) / quality.FEATURES_FILE
    network, feature_info, trained = quality.feature_network(
        path, args.data, args.features, args.refit_features, log=print
    )
    accuracy = feature_info.get("held_out_accuracy") or {}
    print(
        f"feature network {'trained' if trained else 'read from'} {path}: object count right in "
        f"{md.format_percent(accuracy.get('count_accuracy'))} of the held-out views (most "
        f"frequent count: {md.format_percent(accuracy.get('count_majority'))})"
    )
    seeds = [args.seed + offset for offset in range(args.quality_seeds)]
    scenes = min(args.quality_samples, len(dataset))
    reference = quality.real_views(dataset, scenes, args.quality_views, first_view=args.context)
    real_features = quality.reference_features(network, reference)
    chosen, skipped = prior_samplers(args.run, model, record, names, args.guidance)
    samplers = {name: prior.rsample for name, prior in chosen.items()}
    learned = chosen.get("learned")
    learned_guidance = None if learned is None else learned.sampler.sampling_guidance
    for line in skipped:
        print(line)
    counter = args.counter if isinstance(model, RaySceneModel) else None
    priors = quality.score_priors(
        model, samplers, reference, network, seeds, args.quality_samples, counter, log=print
    )
    renders = args.quality_samples * args.quality_views
    floor_views = common.load_dataset(args.data, floor_split)
    floor = quality.real_view_floor(network, reference, floor_views, seeds, renders, real_features)
    if counter is not None:
        posterior = quality.calibrate_counter(
            model, dataset, reference, args.context, counter, network, real_features
        )
    else:  # reconstructions scored without counts
        skipped.append("object counts skipped: the model renders no radiance field to count in")
        means = posterior_means(model, dataset, scenes, args.context)
        scored = quality.score_latents(model, means, reference, network, None, real_features)
        posterior = {"scenes": scenes, "frechet_distance": scored["frechet_distance"]}
    return {
        "settings": {
            "priors": names,
            "split": args.split,
            "seeds": seeds,
            "samples_per_seed": args.quality_samples,
            "views_per_sample": reference.view_indices,
            "reference_scenes": scenes,
            "reference_views": scenes * args.quality_views,
            "renders_per_seed": renders,
            "context_views": args.context,
            "counter": dataclasses.asdict(args.counter),
            "learned_guidance": learned_guidance,
        },
        "feature_network": {**feature_info, "file": str(path), "trained_now": trained},
        "priors": priors,
        "skipped": skipped,
        "real_floor": floor,
        "posterior": posterior,
        "generator": quality.generator_statistics(dataset),
    }


def run(argv: list[str], prog: str) -> int:
    args = common.parse_args(SamplesArgs, argv, prog)
    check_at_least(args.num_prior, "--num-prior", 1, "one prior sample")
    check_at_least(args.steps, "--steps", 2, "2 interpolation steps")
    check_at_least(args.cameras, "--cameras", 1, "one camera")

    from nerfvae.geometry import orbit_cameras
    from nerfvae.metrics import psnr

    model, record, dataset = common.setup_run(args)
    scene_a, scene_b = parse_scene_pair(args.scenes, len(dataset), args.split)
    num_id, num_views = dataset.num_id_views, dataset.num_id_views + dataset.num_ood_views
    if not 1 <= args.context <= num_id:
        raise ConfigError(
            f"--context {args.context}: scenes of split {args.split!r} have {num_id} ID views"
        )
    if args.quality:
        check_quality_options(args, dataset)
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
    prior_latents = scene_prior(args.run, model, record, args.prior, args.guidance).rsample(
        args.num_prior, generator
    )  # [N, T, C]
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
        **common.run_fields(args, record),
        image_size=[height, width],
        settings={
            "num_prior": args.num_prior,
            "prior": args.prior,
            "seed": args.seed,
            "scenes": [scene_a, scene_b],
            "scene_ids": [scene.scene_id for scene in scenes],
            "context_views": context,
            "steps": args.steps,
            "cameras": camera_info,
        },
        prior=prior_stats,
        interpolation=interp_stats,
        quality=measure_quality(args, model, record, dataset) if args.quality else None,
        figures=list(figures),
        headline=[
            {
                "label": f"interpolation t = 0 (scene {scene_a}, K = {args.context})",
                "psnr": interp_stats.get("start_psnr"),
                "note": note,
            }
        ],
    )
    return common.finish(
        prog, argv, args.out, result, samples_report.markdown_report, figures, [args.run]
    )
