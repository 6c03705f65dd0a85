"""``nerfvae experiment views``: PSNR / SSIM against the number of context views K.

NeRF-VAE (a trained run, :func:`nerfvae.evaluation.evaluate.evaluate`) and the per-scene NeRF
(:func:`nerfvae.evaluation.per_scene_nerf.evaluate_per_scene_nerf`, optimised from scratch on the
same K context views of the same scenes) are scored on the same held-out ID and OOD views with the
same metrics, beside the two trivial predictors (mean training image, constant mean context
colour) and the object-pixel PSNR.

**View lists.** Those of ``nerfvae eval`` (:func:`nerfvae.evaluation.views.standard_view_lists`):
the context for K is ID views ``0..K-1``, the ID targets are ID views ``K_max..num_id_views-1``
(the same for every K) and the OOD targets are every OOD view. ``all`` is the context size
``K_all = num_id_views - id_targets``: every ID view except the last ``id_targets``, which are the
scored ID targets. Being the largest K, ``K_all`` fixes ``K_max`` and so the ID targets of every
other K too; a numeric K may not exceed it. Without ``all`` the ID targets are exactly those of
``nerfvae eval --context`` with the same K.

Writes ``views.json`` (the summary per K, both models' full evaluation JSONs and a ``provenance``
block), ``views.png`` and ``views.md`` under ``--out``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tyro

from nerfvae.errors import ConfigError, DataError
from nerfvae.experiments.provenance import experiment_provenance, provenance_section
from nerfvae.experiments.report import (
    finite_or_none,
    format_number,
    format_seconds,
    markdown_header,
    markdown_row,
    print_written,
    scenes_text,
    write_report,
)
from nerfvae.models.baselines.nerf import PerSceneNeRFConfig

DESCRIPTION = "PSNR/SSIM vs number of context views K: NeRF-VAE vs per-scene NeRF and trivial"

SCHEMA_VERSION = 1

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
    """Colour where rays leave the scene box: `auto` (the import's background for imported data,
    else black), white, black, grey, #rrggbb or r,g,b."""
    probe_views: int = -1
    """Held-out ID and OOD views per scene rendered during optimisation to track PSNR over steps
    and wall time (-1 = every target view, so the probe PSNR is on exactly the scored views;
    0 = none)."""
    probe_points: int = 8
    """How many times (geometrically spaced steps, 0 and the last included) the probes render."""
    device: str = "cpu"
    """Torch device of the per-scene NeRF (NeRF-VAE is evaluated on the CPU, as `nerfvae eval`)."""
    nerf: tyro.conf.OmitArgPrefixes[PerSceneNeRFConfig] = field(default_factory=PerSceneNeRFConfig)
    """NeRF architecture and optimisation budget (the flags of `nerfvae baseline nerf`)."""


@dataclass
class ViewsArgs:
    """PSNR/SSIM against the number of context views K for NeRF-VAE and a per-scene NeRF
    optimised on the same views of the same scenes, with the trivial predictors; writes
    views.json, views.png and views.md under --out."""

    run: str
    """NeRF-VAE run directory (from `nerfvae train`)."""
    data: str
    """Dataset directory."""
    split: str = "test"
    """Dataset split to evaluate."""
    context: str = "1,2,3,5,all"
    """Comma-separated context sizes K (ID views 0..K-1, as `nerfvae eval`); `all` = every ID view
    except the last --id-targets, which are then the scored ID targets for every K."""
    id_targets: int = 3
    """With `all` among the K: how many ID views (the last ones) are held out as targets."""
    max_scenes: int = 20
    """Evaluate the first N scenes of the split."""
    out: str = "docs/results/views"
    """Output directory for views.json, views.png and views.md."""
    checkpoint: str | None = None
    """NeRF-VAE checkpoint JSON to load (default: the run's newest)."""
    scenes_per_batch: int = 4
    """Scenes inferred / optimised together (NeRF-VAE batches; batched per-scene NeRF weights)."""
    skip_nerf: bool = False
    """Do not optimise the per-scene NeRF (its columns are null)."""
    nerf_json: tuple[str, ...] = ()
    """Reuse per-scene NeRF results instead of optimising: JSONs of `nerfvae baseline nerf` (run
    with the same --split and --max-scenes, together covering the K values printed here; several
    files for different K are merged, made with the same --id-targets) or a views.json."""
    threads: int = 0
    """torch intra-op threads (0 = PyTorch's default)."""
    baseline: tyro.conf.OmitArgPrefixes[NeRFBaselineOptions] = field(
        default_factory=NeRFBaselineOptions
    )
    """Per-scene NeRF options."""


