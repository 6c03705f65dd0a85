"""``nerfvae experiment views``: PSNR / SSIM against the number of context views K for NeRF-VAE
and a per-scene NeRF optimised on the same K views, beside the trivial predictors, on the held-out
views of ``nerfvae eval`` (ID targets = ID views ``K_max..``). ``all`` is ``K_all = num_id_views -
id_targets``: the largest K, so it fixes the ID targets of every K."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tyro

from nerfvae.errors import ConfigError
from nerfvae.evaluation.views import parse_index_list
from nerfvae.experiments import common, figures
from nerfvae.experiments import markdown as md
from nerfvae.experiments.provenance import provenance_section
from nerfvae.models.baselines.nerf import PerSceneNeRFConfig

DESCRIPTION = "PSNR/SSIM vs number of context views K: NeRF-VAE vs per-scene NeRF and trivial"

# Metrics copied per model into the summary (null where the evaluation has no value).
MODEL_METRICS = ("psnr", "ssim", "mse", "object_psnr", "depth_mae")
TRIVIAL_PREDICTORS = {
    "mean_train_image": "baseline_mean_train",
    "mean_context_colour": "baseline_mean_context",
}


@dataclass
class NeRFBaselineOptions:
    """How the per-scene NeRF baseline is optimised and probed (as `nerfvae baseline nerf`)."""

    background: str = "auto"
    """Colour where rays leave the scene box: `auto` (imported data's background, else black),
    white, black, grey, #rrggbb or r,g,b."""
    probe_views: int = -1
    """Target views per scene and kind rendered during optimisation to track PSNR over steps and
    time (-1 = all, 0 = none)."""
    probe_points: int = 8
    """How many times (geometrically spaced steps, first and last included) the probes render."""
    device: str = "cpu"
    """Torch device of the per-scene NeRF (NeRF-VAE is evaluated on the CPU, as `nerfvae eval`)."""
    nerf: tyro.conf.OmitArgPrefixes[PerSceneNeRFConfig] = field(default_factory=PerSceneNeRFConfig)
    """NeRF architecture and optimisation budget (the flags of `nerfvae baseline nerf`)."""


@dataclass(kw_only=True)
class NeRFComparisonArgs(common.ScenesArgs):
    """Options of the experiments that score NeRF-VAE against a per-scene NeRF (views, cost)."""

    id_targets: int = 3
    """With `all` among the K: how many ID views (the last ones) are held out as targets."""
    checkpoint: str | None = None
    """NeRF-VAE checkpoint JSON to load (default: the run's newest)."""
    scenes_per_batch: int = 4
    """Scenes inferred / optimised together (NeRF-VAE batches; batched per-scene NeRF weights)."""
    nerf_json: tuple[str, ...] = ()
    """Reuse per-scene NeRF results instead of optimising: JSONs of `nerfvae baseline nerf` (same
    --split and --max-scenes; files for different K, made with the same --id-targets, are merged)
    or a views.json."""
    baseline: tyro.conf.OmitArgPrefixes[NeRFBaselineOptions] = field(
        default_factory=NeRFBaselineOptions
    )
    """Per-scene NeRF options."""


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
    out: str = "docs/results/views"


def parse_context_labels(text: str) -> list[str]:
    """``"1,2,all"`` -> ``["1", "2", "all"]`` (ConfigError for anything but positive integers and
    ``all``, each at most once)."""
    return [str(k) for k in parse_index_list(text, "--context", minimum=1, keywords=("all",))]


def resolve_context(labels: list[str], num_id_views: int, id_targets: int) -> dict[str, int]:
    """Each label's number of context views, ordered by K (``all`` last among equals); a
    ConfigError when ``all`` leaves no context or a K leaves no ID target / exceeds ``all``."""
    resolved = {label: int(label) for label in labels if label != "all"}
    largest = max(resolved.values(), default=0)
    if "all" in labels:
        if id_targets < 1:
            raise ConfigError(f"--id-targets must be at least 1, got {id_targets}")
        k_all = num_id_views - id_targets
        if k_all < 1:
            raise ConfigError(
                f"`all` with --id-targets {id_targets}: the scenes have only {num_id_views} ID "
                "views, so no context view would remain"
            )
        if largest > k_all:
            raise ConfigError(
                f"K = {largest} exceeds `all` = {k_all} (scenes have {num_id_views} ID views, the "
                f"last {id_targets} are the targets); lower --id-targets or drop that K"
            )
        resolved["all"] = k_all
    elif largest >= num_id_views:
        raise ConfigError(
            f"K = {largest}: scenes have {num_id_views} ID views, at most {num_id_views - 1} can "
            "be context (one must remain as a target)"
        )
    return dict(sorted(resolved.items(), key=lambda item: (item[1], item[0] == "all")))


def _read_nerf_json(path: Path) -> dict[str, Any]:
    """One file's per-scene NeRF result (a views.json gives its ``models.nerf``)."""
    loaded = common.load_json(path, f"--nerf-json {path}")
    if loaded.get("experiment") == "views":
        loaded = (loaded.get("models") or {}).get("nerf")
        if loaded is None:
            raise ConfigError(f"--nerf-json {path}: this views.json has no per-scene NeRF results")
    if not all(isinstance(loaded.get(key), dict) for key in ("results", "view_lists", "history")):
        raise ConfigError(
            f"--nerf-json {path}: not the output of `nerfvae baseline nerf` (needs results, "
            "view_lists and history)"
        )
    return loaded


def _by_k(entries: dict[str, Any]) -> dict[str, Any]:
    """``entries`` ordered by K, numeric K first."""
    return dict(sorted(entries.items(), key=lambda item: (not item[0].isdigit(), item[0].zfill(9))))


def merge_nerf_results(parts: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """One per-scene NeRF result from several made for different K on the same scenes: the per-K
    entries united (each K from one part only), everything else must agree (ConfigError naming the
    files and the field); ``sources`` lists the files."""
    first_path, merged = parts[0]
    merged = json.loads(json.dumps(merged))  # a deep copy: parts stay untouched
    per_k = {key: merged.get(key) or {} for key in ("results", "timing", "history")}
    per_k["context"] = merged["view_lists"].get("context", {})
    origin = dict.fromkeys(merged["results"], first_path)
    for path, part in parts[1:]:
        files = f"--nerf-json {first_path} and {path}"
        for key in ("split", "num_scenes", "image_size", "config", "background"):
            if part.get(key) != merged.get(key):
                raise ConfigError(
                    f"{files} differ in {key} ({merged.get(key)!r} vs {part.get(key)!r}): only "
                    "results of the same per-scene NeRF on the same scenes can be merged"
                )
        for kind in ("id_targets", "ood_targets"):
            ours, theirs = merged["view_lists"].get(kind), part["view_lists"].get(kind)
            if ours != theirs:
                raise ConfigError(
                    f"{files} score different {kind} ({ours} vs {theirs}); make both with the "
                    "same `nerfvae baseline nerf --id-targets N`"
                )
        for k in part["results"]:
            if k in origin:
                raise ConfigError(f"--nerf-json: K = {k} is in both {origin[k]} and {path}")
            origin[k] = path
            for key, entries in per_k.items():
                source = part["view_lists"] if key == "context" else part
                entries[k] = (source.get(key) or {}).get(k)
    merged.update({key: _by_k(per_k[key]) for key in ("results", "timing", "history")})
    merged["view_lists"]["context"] = _by_k(per_k["context"])
    # how many targets were probed is one number per file: kept only where every part agrees
    probed = {part.get("probe_views") for _, part in parts}
    merged["probe_views"] = probed.pop() if len(probed) == 1 else None
    merged["sources"] = [str(path) for path, _ in parts]
    return merged


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


def summarise(
    context: dict[str, int], nerfvae: dict[str, Any], nerf: dict[str, Any] | None
) -> dict[str, Any]:
    """``results[label][id|ood]``: both models' metrics, the trivial predictors' PSNRs and the
    number of views, from the two evaluation JSONs."""
    summary: dict[str, Any] = {}
    for label, k in context.items():
        entry: dict[str, Any] = {"k": k, "context_views": nerfvae["view_lists"]["context"][str(k)]}
        for kind in md.KINDS:
            if (vae := nerfvae["results"][str(k)].get(kind)) is None:
                continue
            other = nerf["results"][str(k)].get(kind) if nerf is not None else None
            entry[kind] = {
                "nerfvae": md.finite_values(vae, (*MODEL_METRICS, "nelbo_bits_per_dim")),
                "nerf": None if other is None else md.finite_values(other, MODEL_METRICS),
                **{
                    name: md.finite_values(vae, ("psnr", "object_psnr"), f"{prefix}_")
                    for name, prefix in TRIVIAL_PREDICTORS.items()
                },
                "num_views": vae["num_views"],
            }
        summary[label] = entry
    return summary


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
    context = resolve_context(labels, dataset.load_scene(0).num_id_views, args.id_targets)
    context_sizes = tuple(sorted(set(context.values())))
    shared = dict(context_sizes=context_sizes, max_scenes=args.max_scenes)
    shared.update(scenes_per_batch=args.scenes_per_batch)
    shared.update(mean_train_image=optional_mean_training_image(args.data))
    loaded = common.load_run(args.run, args.checkpoint)
    nerfvae = evaluate_run(
        loaded, dataset, run=args.run, data=args.data, split=args.split, **shared
    )
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
            dataset, options.nerf, background=background, device=options.device, **shared
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
    return common.result_header(
        "views",
        dataset=str(args.data),
        split=args.split,
        num_scenes=nerfvae["num_scenes"],
        image_size=nerfvae["image_size"],
        context=context,
        id_targets_for_all=args.id_targets if "all" in context else None,
        view_lists=nerfvae["view_lists"],
        nerf_source=source,
        results=summarise(context, nerfvae, nerf),
        timing=timing,
        models=models,
    )


def context_label(label: str, k: int) -> str:
    """``"3"`` or ``"all (7)"``."""
    return f"all ({k})" if label == "all" else label


def nerf_budget(nerf: dict[str, Any] | None, source: str) -> str:
    """One line: the per-scene NeRF's budget and where its numbers come from."""
    if nerf is None:
        return "not run (--skip-nerf)"
    config, sampling = nerf["config"], nerf["config"]["sampling"]
    return (
        f"{config['steps']} steps × {config['rays_per_scene']} rays per scene, MLPs "
        f"{config['depth']}×{config['width']}, samples {sampling['num_coarse']} + "
        f"{sampling['num_fine']}, scenes per batch: {nerf.get('scenes_per_batch', '?')}, "
        f"{nerf.get('hardware', {}).get('device', '?')}"
        + ("" if source == "computed" else f"; results reused from `{source}`")
    )


def views_markdown(result: dict[str, Any]) -> str:
    """views.md: what was compared, the tables and the provenance."""
    vae, lists = result["models"]["nerfvae"], result["view_lists"]
    all_note = (
        f" `all` = every ID view except the last {result['id_targets_for_all']} "
        f"(= K {result['context']['all']})."
        if result.get("id_targets_for_all")
        else ""
    )
    names = ("nerfvae", "nerf", "mean_train_image", "mean_context_colour")
    cells = [
        (context_label(label, entry["k"]), kind.upper(), entry[kind])
        for label, entry in result["results"].items()
        for kind in md.KINDS
        if kind in entry
    ]

    def values(cell: dict[str, Any], key: str, models: tuple[str, ...], digits: int = 2) -> list:
        return [md.format_number((cell[name] or {}).get(key), digits) for name in models]

    times = []
    for label, timing in result["timing"].items():
        model, other = timing["nerfvae"] or {}, timing["nerf"] or {}
        seconds = [model.get("inference_s_per_scene"), model.get("render_s_per_id_view")]
        seconds += [other.get("fit_s_per_scene"), other.get("render_s_per_id_view")]
        times.append(
            [context_label(label, result["context"][label]), *map(md.format_seconds, seconds)]
        )
    budget = nerf_budget(result["models"]["nerf"], result["nerf_source"])
    lines = [
        "# Views: PSNR and SSIM against the number of context views K",
        "",
        f"NeRF-VAE (`{vae['run']}`, step {vae['checkpoint_step']}) against a per-scene NeRF "
        f"optimised from scratch on the same K context views, on the first "
        f"{md.scenes_text(result['num_scenes'])} of `{result['dataset']}` ({result['split']}, "
        f"{result['image_size'][0]}×{result['image_size'][1]}). Context for K: ID views "
        f"0..K-1;{all_note} Scored on ID views {lists['id_targets']} and OOD views "
        f"{lists['ood_targets']} of every scene, the same for every K. Trivial predictors: the mean "
        "training image and a constant image of the mean context colour. Numbers are means over "
        "target views (PSNR in dB; object PSNR over ground-truth object pixels).",
        "",
        "![PSNR vs K](views.png)",
        "",
        "## Whole image",
        "",
        *md.table(
            "K | cameras | NeRF-VAE PSNR | NeRF PSNR | mean-train-image PSNR | "
            "mean-context-colour PSNR | NeRF-VAE SSIM | NeRF SSIM | views",
            (
                [
                    k,
                    kind,
                    *values(c, "psnr", names),
                    *values(c, "ssim", names[:2], 3),
                    c["num_views"],
                ]
                for k, kind, c in cells
            ),
        ),
        "",
        "## Object pixels",
        "",
        *md.table(
            "K | cameras | NeRF-VAE | NeRF | mean train image | mean context colour",
            ([k, kind, *values(c, "object_psnr", names)] for k, kind, c in cells),
        ),
        "",
        "## Time per scene",
        "",
        *md.table(
            "K | NeRF-VAE inference s | NeRF-VAE render s per ID view | NeRF optimisation s | "
            "NeRF render s per ID view",
            times,
        ),
        "",
        f"Per-scene NeRF: {budget}.",
        "",
        *provenance_section(result["provenance"]),
    ]
    return "\n".join(lines) + "\n"


def views_figure(result: dict[str, Any], path: Path) -> None:
    """PSNR (whole image, object pixels) and SSIM against K: both models and the trivial
    predictors, ID solid and OOD dashed."""
    entries = result["results"]
    ks = [entry["k"] for entry in entries.values()]
    series = (
        ("NeRF-VAE", "nerfvae", "C0", "o"),
        ("per-scene NeRF", "nerf", "C1", "s"),
        ("mean train image", "mean_train_image", "0.5", None),
        ("mean context colour", "mean_context_colour", "C2", None),
    )
    panels = (
        ("psnr", "PSNR (dB)", "whole image"),
        ("object_psnr", "PSNR (dB)", "object pixels"),
        ("ssim", "SSIM", "whole image"),
    )
    with figures.figure_file(path, 3, (13, 3.8), rect=(0, 0, 0.84, 1)) as (figure, axes):
        for axis, (metric, unit, title) in zip(axes, panels):
            for name, key, colour, marker in series:
                for kind, style in (("id", "-"), ("ood", "--")):
                    cells = [(entry.get(kind) or {}).get(key) or {} for entry in entries.values()]
                    figures.plot_line(
                        axis,
                        [(k, c[metric]) for k, c in zip(ks, cells) if c.get(metric) is not None],
                        linestyle=style,
                        marker=marker,
                        color=colour,
                        markersize=4,
                        label=f"{name} {kind.upper()}",
                    )
            axis.set_xticks(ks, [context_label(label, k) for label, k in zip(entries, ks)])
            axis.set(xlabel="context views K", ylabel=unit, title=title)
            axis.grid(alpha=0.3)
        handles, names = axes[0].get_legend_handles_labels()
        figure.legend(handles, names, loc="center right", fontsize=7)
        figure.suptitle(
            f"{md.scenes_text(result['num_scenes'])} of {Path(result['dataset']).name} "
            "(ID targets solid, OOD dashed)"
        )


def run(argv: list[str], prog: str) -> int:
    args = common.parse_args(ViewsArgs, argv, prog)
    result = compute_views(args)
    budget = nerf_budget(result["models"]["nerf"], result["nerf_source"])
    figure = {"views.png": lambda path: views_figure(result, path)}
    return common.finish(
        prog, argv, [args.run], args.out, "views", result, views_markdown, figure, nerf=budget
    )
