"""``nerfvae experiment uncertainty``: is the posterior more uncertain where the context did not
see? Each scene is inferred from ONE ID view, the other views rendered with posterior samples, and
the per-pixel sample std compared over target pixels the context view saw and did not see
(ground-truth geometry, :func:`nerfvae.evaluation.visibility.label_seen_pixels`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from nerfvae import visualise as vis
from nerfvae.errors import ConfigError, DataError, check_at_least
from nerfvae.evaluation import markdown as md
from nerfvae.evaluation.figures import write_image_grid
from nerfvae.evaluation.views import scene_count, standard_view_lists
from nerfvae.evaluation.visibility import label_seen_pixels
from nerfvae.experiment_reports import uncertainty as uncertainty_report
from nerfvae.experiments import common
from nerfvae.inference import RefinementConfig, infer_scene

DESCRIPTION = "posterior-sample std on surfaces the single context view saw vs did not see"

# Per-pixel quantities compared between seen and unseen pixels; see `uncertainty_quantities`.
QUANTITIES = ("colour_std", "depth_std", "colour_error")
GROUPS = ("id", "ood", "all")


@dataclass(kw_only=True)
class UncertaintyArgs(common.RunArgs, common.ScenesArgs):
    """Infer each scene from ONE context view, render the other views with posterior samples, and
    compare the per-pixel sample std over target pixels whose surface the context view saw with
    those it did not (ground-truth depth). Writes uncertainty.json, .md and .png under --out."""

    samples: int = 8
    """Posterior samples per scene (at least 2, for a standard deviation)."""
    context_view: int = 0
    """The single ID view used as context; every other view is a target."""
    tolerance: float = 0.03
    """Occlusion test: a surface point is seen if its distance from the context camera is within
    this fraction of the context depth where it projects."""
    figure_scenes: int = 3
    """Scenes in the figure (a row for the first ID and one for the first OOD target of each)."""
    out: str = "docs/results/uncertainty"
    test_time: RefinementConfig = field(default_factory=RefinementConfig)
    """Test-time refinement of each posterior on its context view (docs/evaluation.md)."""


def region_sums(
    quantities: dict[str, torch.Tensor], seen: torch.Tensor, valid: torch.Tensor
) -> dict[str, float]:
    """Pixel counts and sums of each quantity ``[V, H, W]`` over seen and unseen pixels
    (``seen, valid [V, H, W]`` from :func:`label_seen_pixels`); sums add across scenes."""
    unseen = valid & ~seen
    sums = {"seen_pixels": float(seen.sum()), "unseen_pixels": float(unseen.sum())}
    for name, value in quantities.items():
        sums[f"{name}_seen"] = float(value[seen].double().sum())
        sums[f"{name}_unseen"] = float(value[unseen].double().sum())
    return sums


def _divide(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def summarise_sums(sums: list[dict[str, float]]) -> dict[str, Any]:
    """Pooled means over all pixels of ``sums`` (from :func:`region_sums`): per quantity the mean
    over seen and unseen pixels and their ratio (unseen / seen), and the fraction of pixels seen."""
    total = {key: sum(entry[key] for entry in sums) for key in sums[0]} if sums else {}
    seen, unseen = total.get("seen_pixels", 0.0), total.get("unseen_pixels", 0.0)
    summary: dict[str, Any] = {
        "num_pixels": int(seen + unseen),
        "fraction_seen": _divide(seen, seen + unseen),
    }
    for name in QUANTITIES:
        if f"{name}_seen" not in total:
            continue
        mean_seen = _divide(total[f"{name}_seen"], seen)
        mean_unseen = _divide(total[f"{name}_unseen"], unseen)
        summary[f"{name}_seen"] = mean_seen
        summary[f"{name}_unseen"] = mean_unseen
        summary[f"{name}_ratio"] = _divide(mean_unseen, mean_seen)
    return summary


def paired_comparison(per_scene: list[dict[str, Any]]) -> dict[str, Any]:
    """Over scenes with both seen and unseen pixels (per-scene summaries of one group): the
    fraction where the unseen mean exceeds the seen mean, per quantity, and how many scenes
    entered the comparison."""
    out: dict[str, Any] = {}
    for name in QUANTITIES:
        pairs = [
            (scene[f"{name}_seen"], scene[f"{name}_unseen"])
            for scene in per_scene
            if f"{name}_seen" in scene
            and math.isfinite(scene[f"{name}_seen"])
            and math.isfinite(scene[f"{name}_unseen"])
        ]
        out[f"{name}_scenes_unseen_higher"] = _divide(
            sum(unseen > seen for seen, unseen in pairs), len(pairs)
        )
        out[f"{name}_scenes_compared"] = len(pairs)
    return out


def headline_row(group: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A row of the results summary's headline table (no PSNR: the numbers go in the note)."""
    name = {"id": "ID targets", "ood": "OOD targets", "all": "all targets"}[group]
    return {
        "label": f"{name}, 1 context view",
        "note": (
            f"std unseen / seen: colour {md.format_number(entry.get('colour_std_ratio'))}, depth "
            f"{md.format_number(entry.get('depth_std_ratio'))}; colour std higher on unseen pixels "
            f"in {md.format_percent(entry.get('colour_std_scenes_unseen_higher'))} of "
            f"{entry.get('colour_std_scenes_compared', 0)} scenes; "
            f"{md.format_percent(entry.get('fraction_seen'))} of pixels seen"
        ),
    }