# --------------------------------------------------------------------------- context sizes


def parse_context_labels(text: str) -> list[str]:
    """``"1,2,all"`` -> ``["1", "2", "all"]`` (deduplicated, order kept).

    Raises:
        ConfigError: an entry is neither a positive integer nor ``all``, or there is none.
    """
    labels: list[str] = []
    for part in text.split(","):
        label = part.strip().lower()
        if not label:
            continue
        if label != "all":
            try:
                value = int(label)
            except ValueError:
                raise ConfigError(
                    f"--context must be comma-separated positive integers or `all`, got {text!r}"
                ) from None
            if value < 1:
                raise ConfigError(f"--context needs positive integers, got {text!r}")
            label = str(value)
        if label not in labels:
            labels.append(label)
    if not labels:
        raise ConfigError(f"--context names no context size: {text!r}")
    return labels


def resolve_context(labels: list[str], num_id_views: int, id_targets: int) -> dict[str, int]:
    """Each label's number of context views, ordered by K (``all`` last among equals).

    ``all`` is ``num_id_views - id_targets`` (see the module docstring).

    Raises:
        ConfigError: ``all`` leaves no context or no target, or a K leaves no ID target / exceeds
            ``all``.
    """
    numeric = {label: int(label) for label in labels if label != "all"}
    resolved = dict(numeric)
    if "all" in labels:
        if id_targets < 1:
            raise ConfigError(f"--id-targets must be at least 1, got {id_targets}")
        k_all = num_id_views - id_targets
        if k_all < 1:
            raise ConfigError(
                f"`all` with --id-targets {id_targets}: the scenes have only {num_id_views} ID "
                "views, so no context view would remain"
            )
        too_many = [k for k in numeric.values() if k > k_all]
        if too_many:
            raise ConfigError(
                f"K = {max(too_many)} exceeds `all` = {k_all} (scenes have {num_id_views} ID views, "
                f"the last {id_targets} are the targets); lower --id-targets or drop that K"
            )
        resolved["all"] = k_all
    elif max(numeric.values()) >= num_id_views:
        raise ConfigError(
            f"K = {max(numeric.values())}: scenes have {num_id_views} ID views, at most "
            f"{num_id_views - 1} can be context (one must remain as a target)"
        )
    return dict(sorted(resolved.items(), key=lambda item: (item[1], item[0] == "all")))


# --------------------------------------------------------------------------- reuse of NeRF results


def _read_nerf_json(path: Path) -> dict[str, Any]:
    """One file's per-scene NeRF result (a views.json gives its ``models.nerf``)."""
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--nerf-json {path}: no such file") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"--nerf-json {path}: not readable JSON ({error})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"--nerf-json {path}: expected a JSON object")
    if loaded.get("experiment") == "views":
        loaded = (loaded.get("models") or {}).get("nerf")
        if loaded is None:
            raise ConfigError(f"--nerf-json {path}: this views.json has no per-scene NeRF results")
    if not isinstance(loaded, dict) or not all(
        isinstance(loaded.get(key), dict) for key in ("results", "view_lists", "history")
    ):
        raise ConfigError(
            f"--nerf-json {path}: not the output of `nerfvae baseline nerf` (needs results, "
            "view_lists and history)"
        )
    return loaded


