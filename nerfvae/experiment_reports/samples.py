"""The samples experiment's report: samples.md, with the sample-quality tables, drawn from the saved
result (:mod:`nerfvae.experiments.samples` computes it)."""

from __future__ import annotations

from typing import Any

from nerfvae.evaluation import markdown as md
from nerfvae.evaluation.sample_quality import COLOUR_NAMES, COUNT_BINS


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
        f"camera; {settings.get('prior', 'standard')} prior, seed {settings['seed']})",
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
        *(quality_report(result["quality"]) if result.get("quality") else []),
    )


def _fd_text(summary: dict[str, Any] | None) -> str:
    """``mean ± std (min..max)`` of a Fréchet distance over seeds."""
    if not summary:
        return md.MISSING
    text = md.format_number(summary.get("mean"))
    if md.finite_or_none(summary.get("std")) is not None:
        text += f" ± {md.format_number(summary['std'])}"
    if len(summary.get("per_seed") or []) > 1:
        text += f" ({md.format_number(summary['min'])}..{md.format_number(summary['max'])})"
    return text


def _histogram_text(histogram: dict[str, Any] | None, keys: tuple[str, ...]) -> list[str]:
    return [md.format_percent((histogram or {}).get(key)) for key in keys]


def quality_report(quality: dict[str, Any]) -> list[str | list[str]]:
    """The markdown blocks (:func:`md.document`'s) of the ``quality`` section: the table of priors
    beside the real floor, reconstructions and the generator, the calibration sentences and the
    colour table."""
    settings, features = quality["settings"], quality["feature_network"]
    accuracy = features.get("held_out_accuracy") or {}
    rows = []
    guidance = settings.get("learned_guidance")
    for name, entry in quality["priors"].items():
        label = f"{name} prior"
        if name == "learned" and guidance is not None:
            label += f" (autoguidance {guidance:g})"
        rows.append(
            [
                label,
                _fd_text(entry["frechet_distance"]),
                md.format_percent(entry.get("empty_fraction")),
                md.format_number(entry.get("mean_count")),
                *_histogram_text(entry.get("count_histogram"), COUNT_BINS),
            ]
        )
    posterior, generator = quality.get("posterior"), quality["generator"]
    counted = (posterior or {}).get("counted")
    if posterior is not None:
        rows.append(
            [
                "posterior means (reconstructions)",
                md.format_number(posterior.get("frechet_distance")),
                md.format_percent((posterior.get("count_histogram") or {}).get("0")),
                md.format_number(sum(counted) / len(counted) if counted else None),
                *_histogram_text(posterior.get("count_histogram"), COUNT_BINS),
            ]
        )
    rows.append(
        [
            f"real {quality['real_floor']['split']} views (noise floor)",
            _fd_text(quality["real_floor"]["frechet_distance"]),
            *[md.MISSING] * (2 + len(COUNT_BINS)),
        ]
    )
    rows.append(
        [
            f"generator (true objects, {md.scenes_text(generator['scenes'])})",
            md.MISSING,
            md.format_percent(generator["empty_fraction"]),
            md.format_number(generator["mean_count"]),
            *_histogram_text(generator["count_histogram"], COUNT_BINS),
        ]
    )
    colour_rows = [
        [f"{name} prior", *_histogram_text(entry.get("colour_histogram"), COLOUR_NAMES)]
        for name, entry in quality["priors"].items()
        if entry.get("colour_histogram") is not None
    ]
    if counted:
        colour_rows.append(
            ["posterior means", *_histogram_text(posterior["colour_histogram"], COLOUR_NAMES)]
        )
    colour_rows.append(["generator", *_histogram_text(generator["colour_histogram"], COLOUR_NAMES)])
    blocks: list[str | list[str]] = [
        "## Sample quality",
        f"Each prior draws {settings['samples_per_seed']} latents per seed (seeds "
        f"{settings['seeds']}); sample i is rendered from ID views {settings['views_per_sample']} "
        f"of {settings['split']} scene i mod {settings['reference_scenes']}, and the features of "
        f"the {settings['renders_per_seed']} renders are compared with those of the "
        f"{settings['reference_views']} real views from the same cameras (Fréchet distance, FD; "
        "lower is closer to real scenes). The noise floor is the FD between those real views "
        f"and as many real views of {quality['real_floor']['split']} scenes; the reconstructions "
        f"are the posterior means of the {settings['split']} scenes from their first "
        f"{settings['context_views']} ID views. Objects are counted "
        "in the 3D field (density above the floor projected onto the ground plane); the columns "
        f"{COUNT_BINS[0]}..{COUNT_BINS[-1]} are the shares of rooms with that many objects.",
        md.table(
            ["scenes", "FD mean ± std (min..max)", "empty rooms", "mean objects", *COUNT_BINS],
            rows,
        ),
    ]
    if counted:
        blocks.append(
            f"Counter calibration on the reconstructions of "
            f"{md.scenes_text(posterior['scenes'])}: exact count "
            f"{md.format_percent(posterior['exact_match'])}, mean absolute error "
            f"{md.format_number(posterior['mean_absolute_error'])} objects (bias "
            f"{md.format_number(posterior['mean_error'])}); colour recall "
            f"{md.format_percent(posterior['colour_recall'])}, precision "
            f"{md.format_percent(posterior['colour_precision'])}. Counts of samples are only as "
            "trustworthy as this."
        )
    blocks.append(
        f"Feature network ({features.get('steps')} steps on {features.get('training_views')} "
        f"train views), on {accuracy.get('views', md.MISSING)} {features.get('held_out_split')} "
        f"views: object count right {md.format_percent(accuracy.get('count_accuracy'))} (always "
        f"the most frequent count: {md.format_percent(accuracy.get('count_majority'))}); each "
        "palette colour present or absent right "
        f"{md.format_percent(accuracy.get('colour_accuracy'))} (constant guess: "
        f"{md.format_percent(accuracy.get('colour_majority'))}); each shape "
        f"{md.format_percent(accuracy.get('shape_accuracy'))} "
        f"({md.format_percent(accuracy.get('shape_majority'))})."
    )
    blocks.append(md.table(["colours of objects", *COLOUR_NAMES], colour_rows))
    if quality["skipped"]:
        blocks.append(" ".join(f"{line[0].upper()}{line[1:]}." for line in quality["skipped"]))
    return blocks
