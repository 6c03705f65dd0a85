"""``nerfvae experiment cameras``: NeRF-VAE against the GQN-style baseline on the same held-out ID
views and OOD cameras. The paper's claim: a volumetric renderer generalises to cameras unlike the
training ones, a convolutional one does not, so NeRF-VAE's drop ID → OOD should be smaller: read as
each model's drop paired per scene and the GQN drop − NeRF-VAE drop per scene, with their 95%
bootstrap intervals over scenes (:mod:`nerfvae.experiment_reports.claims`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nerfvae.errors import ConfigError, DataError, check_at_least
from nerfvae.evaluation import figures
from nerfvae.evaluation import markdown as md
from nerfvae.evaluation.evaluate import MODEL_LABELS
from nerfvae.evaluation.views import parse_context_sizes
from nerfvae.experiment_reports import claims
from nerfvae.experiment_reports import ood_cameras as cameras_report
from nerfvae.experiments import common, trained_runs

DESCRIPTION = "camera generalisation: NeRF-VAE vs the GQN-style baseline on ID and OOD views"
CLAIM = "NeRF-VAE holds up on OOD cameras where the GQN-style model does not"


@dataclass(kw_only=True)
class CamerasArgs(trained_runs.TrainedRunsArgs):
    """Camera generalisation: evaluate a NeRF-VAE run and a GQN-style run on the same test scenes,
    on held-out ID views and OOD cameras, and report PSNR, SSIM, object-pixel PSNR and each
    model's drop ID → OOD beside the trivial predictors. Writes cameras.json, cameras.png,
    cameras.md and the raw evaluations (reusable with --eval-json / --gqn-eval-json)."""

    run: str | None = None
    """NeRF-VAE run directory (optional with --eval-json)."""
    gqn_run: str | None = None
    """GQN-style run directory, from `nerfvae train --model gqn` (optional with --gqn-eval-json)."""
    context: str = "1,3"
    """Context sizes K, comma-separated, each at most once (views 0..K-1 of each scene)."""
    eval_json: str | None = None
    """A previous `nerfvae eval` JSON of the NeRF-VAE run (e.g. eval_nerfvae.json of an earlier
    run of this experiment), used instead of evaluating it again."""
    gqn_eval_json: str | None = None
    """A previous `nerfvae eval` JSON of the GQN run, used instead of evaluating it again."""
    min_margin_db: float = 3.0
    """The claim is read at a K only where both models' ID PSNR is at least this far above the
    mean-context-colour predictor on the same views (below it, a model barely beats a constant
    image and its drop ID → OOD says little); else its verdict is "not read"."""
    figure_scenes: int = 3
    """Test scenes shown in ood_views.png: each one's OOD target views, the truth above the
    NeRF-VAE and GQN renders from the largest K (encoder alone, posterior mean); 0 = no figure.
    Drawn when --data and both run directories (holding the evaluated checkpoints) are known."""
    out: str = "docs/results/cameras"


def _entry(
    per_k: Mapping[str, Any],
    keys: Mapping[str, str],
    views: bool,
    evaluation: Mapping[str, Any],
    k: int,
) -> dict[str, Any]:
    """ID / OOD values of ``keys`` (metric -> key in the evaluation) and the drop ID − OOD, with
    the ``per_scene`` values of ``evaluation`` at ``k`` (ID, OOD and drop per scene; None where it
    has none) and the ``intervals`` of each (the drop's: paired per scene)."""
    entry: dict[str, Any] = {}
    for kind in md.KINDS:
        source = per_k.get(kind) or {}
        entry[kind] = {metric: md.finite_or_none(source.get(key)) for metric, key in keys.items()}
        if views:
            entry[kind]["num_views"] = source.get("num_views")
    entry["drop"] = {
        metric: md.difference(entry["id"][metric], entry["ood"][metric]) for metric in keys
    }
    per_scene: dict[str, Any] = {
        kind: {
            metric: claims.scene_values(evaluation, k, kind, key) for metric, key in keys.items()
        }
        for kind in md.KINDS
    }
    per_scene["drop"] = {
        metric: claims.differences(per_scene["id"][metric], per_scene["ood"][metric])
        for metric in keys
    }
    entry["per_scene"] = per_scene
    entry["intervals"] = claims.intervals_of(per_scene)
    return entry


def compare_cameras(
    evaluations: Mapping[str, Mapping[str, Any]], context_sizes: tuple[int, ...]
) -> dict[str, Any]:
    """``results[K]``: per model ID / OOD metrics, drop (ID − OOD; positive = worse on OOD
    cameras) and margin over the mean training image (model − trivial predictor, per view kind),
    and the trivial predictors (from the NeRF-VAE evaluation; they depend only on the data); every
    row with its per-scene values and intervals (see :func:`_entry`)."""
    results: dict[str, Any] = {}
    for k in context_sizes:
        per_model = {name: evaluations[name]["results"][str(k)] for name in evaluations}
        row = {
            name: _entry(
                per_k, {key: key for key, _ in cameras_report.METRICS}, True, evaluations[name], k
            )
            for name, per_k in per_model.items()
        }
        for trivial, prefix in md.TRIVIAL_PREDICTORS.items():
            keys = {key: f"{prefix}_{key}" for key in ("psnr", "object_psnr")}
            row[trivial] = _entry(per_model["nerfvae"], keys, False, evaluations["nerfvae"], k)
        for name in evaluations:
            # above the mean training image on the same views: separates a model's own
            # generalisation from OOD views being easier or harder in themselves
            row[name]["margin_over_mean_train_image"] = {
                kind: {
                    key: md.difference(row[name][kind][key], row["mean_train_image"][kind][key])
                    for key in ("psnr", "object_psnr")
                }
                for kind in md.KINDS
            }
        results[str(k)] = row
    return results


def below_margin(row: Mapping[str, Any], min_margin_db: float) -> str | None:
    """Why a K's comparison is not read: the models whose ID PSNR is less than ``min_margin_db``
    above the mean-context-colour predictor's (None when both clear it)."""
    trivial = row["mean_context_colour"]["id"]["psnr"]
    short = []
    for name in ("nerfvae", "gqn"):
        margin = md.difference(row[name]["id"]["psnr"], trivial)
        if margin is None or margin < min_margin_db:
            shown = "?" if margin is None else f"{margin:+.2f}"
            short.append(f"{MODEL_LABELS[name]} {shown} dB")
    if not short:
        return None
    return f"ID PSNR above the mean context colour: {', '.join(short)}; needs {min_margin_db:g}"


def drop_differences(results: Mapping[str, Any], min_margin_db: float) -> dict[str, Any]:
    """The paper's claim (2) per K and metric: GQN's drop ID − OOD minus NeRF-VAE's, paired per
    scene ("greater": the GQN-style model drops more on OOD cameras); not read at a K where a
    model is less than ``min_margin_db`` above the mean context colour (:func:`below_margin`)."""
    out: dict[str, Any] = {}
    for k, row in results.items():
        vae, gqn = row["nerfvae"], row["gqn"]
        reason = below_margin(row, min_margin_db)
        out[k] = {
            metric: claims.not_read(
                claims.claim(
                    gqn["per_scene"]["drop"][metric],
                    vae["per_scene"]["drop"][metric],
                    "greater",
                    md.difference(gqn["drop"][metric], vae["drop"][metric]),
                ),
                reason,
            )
            for metric, _ in cameras_report.METRICS
        }
    return out


def cameras_claims(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The claim's rows for the results summary: GQN drop − NeRF-VAE drop in PSNR, per K."""
    return [
        claims.claim_row(
            CLAIM, f"GQN drop − NeRF-VAE drop (ID → OOD), K={k}", "PSNR (dB)",
            cameras_report.drop_difference(report, k, "psnr"),
        )
        for k in report["results"]
    ]  # fmt: skip


def headline_rows(results: Mapping[str, Any], context_sizes: tuple[int, ...]) -> list[dict]:
    """Each model on ID and OOD views at the largest K, beside the trivial predictors (with the
    PSNR's interval over scenes, ``psnr_interval``, None without per-scene values)."""
    k = str(max(context_sizes))
    rows = []
    for name in ("nerfvae", "gqn"):
        for kind in md.KINDS:
            entry = results[k][name]
            trivial = {key: results[k][key][kind]["psnr"] for key in cameras_report.TRIVIAL}
            note = f"drop ID→OOD {claims.row_cell(entry, 'drop', 'psnr')} dB PSNR"
            label = f"{MODEL_LABELS[name]}, K={k}, {kind.upper()} views"
            row = common.headline_row(
                label, entry[kind]["psnr"], entry[kind]["object_psnr"], trivial
            )
            row["psnr_interval"] = md.at(entry, "intervals", kind, "psnr")
            rows.append({**row, "note": note} if kind == "ood" else row)
    return rows


def ood_view_rows(
    models: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    dataset: Any,
    k: int,
    num_scenes: int,
) -> list[list[torch.Tensor]]:
    """Rows of ood_views.png: per scene, its OOD target views ``[H, W, 3]`` in [0, 1], then each
    of ``models`` (name -> model) rendering them from the posterior mean given context views
    ``evaluation["view_lists"]["context"][k]`` (the views the evaluation scored)."""
    from nerfvae.inference import infer_scene

    lists = evaluation["view_lists"]
    context, targets = lists["context"][str(k)], lists["ood_targets"]
    rows: list[list[torch.Tensor]] = []
    for index in range(num_scenes):
        scene = dataset.load_scene(index)
        rows.append(list(scene.images[targets].float() / 255.0))
        K, c2w = scene.K[targets][None].float(), scene.c2w[targets][None].float()
        for model in models.values():
            generator = torch.Generator().manual_seed(index)
            posterior = infer_scene(
                model, scene.images, scene.K, scene.c2w, context, None, generator
            )
            with torch.no_grad():
                views = model.render_views(posterior.mean, K, c2w, *scene.images.shape[1:3])
            rows.append(list(views["colour"][0].float().clamp(0, 1)))
    return rows


def evaluated_model(directory: Path, evaluation: Mapping[str, Any], option: str) -> Any:
    """The model of run ``directory`` at the checkpoint ``evaluation`` scored (ConfigError when the
    run no longer keeps it)."""
    from nerfvae.training.run_directory import RunDirectory

    step = evaluation.get("checkpoint_step")
    checkpoint = RunDirectory(directory).checkpoint_at(step) if isinstance(step, int) else None
    if checkpoint is None:
        raise ConfigError(
            f"{option} {directory}: no checkpoint of step {step}, the one evaluated, for "
            "ood_views.png (--figure-scenes 0 skips the figure)"
        )
    return common.load_run(directory, str(checkpoint))[0]


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
    args = common.parse_args(CamerasArgs, argv, prog)
    context_sizes = tuple(sorted(parse_context_sizes(args.context)))
    check_at_least(args.figure_scenes, "--figure-scenes", 0, "0 (no figure)")
    if not args.min_margin_db >= 0:
        raise ConfigError(f"--min-margin-db {args.min_margin_db}: must be 0 or more")
    inputs = {
        "nerfvae": (args.run, args.eval_json, "--run", "--eval-json"),
        "gqn": (args.gqn_run, args.gqn_eval_json, "--gqn-run", "--gqn-eval-json"),
    }
    for run_dir, eval_json, run_option, json_option in inputs.values():
        if run_dir is None and eval_json is None:
            raise ConfigError(f"give {run_option} RUN or {json_option} EVAL.json")
    directories: dict[str, Path | None] = {}

    def check_kind(name: str, result: dict[str, Any]) -> None:
        run_dir, eval_json, run_option, json_option = inputs[name]
        directories[name] = trained_runs.run_directory_of(run_dir, result)
        kind = _model_kind(result, directories[name])
        if kind is not None and kind != name:
            raise ConfigError(
                f"{run_option if eval_json is None else json_option} is a "
                f"{MODEL_LABELS.get(kind, kind)} model; expected {MODEL_LABELS[name]}"
            )

    evaluations, sources = trained_runs.evaluate_runs(args, context_sizes, inputs, check_kind)
    models = {
        name: {
            "label": MODEL_LABELS[name],
            "run": str(directory) if directory is not None else evaluations[name].get("run"),
            **sources[name],
        }
        for name, directory in directories.items()
    }
    if not any("ood" in evaluations["nerfvae"]["results"][str(k)] for k in context_sizes):
        raise DataError(
            "the evaluation has no OOD targets: the split's scenes have no out-of-distribution "
            "views, which this experiment compares against"
        )
    results = compare_cameras(evaluations, context_sizes)
    report = common.result_header(
        "cameras",
        "PSNR, SSIM and object-pixel PSNR on ID and OOD target views, per model and K, and the "
        "drop ID - OOD, beside the trivial predictors",
        **trained_runs.scenes_of(evaluations["nerfvae"]),
        context_sizes=list(context_sizes),
        models=models,
        results=results,
        min_margin_db=args.min_margin_db,
        drop_difference=drop_differences(results, args.min_margin_db),
        headline=headline_rows(results, context_sizes),
    )
    report["claims"] = cameras_claims(report)
    figure: dict[str, Any] = {"cameras.png": cameras_report.cameras_figure}
    if args.figure_scenes > 0 and (args.data is None or None in directories.values()):
        print(
            "not drawing ood_views.png: it needs --data and both run directories (--run, "
            "--gqn-run, or the runs the eval JSONs name)",
            file=sys.stderr,
        )
    elif args.figure_scenes > 0:
        dataset = common.load_dataset(args.data, args.split)
        shown = min(args.figure_scenes, report["num_scenes"])
        models = {
            name: evaluated_model(directory, evaluations[name], inputs[name][2])
            for name, directory in directories.items()
        }
        rows = ood_view_rows(models, evaluations["nerfvae"], dataset, context_sizes[-1], shown)
        report["ood_views_figure"] = {
            "scenes": list(range(shown)),
            "context_size": context_sizes[-1],
            "rows_per_scene": ["truth", *(MODEL_LABELS[name] for name in models)],
            "views": evaluations["nerfvae"]["view_lists"]["ood_targets"],
        }
        figure["ood_views.png"] = lambda _, path: figures.write_image_grid(path, rows, 96)
    runs = [d for d in directories.values() if d is not None]
    return common.finish(prog, argv, args.out, report, cameras_report.markdown_report, figure, runs)
