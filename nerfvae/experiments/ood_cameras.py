"""``nerfvae experiment cameras``: camera generalisation of NeRF-VAE against the GQN-style
baseline.

Both models are evaluated (``nerfvae.evaluation.evaluate.evaluate``, the code of ``nerfvae eval``)
on the same test scenes with the same view lists: context = the first K ID views, targets = the
held-out ID views and every OOD view (higher, closer, wider, off-centre cameras). For each K the
experiment reports PSNR, SSIM and object-pixel PSNR on ID and on OOD targets, the drop ID → OOD of
each model, and beside them the same numbers for the trivial predictors (mean training image, mean
colour of the context views). The paper's claim: a volumetric renderer generalises to cameras
unlike the training ones, a convolutional one does not — so NeRF-VAE's drop should be smaller.

Writes ``cameras.json``, ``cameras.png`` and ``cameras.md`` to ``--out`` and, for every model it
evaluated, the raw ``nerfvae eval`` JSON (``eval_nerfvae.json``, ``eval_gqn.json``) that later runs
take back with ``--eval-json`` / ``--gqn-eval-json`` instead of evaluating again.

The helpers in the first part of this module (reading or computing evaluations, checking that
they cover the same scenes) are shared with :mod:`nerfvae.experiments.ablation`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerfvae.errors import ConfigError, DataError
from nerfvae.evaluation.evaluate import MODEL_LABELS
from nerfvae.evaluation.views import parse_context_sizes
from nerfvae.experiments.common import finish, parse_args, result_header
from nerfvae.experiments.markdown import (
    difference,
    figure_file,
    finite_or_none,
    format_number,
    markdown_header,
    markdown_row,
    plot_value,
)
from nerfvae.experiments.provenance import provenance_section
from nerfvae.experiments.trained_runs import (
    TrainedRunsArgs,
    check_same_scenes,
    input_line,
    run_directory_of,
)

DESCRIPTION = "camera generalisation: NeRF-VAE vs the GQN-style baseline on ID and OOD views"


METRICS = (("psnr", "PSNR"), ("object_psnr", "object PSNR"), ("ssim", "SSIM"))
PARTS = ("ID", "OOD", "drop")
SHORT_LABELS = {
    "mean_train_image": "mean\ntrain img",
    "mean_context_colour": "mean\ncontext",
}
TRIVIAL = {
    "mean_train_image": (
        "mean training image",
        {"psnr": "baseline_mean_train_psnr", "object_psnr": "baseline_mean_train_object_psnr"},
    ),
    "mean_context_colour": (
        "mean context colour",
        {"psnr": "baseline_mean_context_psnr", "object_psnr": "baseline_mean_context_object_psnr"},
    ),
}


@dataclass(kw_only=True)
class CamerasArgs(TrainedRunsArgs):
    """Camera generalisation: evaluate a NeRF-VAE run and a GQN-style run (`nerfvae train --model
    gqn`) on the same test scenes, on held-out in-distribution (ID) views and on
    out-of-distribution (OOD) cameras, and report PSNR, SSIM, object-pixel PSNR and each model's
    drop ID → OOD beside the trivial predictors. Writes cameras.json, cameras.png and cameras.md
    (and the raw evaluations, reusable with --eval-json / --gqn-eval-json)."""

    run: str | None = None
    """NeRF-VAE run directory (from `nerfvae train`); optional when --eval-json is given."""
    gqn_run: str | None = None
    """GQN-style baseline run directory (from `nerfvae train --model gqn`); optional when
    --gqn-eval-json is given."""
    context: str = "1,3"
    """Numbers of context views K, comma-separated, each at most once (views 0..K-1 of each scene;
    docs/evaluation.md)."""
    eval_json: str | None = None
    """A previous `nerfvae eval` JSON of the NeRF-VAE run, used instead of evaluating it again
    (e.g. eval_nerfvae.json from an earlier run of this experiment)."""
    gqn_eval_json: str | None = None
    """A previous `nerfvae eval` JSON of the GQN run, used instead of evaluating it again."""
    out: str = "docs/results/cameras"
    """Output directory (cameras.json, cameras.png, cameras.md, eval_*.json)."""


def _entry(per_k: Mapping[str, Any], keys: Mapping[str, str], views: bool) -> dict[str, Any]:
    """ID / OOD values of ``keys`` (metric -> key in the evaluation), and the drop ID − OOD."""
    entry: dict[str, Any] = {}
    for kind in ("id", "ood"):
        source = per_k.get(kind) or {}
        entry[kind] = {metric: finite_or_none(source.get(key)) for metric, key in keys.items()}
        if views:
            entry[kind]["num_views"] = source.get("num_views")
    entry["drop"] = {
        metric: difference(entry["id"][metric], entry["ood"][metric]) for metric in keys
    }
    return entry


def compare_cameras(
    evaluations: Mapping[str, Mapping[str, Any]], context_sizes: tuple[int, ...]
) -> dict[str, Any]:
    """``results[K]`` of cameras.json from the evaluations of ``nerfvae`` and ``gqn``: per model
    ID / OOD metrics, drop (ID − OOD; positive = worse on OOD cameras) and margin over the mean
    training image (model − trivial predictor, per view kind), and the trivial predictors (taken
    from the NeRF-VAE evaluation; they depend only on the data)."""
    results: dict[str, Any] = {}
    for k in context_sizes:
        per_model = {name: evaluations[name]["results"][str(k)] for name in evaluations}
        metrics = {key: key for key, _ in METRICS}
        row = {name: _entry(per_k, metrics, True) for name, per_k in per_model.items()}
        for trivial, (_, keys) in TRIVIAL.items():
            row[trivial] = _entry(per_model["nerfvae"], keys, False)
        baseline = row["mean_train_image"]
        for name in evaluations:
            # above the mean training image on the same views: separates a model's own
            # generalisation from OOD views being easier or harder in themselves
            row[name]["margin_over_mean_train_image"] = {
                kind: {
                    key: difference(row[name][kind][key], baseline[kind][key])
                    for key in ("psnr", "object_psnr")
                }
                for kind in ("id", "ood")
            }
        results[str(k)] = row
    return results


def headline_rows(results: Mapping[str, Any], context_sizes: tuple[int, ...]) -> list[dict]:
    """Rows for docs/results/README.md: each model on ID and OOD views at the largest K, beside
    the trivial predictors of the same views."""
    k = str(max(context_sizes))
    rows = []
    for name in ("nerfvae", "gqn"):
        for kind in ("id", "ood"):
            entry = results[k][name]
            row = {
                "label": f"{MODEL_LABELS[name]}, K={k}, {kind.upper()} views",
                "psnr": entry[kind]["psnr"],
                "object_psnr": entry[kind]["object_psnr"],
                "baseline_mean_train_psnr": results[k]["mean_train_image"][kind]["psnr"],
                "baseline_mean_context_psnr": results[k]["mean_context_colour"][kind]["psnr"],
            }
            if kind == "ood":
                row["note"] = f"drop ID→OOD {format_number(entry['drop']['psnr'])} dB PSNR"
            rows.append(row)
    return rows


def markdown_report(report: Mapping[str, Any]) -> str:
    """cameras.md: the table, the figure, the inputs and the provenance."""
    lines = [
        "# Camera generalisation: NeRF-VAE vs GQN-style baseline",
        "",
        f"Dataset `{report.get('dataset')}`, split `{report.get('split')}`, "
        f"{report.get('num_scenes')} scenes; context = the first K ID views; targets = ID views "
        f"{report['view_lists'].get('id_targets')} and OOD views "
        f"{report['view_lists'].get('ood_targets')} of every scene. Drop = ID − OOD "
        "(positive: worse on out-of-distribution cameras). Trivial predictors: the mean "
        "training image and a constant image of the context views' mean colour.",
        "",
        *markdown_header(
            ["K", "model", *(f"{title} {part}" for _, title in METRICS for part in PARTS)]
        ),
    ]
    for k, row in report["results"].items():
        for name in [*report["models"], *TRIVIAL]:
            label = (
                report["models"][name]["label"] if name in report["models"] else TRIVIAL[name][0]
            )
            cells = [
                format_number(row[name][part].get(key), 3 if key == "ssim" else 2)
                for key, _ in METRICS
                for part in ("id", "ood", "drop")
            ]
            lines.append(markdown_row([k, label, *cells]))
    lines += [
        "",
        "PSNR above the mean training image on the same views (model − trivial predictor; "
        "whether OOD views are easier or harder in themselves cancels out):",
        "",
        *markdown_header(
            "K | model | PSNR margin ID | PSNR margin OOD | object PSNR margin ID | "
            "object PSNR margin OOD"
        ),
    ]
    for k, row in report["results"].items():
        for name, model in report["models"].items():
            margin = row[name]["margin_over_mean_train_image"]
            cells = [margin[kind][key] for key in ("psnr", "object_psnr") for kind in ("id", "ood")]
            lines.append(markdown_row([k, model["label"], *map(format_number, cells)]))
    lines += ["", "![cameras](cameras.png)", "", "## Inputs", ""]
    lines += [input_line(model["label"], model) for model in report["models"].values()]
    lines += ["", *provenance_section(report["provenance"])]
    return "\n".join(lines) + "\n"


def cameras_figure(report: Mapping[str, Any], path: Path) -> None:
    """Grouped bars: per metric a panel; per K each model and trivial predictor a group of an ID
    and an OOD bar."""
    with figure_file(path, len(METRICS), (6 * len(METRICS), 4.2)) as (figure, axes):
        for axis, (key, title) in zip(axes, METRICS):
            labels, id_values, ood_values, group_ends = [], [], [], []
            for k, row in report["results"].items():
                if labels:
                    group_ends.append(len(labels) - 0.5)
                for name in [*report["models"], *TRIVIAL]:
                    if key not in row[name]["id"]:
                        continue  # the trivial predictors have no SSIM
                    models = report["models"]
                    label = models[name]["label"] if name in models else SHORT_LABELS[name]
                    labels.append(f"{label}\nK={k}")
                    id_values.append(plot_value(row[name]["id"][key]))
                    ood_values.append(plot_value(row[name]["ood"][key]))
            positions = range(len(labels))
            axis.bar([p - 0.2 for p in positions], id_values, 0.4, label="ID", color="tab:blue")
            axis.bar([p + 0.2 for p in positions], ood_values, 0.4, label="OOD", color="tab:orange")
            axis.set_xticks(list(positions))
            axis.set_xticklabels(labels, fontsize=7)
            for end in group_ends:  # separates the context sizes
                axis.axvline(end, color="grey", linewidth=0.8)
            axis.set_title(title)
            axis.set_ylabel("SSIM" if key == "ssim" else "dB")
            finite = [v for v in id_values + ood_values if v == v]
            if finite and key != "ssim":
                axis.set_ylim(max(0.0, min(finite) - 3.0), max(finite) + 1.0)
            axis.grid(axis="y", alpha=0.3)
        axes[0].legend(fontsize=8)
        figure.suptitle(f"Camera generalisation ({report.get('num_scenes')} test scenes)")


def _model_kind(result: Mapping[str, Any], run_dir: Path | None) -> str | None:
    """``nerfvae``/``gqn`` from the run's config, else from the eval JSON's ``model`` label."""
    if run_dir is not None:
        try:
            return json.loads((run_dir / "config.json").read_text()).get("model")
        except (OSError, json.JSONDecodeError):
            pass
    label = result.get("model")
    return {label_: name for name, label_ in MODEL_LABELS.items()}.get(label, label)


def run(argv: list[str], prog: str) -> int:
    args = parse_args(CamerasArgs, argv, prog)
    context_sizes = tuple(sorted(parse_context_sizes(args.context)))
    inputs = {
        "nerfvae": (args.run, args.eval_json, "--run", "--eval-json"),
        "gqn": (args.gqn_run, args.gqn_eval_json, "--gqn-run", "--gqn-eval-json"),
    }
    for run_dir, eval_json, run_option, json_option in inputs.values():
        if run_dir is None and eval_json is None:
            raise ConfigError(f"give {run_option} RUN or {json_option} EVAL.json")
    evaluate = args.evaluator(context_sizes)
    evaluations: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, Any]] = {}
    run_dirs: list[Path] = []
    for name, (run_dir, eval_json, run_option, json_option) in inputs.items():
        saved = Path(args.out) / f"eval_{name}.json"
        result, saved = evaluate(run_dir, eval_json, run_option, json_option, saved)
        directory = run_directory_of(run_dir, result)
        kind = _model_kind(result, directory)
        if kind is not None and kind != name:
            raise ConfigError(
                f"{run_option if eval_json is None else json_option} is a "
                f"{MODEL_LABELS.get(kind, kind)} model; expected {MODEL_LABELS[name]}"
            )
        if directory is not None:
            run_dirs.append(directory)
        evaluations[name] = result
        models[name] = {
            "label": MODEL_LABELS[name],
            "run": str(directory) if directory is not None else result.get("run"),
            "checkpoint_step": result.get("checkpoint_step"),
            "eval_json": str(saved),
            "evaluated_here": eval_json is None,
        }
    check_same_scenes(evaluations)
    if not any("ood" in evaluations["nerfvae"]["results"][str(k)] for k in context_sizes):
        raise DataError(
            "the evaluation has no OOD targets: the split's scenes have no out-of-distribution "
            "views, which this experiment compares against"
        )
    reference = evaluations["nerfvae"]
    results = compare_cameras(evaluations, context_sizes)
    report = result_header(
        "cameras",
        "PSNR, SSIM and object-pixel PSNR on ID and OOD target views, per model and K, and the "
        "drop ID - OOD, beside the trivial predictors",
        **{key: reference.get(key) for key in ("dataset", "split", "num_scenes", "image_size")},
        view_lists=reference.get("view_lists", {}),
        context_sizes=list(context_sizes),
        models=models,
        results=results,
        headline=headline_rows(results, context_sizes),
    )
    figure = {"cameras.png": lambda path: cameras_figure(report, path)}
    return finish(prog, argv, run_dirs, args.out, "cameras", report, markdown_report, figure)