def mask_image(seen: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` masks -> ``[H, W, 3]``: seen white, unseen black, no surface red."""
    image = torch.zeros(*seen.shape, 3)
    image[seen] = 1.0
    image[~valid] = torch.tensor([0.8, 0.1, 0.1])
    return image


def run(argv: list[str], prog: str) -> int:
    args = common.parse_args(UncertaintyArgs, argv, prog)
    check_at_least(args.samples, "--samples", 2, "2 posterior samples for a std")
    check_at_least(args.figure_scenes, "--figure-scenes", 0, "0 (no figure)")
    if not args.tolerance > 0:
        raise ConfigError(f"--tolerance {args.tolerance}: must be positive")
    model, record, dataset = common.setup_run(args)
    if not dataset.meta.has_depth:
        raise DataError(
            f"{args.data}: the dataset has no ground-truth depth, which the uncertainty experiment "
            "needs to label target pixels seen / unseen by the context view"
        )
    num_id, num_ood = dataset.num_id_views, dataset.num_ood_views
    if not 0 <= args.context_view < num_id:
        raise ConfigError(
            f"--context-view {args.context_view}: scenes of split {args.split!r} have ID views "
            f"0..{num_id - 1}"
        )
    lists = standard_view_lists(num_id, num_ood, (1,))  # checks one ID view remains a target
    id_targets = [v for v in range(num_id) if v != args.context_view]
    ood_targets = lists.ood_targets
    targets = id_targets + ood_targets
    is_ood = torch.tensor([False] * len(id_targets) + [True] * len(ood_targets))
    height, width = dataset.image_height, dataset.image_width
    num_scenes = scene_count(args.max_scenes, dataset)

    group_sums: dict[str, list[dict[str, float]]] = {group: [] for group in GROUPS}
    per_scene: list[dict[str, Any]] = []
    figure_rows: list[list[torch.Tensor]] = []
    figure_std: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (row, colour std, depth std)
    context = [args.context_view]
    for index in range(num_scenes):
        scene = dataset.load_scene(index)
        images = scene.images.float() / 255.0
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + index)
        posterior = infer_scene(
            model, scene.images, scene.K, scene.c2w, context, args.test_time, generator
        )
        K, c2w = scene.K[targets], scene.c2w[targets]
        rendered = vis.posterior_statistics(
            model, posterior, K, c2w, height, width, args.samples, generator
        )
        seen, valid = label_seen_pixels(
            scene.depth[targets], K, c2w, *(x[context] for x in (scene.depth, scene.K, scene.c2w)),
            args.tolerance,
        )  # fmt: skip
        quantities = {
            "colour_std": rendered["sample_std"],
            "depth_std": rendered["depth_std"],
            "colour_error": (rendered["colour"] - images[targets]).abs().mean(-1),
        }
        entry: dict[str, Any] = {"scene": index, "scene_id": scene.scene_id}
        for group, select in (("id", ~is_ood), ("ood", is_ood), ("all", torch.ones_like(is_ood))):
            if not bool(select.any()):
                continue
            selected = {name: value[select] for name, value in quantities.items()}
            sums = region_sums(selected, seen[select], valid[select])
            group_sums[group].append(sums)
            entry[group] = summarise_sums([sums])
        per_scene.append(entry)

        if index < args.figure_scenes:
            shown = [0] if id_targets else []
            shown += [len(id_targets)] if ood_targets else []
            for j in shown:
                figure_std.append(
                    (len(figure_rows), rendered["sample_std"][j], rendered["depth_std"][j])
                )
                figure_rows.append(
                    [images[args.context_view], images[targets[j]], mask_image(seen[j], valid[j])]
                )

    results: dict[str, Any] = {}
    for group in GROUPS:
        summary = summarise_sums(group_sums[group])
        summary.update(paired_comparison([scene[group] for scene in per_scene if group in scene]))
        views_per_scene = {"id": id_targets, "ood": ood_targets, "all": targets}[group]
        summary["num_views"] = len(group_sums[group]) * len(views_per_scene)
        results[group] = summary

    colour_vmax = max((float(std.max()) for _, std, _ in figure_std), default=0.0)
    depth_vmax = max((float(depth.nan_to_num(0).max()) for _, _, depth in figure_std), default=0.0)
    for row, colour_std, depth_std in figure_std:
        figure_rows[row] += [
            vis.heat_image(colour_std, vmax=colour_vmax),
            vis.heat_image(depth_std.nan_to_num(0), vmax=depth_vmax),
        ]

    settings = dict(context_view=args.context_view, samples=args.samples)
    settings.update(refinement=args.test_time.to_json(), tolerance=args.tolerance)
    settings.update(seed=args.seed, max_scenes=args.max_scenes)
    figure = dict(scenes=list(range(min(args.figure_scenes, num_scenes))))
    figure.update(columns=["context", "target", "seen_mask", "colour_std", "depth_std"])
    figure.update(colour_std_vmax=colour_vmax, depth_std_vmax=depth_vmax)
    result = common.result_header(
        "uncertainty",
        "Posterior-sample standard deviation on target pixels whose surface the single context "
        "view saw vs did not see (ground-truth visibility).",
        **common.run_fields(args, record),
        num_scenes=num_scenes,
        image_size=[height, width],
        settings=settings,
        view_lists=dict(context=context, id_targets=id_targets, ood_targets=ood_targets),
        results=results,
        per_scene=per_scene,
        figure=figure,
        headline=[headline_row(group, results[group]) for group in GROUPS],
    )
    draw = lambda _, path: write_image_grid(path, figure_rows, min_height=128)
    figures = {"uncertainty.png": draw} if figure_rows else {}
    return common.finish(
        prog, argv, args.out, result, uncertainty_report.markdown_report, figures, [args.run]
    )
