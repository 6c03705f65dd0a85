"""Context views against a per-scene NeRF, two experiments on the same evaluation.

``nerfvae experiment views``: PSNR / SSIM against the number of context views K for NeRF-VAE and a
per-scene NeRF optimised on the same K views, beside the trivial predictors, on the held-out views
of ``nerfvae eval`` (ID targets = ID views ``K_max..``, or the last ``--id-targets`` for every K).
``all`` is ``K_all = num_id_views - id_targets``: the largest K, so it fixes the ID targets of
every K. Each row keeps its per-scene values and a 95% bootstrap interval over scenes; the claim
at each K is NeRF-VAE − per-scene NeRF, paired per scene (:mod:`nerfvae.experiment_reports.claims`).

``nerfvae experiment cost``: per K and kind of target view, NeRF-VAE's inference + render time per
scene beside the per-scene NeRF's time to reach NeRF-VAE's PSNR on the same views (first crossing
of its probe PSNR, :func:`time_to_reach`; a batch's wall time ÷ scenes per batch), from the views
experiment run here or reused with ``--views-json``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tyro

from nerfvae.errors import ConfigError, DataError
from nerfvae.evaluation import markdown as md
from nerfvae.evaluation.per_scene_nerf import (
    PerSceneNeRFOptions,
    merge_nerf_results,
    time_to_reach,
)
from nerfvae.evaluation.views import parse_context_labels, resolve_context
from nerfvae.experiment_reports import claims
from nerfvae.experiment_reports import context_views as views_report
from nerfvae.experiments import common
from nerfvae.inference import RefinementConfig
from nerfvae.models.baselines.nerf import PerSceneNeRFConfig

DESCRIPTION = "PSNR/SSIM vs number of context views K: NeRF-VAE vs per-scene NeRF and trivial"
COST_DESCRIPTION = (
    "inference cost: NeRF-VAE inference + render vs per-scene NeRF time to the same PSNR"
)

# Metrics copied per model into the summary (null where the evaluation has no value).
MODEL_METRICS = ("psnr", "ssim", "mse", "object_psnr", "depth_mae")
# Metrics whose per-scene values and intervals the results keep (the trivial predictors: PSNRs).
INTERVAL_METRICS = ("psnr", "object_psnr", "ssim")
CLAIM = "NeRF-VAE beats a per-scene NeRF from few context views"
ID_TARGETS_WITH_ALL = 3
"""ID targets (the last ID views) when ``all`` is among the K and --id-targets is not given."""


@dataclass(kw_only=True)
class NeRFComparisonArgs(common.ScenesArgs):
    """Options of the experiments that score NeRF-VAE against a per-scene NeRF (views, cost)."""

    id_targets: int | None = None
    """How many ID views (the last ones) are the targets of every K; default: 3 with `all` among
    the K, else every ID view after the largest K (as `nerfvae eval`). Given explicitly, a sweep
    can be built one K at a time on the same targets (e.g. --context 1 --id-targets 3 and
    --context 3 --id-targets 3, each with the per-scene NeRFs of `nerfvae baseline nerf
    --id-targets 3`)."""
    checkpoint: str | None = None
    """NeRF-VAE checkpoint JSON to load (default: the run's newest)."""
    scenes_per_batch: int = 4
    """Scenes inferred / optimised together (NeRF-VAE batches; batched per-scene NeRF weights)."""
    nerf_json: tuple[str, ...] = ()
    """Reuse per-scene NeRF results instead of optimising: JSONs of `nerfvae baseline nerf` (same
    --split and --max-scenes; files for different K, made with the same --id-targets, are merged)
    or a views.json."""
    baseline: tyro.conf.OmitArgPrefixes[PerSceneNeRFOptions] = field(
        default_factory=lambda: PerSceneNeRFOptions(probe_views=-1)
    )
    """How the per-scene NeRF is fitted and probed (as `nerfvae baseline nerf`; here every target
    view is probed by default). NeRF-VAE is evaluated on the CPU, as `nerfvae eval`."""
    nerf: tyro.conf.OmitArgPrefixes[PerSceneNeRFConfig] = field(default_factory=PerSceneNeRFConfig)
    """NeRF architecture and optimisation budget (the flags of `nerfvae baseline nerf`)."""


@dataclass(kw_only=True)
class ViewsArgs(NeRFComparisonArgs):
    """PSNR/SSIM against the number of context views K for NeRF-VAE and a per-scene NeRF
    optimised on the same views of the same scenes, with the trivial predictors; writes
    views.json, views.png and views.md under --out."""

    run: str
    """NeRF-VAE run directory (from `nerfvae train`)."""
    data: str
    """Dataset directory."""
    context: str = "1,2,3,5,all"
    """Context sizes K, comma-separated, each at most once (ID views 0..K-1, as `nerfvae eval`);
    `all` = every ID view except the last --id-targets, then the ID targets of every K."""
    skip_nerf: bool = False
    """Do not optimise the per-scene NeRF (its columns are null)."""
    test_time: RefinementConfig = field(default_factory=RefinementConfig)
    """Test-time refinement of NeRF-VAE's posteriors on their context views, as `nerfvae eval`
    (docs/evaluation.md); 0 steps = the encoder alone. The per-scene NeRF is unaffected, so a
    refined sweep can reuse an encoder-alone sweep's NeRF with --nerf-json."""
    out: str = "docs/results/views"


def _read_nerf_json(path: Path) -> dict[str, Any]:
    """One file's per-scene NeRF result (a views.json gives its ``models.nerf``)."""
    loaded = common.load_json(path, f"--nerf-json {path}")
    if loaded.get("experiment") == "views":
        loaded = md.at(loaded, "models", "nerf")
        if loaded is None:
            raise ConfigError(f"--nerf-json {path}: this views.json has no per-scene NeRF results")
    if not all(isinstance(loaded.get(key), dict) for key in ("results", "view_lists", "history")):
        raise ConfigError(
            f"--nerf-json {path}: not the output of `nerfvae baseline nerf` (needs results, "
            "view_lists and history)"
        )
    return loaded


def load_nerf_json(
    paths: str | Path | list[str | Path] | tuple[str | Path, ...],
    expected: dict[str, Any],
    ks: list[int],
) -> dict[str, Any]:
    """Per-scene NeRF results from `nerfvae baseline nerf` JSONs or a views.json, merged, checked
    to score the scenes and views of ``expected`` (the NeRF-VAE evaluation) at ``ks``."""
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not path_list:
        raise ConfigError("--nerf-json: no file given")
    loaded = merge_nerf_results([(path, _read_nerf_json(path)) for path in path_list])
    views, wanted, scenes = loaded["view_lists"], expected["view_lists"], expected["num_scenes"]
    problems = []
    if loaded.get("split") not in (None, expected.get("split")):
        problems.append(f"split {loaded.get('split')!r} (here {expected.get('split')!r})")
    if loaded.get("num_scenes") != scenes:
        problems.append(
            f"{loaded.get('num_scenes')} scenes (here {scenes}; pass the same --max-scenes)"
        )
    if list(loaded.get("image_size", [])) != list(expected["image_size"]):
        problems.append(f"image size {loaded.get('image_size')} (here {expected['image_size']})")
    problems += [
        f"{kind} {views.get(kind)} (here {wanted[kind]})"
        for kind in ("id_targets", "ood_targets")
        if views.get(kind) != wanted[kind]
    ]
    if missing := [str(k) for k in ks if str(k) not in loaded["results"]]:
        problems.append(f"no results for K = {', '.join(missing)}")
    if problems:
        raise ConfigError(
            f"--nerf-json {' '.join(map(str, path_list))} does not match these views: "
            f"{'; '.join(problems)}. Make it with `nerfvae baseline nerf --split "
            f"{expected.get('split')} --max-scenes {scenes} --context "
            f"{','.join(str(k) for k in sorted(set(ks)))} --id-targets {len(wanted['id_targets'])}`"
        )
    return loaded


def scene_rows(
    nerfvae: dict[str, Any], nerf: dict[str, Any] | None, k: int, kind: str
) -> dict[str, Any]:
    """Per row (both models, the trivial predictors) and metric of :data:`INTERVAL_METRICS` the
    per-scene values at K and ``kind`` (None where that evaluation has none: an older JSON, or
    the per-scene NeRF's evaluation before it recorded them)."""
    rows: dict[str, Any] = {
        name: {metric: claims.scene_values(model, k, kind, metric) for metric in INTERVAL_METRICS}
        for name, model in (("nerfvae", nerfvae), ("nerf", nerf))
    }
    for name, prefix in md.TRIVIAL_PREDICTORS.items():
        rows[name] = {
            metric: claims.scene_values(nerfvae, k, kind, f"{prefix}_{metric}")
            for metric in ("psnr", "object_psnr")
        }
    return rows


def summarise(
    context: dict[str, int], nerfvae: dict[str, Any], nerf: dict[str, Any] | None
) -> dict[str, Any]:
    """``results[label][id|ood]``: both models' metrics, the trivial predictors' PSNRs and the
    number of views, from the two evaluation JSONs; with each row's ``per_scene`` values and
    ``intervals`` (PSNR, object PSNR, SSIM) and the claim ``nerfvae_minus_nerf`` per metric (the
    paired difference per scene, "greater")."""
    summary: dict[str, Any] = {}
    for label, k in context.items():
        entry: dict[str, Any] = {"k": k, "context_views": nerfvae["view_lists"]["context"][str(k)]}
        for kind in md.KINDS:
            if (vae := nerfvae["results"][str(k)].get(kind)) is None:
                continue
            other = nerf["results"][str(k)].get(kind) if nerf is not None else None
            per_scene = scene_rows(nerfvae, nerf if other is not None else None, k, kind)
            entry[kind] = {
                "nerfvae": md.finite_values(vae, (*MODEL_METRICS, "nelbo_bits_per_dim")),
                "nerf": None if other is None else md.finite_values(other, MODEL_METRICS),
                **{
                    name: md.finite_values(vae, ("psnr", "object_psnr"), f"{prefix}_")
                    for name, prefix in md.TRIVIAL_PREDICTORS.items()
                },
                "num_views": vae["num_views"],
                "per_scene": per_scene,
                "intervals": claims.intervals_of(per_scene),
            }
            if other is not None:
                entry[kind]["nerfvae_minus_nerf"] = {
                    metric: claims.claim(
                        per_scene["nerfvae"][metric],
                        per_scene["nerf"][metric],
                        "greater",
                        md.difference(entry[kind]["nerfvae"][metric], entry[kind]["nerf"][metric]),
                    )
                    for metric in INTERVAL_METRICS
                }
        summary[label] = entry
    return summary


def views_claims(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The paper's claim (1) per K and kind of target: NeRF-VAE − per-scene NeRF PSNR, paired
    per scene (none where the per-scene NeRF was skipped)."""
    rows = []
    for label, entry in result["results"].items():
        for kind in md.KINDS:
            if (cell := entry.get(kind)) is None or cell.get("nerf") is None:
                continue
            where = f"K={views_report.context_label(label, entry['k'])}, {kind.upper()} views"
            rows.append(
                claims.claim_row(
                    CLAIM,
                    f"NeRF-VAE − per-scene NeRF, {where}",
                    "PSNR (dB)",
                    views_report.comparison(cell, "psnr"),
                )
            )
    return rows


def views_to_match(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per K and kind of target: the fewest context views from which the per-scene NeRF's mean
    PSNR reaches NeRF-VAE's at K, among the K of the sweep (``nerf_label`` None: not reached),
    with the NeRF's optimisation time per scene there. Means over the same scenes and targets."""
    entries = sorted(result["results"].items(), key=lambda item: item[1]["k"])
    rows = []
    for label, entry in entries:
        for kind in md.KINDS:
            target = md.at(entry, kind, "nerfvae", "psnr")
            if target is None or md.at(entry, kind, "nerf") is None:
                continue
            reached = [
                (other_label, other)
                for other_label, other in entries
                if (md.at(other, kind, "nerf", "psnr") or -math.inf) >= target
            ]
            row = dict(label=label, k=entry["k"], kind=kind, nerfvae_psnr=target)
            row.update(nerf_label=None, nerf_k=None, nerf_psnr=None, nerf_fit_s_per_scene=None)
            row["largest_k_tried"] = entries[-1][1]["k"]
            if reached:
                other_label, other = reached[0]
                row.update(nerf_label=other_label, nerf_k=other["k"])
                row["nerf_psnr"] = other[kind]["nerf"]["psnr"]
                timing = result["timing"].get(other_label, {}).get("nerf") or {}
                row["nerf_fit_s_per_scene"] = timing.get("fit_s_per_scene")
            rows.append(row)
    return rows


def compute_views(args: ViewsArgs) -> dict[str, Any]:
    """Evaluate NeRF-VAE and (unless skipped or reused) the per-scene NeRF on the views of
    ``args``; the views.json content without its provenance."""
    from nerfvae.evaluation.evaluate import evaluate_run, optional_mean_training_image
    from nerfvae.evaluation.per_scene_nerf import evaluate_per_scene_nerf, resolve_background

    labels = parse_context_labels(args.context)
    if args.scenes_per_batch < 1:
        raise ConfigError(f"--scenes-per-batch must be at least 1, got {args.scenes_per_batch}")
    if args.skip_nerf and args.nerf_json:
        raise ConfigError("--skip-nerf and --nerf-json exclude each other")
    dataset = common.load_dataset(args.data, args.split)
    held_out = args.id_targets if args.id_targets is not None else ID_TARGETS_WITH_ALL
    context = resolve_context(labels, dataset.load_scene(0).num_id_views, held_out)
    context_sizes = tuple(sorted(set(context.values())))
    shared = dict(context_sizes=context_sizes, max_scenes=args.max_scenes)
    shared.update(scenes_per_batch=args.scenes_per_batch, id_targets=args.id_targets)
    shared.update(mean_train_image=optional_mean_training_image(args.data))
    loaded = common.load_run(args.run, args.checkpoint)
    nerfvae = evaluate_run(
        loaded, dataset, run=args.run, data=args.data, split=args.split,
        refinement=args.test_time, **shared,
    )  # fmt: skip
    options = args.baseline
    if args.skip_nerf:
        nerf, source = None, "skipped"
    elif args.nerf_json:
        nerf = load_nerf_json(args.nerf_json, nerfvae, list(context_sizes))
        source = ", ".join(args.nerf_json)
    else:
        background = resolve_background(options.background, dataset.meta)
        shared.update(probe_views=options.probe_views, probe_points=options.probe_points)
        nerf = evaluate_per_scene_nerf(
            dataset, args.nerf, background=background, device=options.device, **shared
        )
        nerf.update(dataset=str(args.data), split=args.split)
        source = "computed"
    models = {"nerfvae": nerfvae, "nerf": nerf}
    timing = {
        label: {
            key: model["timing"].get(str(k)) if model else None for key, model in models.items()
        }
        for label, k in context.items()
    }
    result = common.result_header(
        "views",
        dataset=str(args.data),
        split=args.split,
        num_scenes=nerfvae["num_scenes"],
        image_size=nerfvae["image_size"],
        context=context,
        id_targets_for_all=held_out if "all" in context else None,
        view_lists=nerfvae["view_lists"],
        nerf_source=source,
        results=summarise(context, nerfvae, nerf),
        timing=timing,
        models=models,
    )
    result["claims"] = views_claims(result)
    result["views_to_match"] = views_to_match(result)
    return result


def run(argv: list[str], prog: str) -> int:
    args = common.parse_args(ViewsArgs, argv, prog)
    result = compute_views(args)
    budget = views_report.nerf_budget(result["models"]["nerf"], result["nerf_source"])
    figure = {"views.png": views_report.views_figure}
    return common.finish(
        prog, argv, args.out, result, views_report.views_markdown, figure, [args.run], nerf=budget
    )


@dataclass(kw_only=True)
class CostArgs(NeRFComparisonArgs):
    """NeRF-VAE's inference + render time per scene against the per-scene NeRF's time to reach the
    same held-out PSNR, evaluated here (--run, --data) or from a views.json (--views-json); writes
    cost.json, cost.png and cost.md under --out."""

    run: str | None = None
    """NeRF-VAE run directory (needed unless --views-json)."""
    data: str | None = None
    """Dataset directory (needed unless --views-json)."""
    views_json: str | None = None
    """Reuse a views.json with per-scene NeRF results (and its timings) instead of evaluating."""
    context: str | None = None
    """Context sizes K, comma-separated, each at most once (`all` as in the views experiment);
    default 1,3, or every K of --views-json."""
    out: str = "docs/results/cost"


def load_views_json(path: str | Path) -> dict[str, Any]:
    """A views experiment's JSON with per-scene NeRF results (ConfigError otherwise)."""
    loaded = common.load_json(path, f"--views-json {path}")
    if loaded.get("experiment") != "views":
        raise ConfigError(f"--views-json {path}: not the views.json of `nerfvae experiment views`")
    if loaded.get("models", {}).get("nerf") is None:
        raise ConfigError(
            f"--views-json {path} has no per-scene NeRF results (it was run with --skip-nerf); "
            "rerun the views experiment without it"
        )
    return loaded


def select_context(views: dict[str, Any], text: str | None) -> dict[str, int]:
    """The views result's context sizes named by ``text`` (all when None; ConfigError for one it
    lacks)."""
    available: dict[str, int] = views["context"]
    if text is None:
        return dict(available)
    chosen = {}
    for label in parse_context_labels(text):
        if label in available:
            chosen[label] = available[label]
            continue
        matches = [name for name, k in available.items() if str(k) == label]
        if not matches:
            raise ConfigError(
                f"--context {label}: the views results hold only K = "
                + ", ".join(views_report.context_label(name, k) for name, k in available.items())
            )
        chosen[matches[0]] = available[matches[0]]
    return chosen


def cost_analysis(views: dict[str, Any], context: dict[str, int]) -> dict[str, Any]:
    """``results[label][id|ood]``: NeRF-VAE's PSNR and time per scene, the per-scene NeRF's final
    PSNR and time to reach NeRF-VAE's PSNR, and the speed-up."""
    vae, nerf = views["models"]["nerfvae"], views["models"]["nerf"]
    targets = {kind: views["view_lists"][f"{kind}_targets"] for kind in ("id", "ood")}
    probe_views = nerf.get("probe_views")
    results: dict[str, Any] = {}
    for label, k in context.items():
        key = str(k)
        vae_timing, nerf_timing = vae["timing"][key], nerf["timing"][key]
        # History wall times are per batch of scenes optimised together; per scene = ÷ batch size.
        per_scene = (
            nerf_timing["fit_s_per_scene"] / nerf_timing["fit_s_per_batch"]
            if nerf_timing.get("fit_s_per_batch")
            else 1.0 / max(1, nerf.get("scenes_per_batch") or 1)
        )
        history = nerf["history"][key]
        entry: dict[str, Any] = {"k": k}
        for kind in md.KINDS:
            if not targets[kind] or kind not in vae["results"][key]:
                continue
            vae_psnr = vae["results"][key][kind].get("psnr")
            vae_render = vae_timing.get(f"render_s_per_{kind}_view")
            vae_total = vae_timing["inference_s_per_scene"] + (vae_render or 0.0)
            try:
                reach = time_to_reach(history, vae_psnr, psnr_key=f"probe_psnr_{kind}")
            except DataError:
                raise ConfigError(
                    f"the per-scene NeRF results for K = {k} have no held-out {kind.upper()} probe "
                    "PSNR over steps (made with --probe-views 0?); rerun with --probe-views -1"
                ) from None
            psnr_key = f"probe_psnr_{kind}"
            probed = [row for row in history if row.get(psnr_key) is not None]
            nerf_render = nerf_timing.get(f"render_s_per_{kind}_view")
            reach_wall = reach["wall_s"] * per_scene if reach["reached"] else None
            nerf_total = reach_wall + (nerf_render or 0.0) if reach_wall is not None else None
            all_probed = None if probe_views is None else probe_views >= len(targets[kind])
            cpu = reach["cpu_s"] * per_scene if reach["cpu_s"] is not None else None
            entry[kind] = {
                "nerfvae": dict(
                    psnr=vae_psnr, inference_s_per_scene=vae_timing["inference_s_per_scene"],
                    render_s_per_view=vae_render, s_per_scene=vae_total,
                ),
                "nerf": dict(
                    final_psnr=nerf["results"][key][kind].get("psnr"),
                    final_probe_psnr=probed[-1][psnr_key] if probed else None,
                    steps=nerf["config"]["steps"], probe_views=probe_views,
                    probe_is_all_targets=all_probed,
                    fit_s_per_scene=nerf_timing["fit_s_per_scene"], render_s_per_view=nerf_render,
                ),
                "time_to_reach": dict(
                    reached=reach["reached"], step=reach["step"], wall_s_per_scene=reach_wall,
                    cpu_s_per_scene=cpu, wall_s_per_batch=reach["wall_s"],
                    max_step=reach["max_step"], best_probe_psnr=reach["best_psnr"],
                    note=reach["note"],
                ),
                # (NeRF optimisation to NeRF-VAE's PSNR + one render) / (NeRF-VAE inference + one
                # render), per scene.
                "speedup": nerf_total / vae_total if nerf_total is not None and vae_total else None,
                "curve": [[row["wall_s"] * per_scene, row[psnr_key], row["step"]] for row in probed],
            }  # fmt: skip
        results[label] = entry
    return results


def cost_headline(
    results: dict[str, Any], views: dict[str, Any], context: dict[str, int]
) -> list[dict[str, Any]]:
    """Headline rows: per K and kind of target, NeRF-VAE and the per-scene NeRF beside the trivial
    predictors on the same views, with their times in the note."""
    rows = []
    for label, k in context.items():
        for kind in md.KINDS:
            cell, scored = results[label].get(kind), views["results"][label].get(kind)
            if cell is None or scored is None:
                continue
            where = f"K={views_report.context_label(label, k)}, {kind.upper()} views"
            trivial = {name: scored[name]["psnr"] for name in md.TRIVIAL_PREDICTORS}
            vae, nerf, reach = cell["nerfvae"], cell["nerf"], cell["time_to_reach"]
            note = f"inference + one render {md.format_seconds(vae['s_per_scene'])} s"
            object_psnr = scored["nerfvae"]["object_psnr"]
            rows.append(
                common.headline_row(f"NeRF-VAE, {where}", vae["psnr"], object_psnr, trivial, note)
            )
            reached = reach["note"]
            if reach["reached"]:
                seconds = md.format_seconds(reach["wall_s_per_scene"])
                reached = f"reaches NeRF-VAE after {seconds} s (step {reach['step']})"
            note = f"optimisation {md.format_seconds(nerf['fit_s_per_scene'])} s; {reached}"
            object_psnr = md.at(scored, "nerf", "object_psnr")
            label_nerf = f"per-scene NeRF ({nerf['steps']} steps), {where}"
            rows.append(
                common.headline_row(label_nerf, nerf["final_psnr"], object_psnr, trivial, note)
            )
    return rows


def run_cost(argv: list[str], prog: str) -> int:
    args = common.parse_args(CostArgs, argv, prog)
    if args.views_json:
        if args.run or args.data or args.nerf_json:
            raise ConfigError(
                "--views-json reuses a views experiment's results: leave out --run, --data and "
                "--nerf-json (or leave out --views-json to evaluate afresh)"
            )
        views, source = load_views_json(args.views_json), str(args.views_json)
    else:
        if not args.run or not args.data:
            raise ConfigError("give --run and --data (or --views-json to reuse the views results)")
        shared = {item.name: getattr(args, item.name) for item in fields(NeRFComparisonArgs)}
        shared.update(out=args.out, context=args.context or "1,3")
        views, source = compute_views(ViewsArgs(run=args.run, data=args.data, **shared)), "computed"
    context = select_context(views, args.context if args.views_json else None)
    run_dir = views["models"]["nerfvae"]["run"]
    nerf = views["models"]["nerf"]
    results = cost_analysis(views, context)
    result = common.result_header(
        "cost",
        source=source,
        dataset=views["dataset"],
        split=views["split"],
        run=run_dir,
        num_scenes=views["num_scenes"],
        image_size=views["image_size"],
        context=context,
        view_lists=views["view_lists"],
        nerf_budget=views_report.nerf_budget(nerf, views["nerf_source"]),
        nerf_config=nerf["config"],
        results=results,
        headline=cost_headline(results, views, context),
        views_provenance=views.get("provenance"),
    )
    runs = [run_dir] if (Path(run_dir) / "config.json").exists() else []
    return common.finish(
        prog,
        argv,
        args.out,
        result,
        views_report.cost_markdown,
        {"cost.png": views_report.cost_figure},
        runs,
    )