# Per-K entries a merge combines; every other field must agree between the files.
_PER_K_FIELDS = ("results", "timing", "history")
_SHARED_FIELDS = ("split", "num_scenes", "image_size", "config", "background")


def merge_nerf_results(parts: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """One per-scene NeRF result from several made for different K on the same scenes.

    The per-K entries (``results``, ``timing``, ``history``, ``view_lists.context``) are united;
    the NeRF config, scenes, targets and background must be the same in every part, and each K may
    come from one part only. ``sources`` lists the files.

    Raises:
        ConfigError: naming the files and the field that differs, or a K found twice.
    """
    first_path, merged = parts[0]
    merged = json.loads(json.dumps(merged))  # a deep copy: parts stay untouched
    merged["view_lists"].setdefault("context", {})
    origin = {k: first_path for k in merged["results"]}
    for path, part in parts[1:]:
        for key in _SHARED_FIELDS:
            if part.get(key) != merged.get(key):
                raise ConfigError(
                    f"--nerf-json {first_path} and {path} differ in {key} "
                    f"({merged.get(key)!r} vs {part.get(key)!r}): only results of the same "
                    "per-scene NeRF on the same scenes can be merged"
                )
        for kind in ("id_targets", "ood_targets"):
            if part["view_lists"].get(kind) != merged["view_lists"].get(kind):
                raise ConfigError(
                    f"--nerf-json {first_path} and {path} score different {kind} "
                    f"({merged['view_lists'].get(kind)} vs {part['view_lists'].get(kind)}); make "
                    "both with the same `nerfvae baseline nerf --id-targets N`"
                )
        for k in part["results"]:
            if k in origin:
                raise ConfigError(f"--nerf-json: K = {k} is in both {origin[k]} and {path}")
            origin[k] = path
            for key in _PER_K_FIELDS:
                merged.setdefault(key, {})[k] = (part.get(key) or {}).get(k)
            merged["view_lists"]["context"][k] = part["view_lists"].get("context", {}).get(k)

    def by_k(entries: dict[str, Any]) -> dict[str, Any]:  # numeric K first, in order
        return dict(
            sorted(entries.items(), key=lambda item: (not item[0].isdigit(), item[0].zfill(9)))
        )

    for key in _PER_K_FIELDS:
        merged[key] = by_k(merged.get(key) or {})
    merged["view_lists"]["context"] = by_k(merged["view_lists"]["context"])
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
    """Per-scene NeRF results from previous `nerfvae baseline nerf` JSONs (or a views.json's
    ``models.nerf``), merged over K (:func:`merge_nerf_results`) and checked against the views this
    experiment scores.

    Args:
        paths: one file, or several made for different K with the same ``--id-targets``.
        expected: the NeRF-VAE evaluation result (``num_scenes``, ``image_size``, ``view_lists``,
            ``split``) the NeRF's numbers must match.
        ks: the context sizes needed.

    Raises:
        ConfigError: a file is missing or unreadable, holds no per-scene NeRF results, the files
            disagree, or they were made on other scenes or views.
    """
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not path_list:
        raise ConfigError("--nerf-json: no file given")
    loaded = merge_nerf_results([(path, _read_nerf_json(path)) for path in path_list])
    named = " ".join(str(path) for path in path_list)
    problems = []
    if loaded.get("split") not in (None, expected.get("split")):
        problems.append(f"split {loaded.get('split')!r} (here {expected.get('split')!r})")
    if loaded.get("num_scenes") != expected["num_scenes"]:
        problems.append(
            f"{loaded.get('num_scenes')} scenes (here {expected['num_scenes']}; pass the same "
            "--max-scenes)"
        )
    if list(loaded.get("image_size", [])) != list(expected["image_size"]):
        problems.append(f"image size {loaded.get('image_size')} (here {expected['image_size']})")
    views, wanted = loaded["view_lists"], expected["view_lists"]
    for kind in ("id_targets", "ood_targets"):
        if views.get(kind) != wanted[kind]:
            problems.append(f"{kind} {views.get(kind)} (here {wanted[kind]})")
    missing = [k for k in ks if str(k) not in loaded["results"]]
    if missing:
        problems.append(f"no results for K = {', '.join(map(str, missing))}")
    if problems:
        needed = ",".join(str(k) for k in sorted(set(ks)))
        raise ConfigError(
            f"--nerf-json {named} does not match these views: " + "; ".join(problems) + ". Make "
            f"it with `nerfvae baseline nerf --split {expected.get('split')} --max-scenes "
            f"{expected['num_scenes']} --context {needed} --id-targets "
            f"{len(wanted['id_targets'])}`"
        )
    return loaded


# --------------------------------------------------------------------------- computation


def _metrics(entry: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {key: finite_or_none(entry.get(key)) for key in keys}


def summarise(
    context: dict[str, int], nerfvae: dict[str, Any], nerf: dict[str, Any] | None
) -> dict[str, Any]:
    """``results[label][id|ood]``: both models' metrics, the trivial predictors' PSNRs and the
    number of views, from the two evaluation JSONs."""
    summary: dict[str, Any] = {}
    for label, k in context.items():
        entry: dict[str, Any] = {"k": k, "context_views": nerfvae["view_lists"]["context"][str(k)]}
        for kind in ("id", "ood"):
            vae = nerfvae["results"][str(k)].get(kind)
            if vae is None:
                continue
            other = nerf["results"][str(k)].get(kind) if nerf is not None else None
            entry[kind] = {
                "nerfvae": _metrics(vae, (*MODEL_METRICS, "nelbo_bits_per_dim")),
                "nerf": _metrics(other, MODEL_METRICS),
                **{
                    name: {
                        "psnr": finite_or_none(vae.get(f"{prefix}_psnr")),
                        "object_psnr": finite_or_none(vae.get(f"{prefix}_object_psnr")),
                    }
                    for name, prefix in TRIVIAL_PREDICTORS.items()
                },
                "num_views": vae["num_views"],
            }
        summary[label] = entry
    return summary


def compute_views(args: ViewsArgs, *, progress: bool = True) -> dict[str, Any]:
    """Evaluate NeRF-VAE and (unless skipped or reused) the per-scene NeRF on the views of
    ``args``; the views.json content without its provenance."""
    import torch

    from nerfvae.cli.baseline import resolve_background
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.evaluation.evaluate import evaluate_run, optional_mean_training_image
    from nerfvae.evaluation.per_scene_nerf import evaluate_per_scene_nerf
    from nerfvae.training.loading import load_trained_model

    labels = parse_context_labels(args.context)
    if args.max_scenes < 1:
        raise ConfigError(f"--max-scenes must be at least 1, got {args.max_scenes}")
    if args.scenes_per_batch < 1:
        raise ConfigError(f"--scenes-per-batch must be at least 1, got {args.scenes_per_batch}")
    if args.skip_nerf and args.nerf_json:
        raise ConfigError("--skip-nerf and --nerf-json exclude each other")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    dataset = MultiSceneDataset(args.data, args.split)
    if len(dataset) == 0:
        raise DataError(f"{args.data}: split {args.split!r} has no scenes")
    first = dataset.load_scene(0)
    context = resolve_context(labels, first.num_id_views, args.id_targets)
    context_sizes = tuple(sorted(set(context.values())))

    loaded = load_trained_model(args.run, args.checkpoint)
    train_mean = optional_mean_training_image(args.data)
    nerfvae = evaluate_run(
        loaded,
        dataset,
        run=args.run,
        data=args.data,
        split=args.split,
        context_sizes=context_sizes,
        max_scenes=args.max_scenes,
        scenes_per_batch=args.scenes_per_batch,
        mean_train_image=train_mean,
        progress=progress,
    )

    options = args.baseline
    if args.skip_nerf:
        nerf, source = None, "skipped"
    elif args.nerf_json:
        nerf = load_nerf_json(args.nerf_json, nerfvae, list(context_sizes))
        source = ", ".join(args.nerf_json)
    else:
        nerf = evaluate_per_scene_nerf(
            dataset,
            options.nerf,
            context_sizes=context_sizes,
            max_scenes=args.max_scenes,
            scenes_per_batch=args.scenes_per_batch,
            background=resolve_background(options.background, dataset.meta),
            mean_train_image=train_mean,
            probe_views=options.probe_views,
            probe_points=options.probe_points,
            device=options.device,
            progress=progress,
        )
        nerf.update(dataset=str(args.data), split=args.split)
        source = "computed"

    return {
        "experiment": "views",
        "schema_version": SCHEMA_VERSION,
        "dataset": str(args.data),
        "split": args.split,
        "num_scenes": nerfvae["num_scenes"],
        "image_size": nerfvae["image_size"],
        "context": context,
        "id_targets_for_all": args.id_targets if "all" in context else None,
        "view_lists": nerfvae["view_lists"],
        "nerf_source": source,
        "results": summarise(context, nerfvae, nerf),
        "timing": {
            label: {
                "nerfvae": nerfvae["timing"].get(str(k)),
                "nerf": nerf["timing"].get(str(k)) if nerf is not None else None,
            }
            for label, k in context.items()
        },
        "models": {"nerfvae": nerfvae, "nerf": nerf},
    }


# --------------------------------------------------------------------------- report


def context_label(label: str, k: int) -> str:
    """``"3"`` or ``"all (7)"``."""
    return f"all ({k})" if label == "all" else label


def nerf_budget(nerf: dict[str, Any] | None, source: str) -> str:
    """One line: the per-scene NeRF's budget and where its numbers come from."""
    if nerf is None:
        return "not run (--skip-nerf)"
    config = nerf["config"]
    return (
        f"{config['steps']} steps × {config['rays_per_scene']} rays per scene, MLPs "
        f"{config['depth']}×{config['width']}, samples {config['sampling']['num_coarse']} + "
        f"{config['sampling']['num_fine']}, scenes per batch: {nerf.get('scenes_per_batch', '?')}, "
        f"{nerf.get('hardware', {}).get('device', '?')}"
        + ("" if source == "computed" else f"; results reused from `{source}`")
    )


def views_markdown(result: dict[str, Any]) -> str:
    """views.md: what was compared, the tables, the command and the provenance."""
    vae = result["models"]["nerfvae"]
    nerf = result["models"]["nerf"]
    lists = result["view_lists"]
    all_note = (
        f" `all` = every ID view except the last {result['id_targets_for_all']} "
        f"(= K {result['context']['all']})."
        if result.get("id_targets_for_all")
        else ""
    )
    lines = [
        "# Views: PSNR and SSIM against the number of context views K",
        "",
        f"NeRF-VAE (`{vae['run']}`, step {vae['checkpoint_step']}) against a per-scene NeRF "
        f"optimised from scratch on the same K context views, on the first "
        f"{scenes_text(result['num_scenes'])} of `{result['dataset']}` ({result['split']}, "
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
        *markdown_header(
            [
                "K",
                "cameras",
                "NeRF-VAE PSNR",
                "NeRF PSNR",
                "mean-train-image PSNR",
                "mean-context-colour PSNR",
                "NeRF-VAE SSIM",
                "NeRF SSIM",
                "views",
            ]
        ),
    ]
    rows = [
        (context_label(label, entry["k"]), kind.upper(), entry[kind])
        for label, entry in result["results"].items()
        for kind in ("id", "ood")
        if kind in entry
    ]
    for k, cameras, cell in rows:
        model, other = cell["nerfvae"], cell["nerf"] or {}
        lines.append(
            markdown_row(
                [
                    k,
                    cameras,
                    format_number(model["psnr"]),
                    format_number(other.get("psnr")),
                    format_number(cell["mean_train_image"]["psnr"]),
                    format_number(cell["mean_context_colour"]["psnr"]),
                    format_number(model["ssim"], 3),
                    format_number(other.get("ssim"), 3),
                    cell["num_views"],
                ]
            )
        )
    lines += [
        "",
        "## Object pixels",
        "",
        *markdown_header(
            ["K", "cameras", "NeRF-VAE", "NeRF", "mean train image", "mean context colour"]
        ),
    ]
    for k, cameras, cell in rows:
        lines.append(
            markdown_row(
                [
                    k,
                    cameras,
                    *(
                        format_number((cell[name] or {}).get("object_psnr"))
                        for name in ("nerfvae", "nerf", "mean_train_image", "mean_context_colour")
                    ),
                ]
            )
        )
    lines += [
        "",
        "## Time per scene",
        "",
        *markdown_header(
            [
                "K",
                "NeRF-VAE inference s",
                "NeRF-VAE render s per ID view",
                "NeRF optimisation s",
                "NeRF render s per ID view",
            ]
        ),
    ]
    for label, timing in result["timing"].items():
        model, other = timing["nerfvae"] or {}, timing["nerf"] or {}
        lines.append(
            markdown_row(
                [
                    context_label(label, result["context"][label]),
                    format_seconds(model.get("inference_s_per_scene")),
                    format_seconds(model.get("render_s_per_id_view")),
                    format_seconds(other.get("fit_s_per_scene")),
                    format_seconds(other.get("render_s_per_id_view")),
                ]
            )
        )
    lines += [
        "",
        f"Per-scene NeRF: {nerf_budget(nerf, result['nerf_source'])}.",
        "",
        *provenance_section(result["provenance"], "detailed"),
        "",
    ]
    return "\n".join(lines)


def views_figure(result: dict[str, Any], path: Path) -> None:
    """PSNR (whole image, object pixels) and SSIM against K: both models and the trivial
    predictors, ID solid and OOD dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(result["results"])
    ks = [result["results"][label]["k"] for label in labels]
    series = (
        ("NeRF-VAE", lambda cell: cell["nerfvae"], "C0", "o"),
        ("per-scene NeRF", lambda cell: cell["nerf"], "C1", "s"),
        ("mean train image", lambda cell: cell["mean_train_image"], "0.5", None),
        ("mean context colour", lambda cell: cell["mean_context_colour"], "C2", None),
    )
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (
        (axes[0], "psnr", "PSNR (dB)", "whole image"),
        (axes[1], "object_psnr", "PSNR (dB)", "object pixels"),
        (axes[2], "ssim", "SSIM", "whole image"),
    )
    for axis, metric, unit, title in panels:
        for name, pick, colour, marker in series:
            for kind, style in (("id", "-"), ("ood", "--")):
                points = []
                for label, k in zip(labels, ks):
                    cell = result["results"][label].get(kind)
                    values = pick(cell) if cell is not None else None
                    value = (values or {}).get(metric)
                    if value is not None:
                        points.append((k, value))
                if points:
                    axis.plot(
                        *zip(*points),
                        linestyle=style,
                        marker=marker,
                        color=colour,
                        markersize=4,
                        label=f"{name} {kind.upper()}",
                    )
        axis.set_xticks(ks, [context_label(label, k) for label, k in zip(labels, ks)])
        axis.set_xlabel("context views K")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="center right", fontsize=7)
    figure.suptitle(
        f"{scenes_text(result['num_scenes'])} of {Path(result['dataset']).name} "
        "(ID targets solid, OOD dashed)"
    )
    figure.tight_layout(rect=(0, 0, 0.84, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(argv: list[str], prog: str) -> int:
    args = tyro.cli(ViewsArgs, args=argv, prog=prog)
    result = compute_views(args)
    result["provenance"] = experiment_provenance(
        prog,
        argv,
        [args.run],
        nerf=nerf_budget(result["models"]["nerf"], result["nerf_source"]),
    )
    print_written(
        write_report(
            Path(args.out),
            "views",
            result,
            views_markdown(result),
            lambda path: views_figure(result, path),
        )
    )
    return 0
