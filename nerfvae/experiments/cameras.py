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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

from nerfvae.errors import ConfigError, DataError
from nerfvae.evaluation.evaluate import MODEL_LABELS
from nerfvae.experiments.provenance import experiment_provenance, provenance_section
from nerfvae.experiments.report import (
    difference,
    finite_or_none,
    format_number,
    markdown_header,
    markdown_row,
    plot_value,
    print_written,
    write_json,
    write_report,
)

DESCRIPTION = "camera generalisation: NeRF-VAE vs the GQN-style baseline on ID and OOD views"

SCHEMA_VERSION = 1


# -- shared by the experiments that compare trained runs -----------------------------------------


def option_text(option: str, value: str | Path) -> str:
    """``--run RUN`` / ``--runs NAME=RUN`` (an option ending in ``=`` takes no space)."""
    return f"{option}{value}" if option.endswith("=") else f"{option} {value}"


def read_eval_json(path: str | Path, option: str) -> dict[str, Any]:
    """A ``nerfvae eval`` JSON (docs/evaluation.md) given as ``option``.

    Raises:
        ConfigError: the file does not exist.
        DataError: it is not JSON or not an evaluation (no ``results`` per K with ID/OOD entries).
    """
    path = Path(path)
    given = option_text(option, path)
    if not path.is_file():
        raise ConfigError(f"{given}: no such file")
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{given}: not a JSON file ({error})") from None
    results = result.get("results") if isinstance(result, dict) else None
    if not isinstance(results, dict) or not results:
        raise DataError(f"{given}: not a `nerfvae eval` JSON (no `results` per K)")
    for k, entry in results.items():
        if not isinstance(entry, dict) or not any(kind in entry for kind in ("id", "ood")):
            raise DataError(f"{given}: results[{k!r}] has no `id`/`ood` entry")
    return result


def check_context_sizes(result: Mapping[str, Any], sizes: tuple[int, ...], source: str) -> None:
    """Raise ConfigError when an evaluation lacks one of the context sizes asked for."""
    missing = [k for k in sizes if str(k) not in result["results"]]
    if missing:
        have = ",".join(sorted(result["results"], key=lambda k: int(k) if k.isdigit() else 0))
        raise ConfigError(
            f"{source} has context sizes K={have} but --context asks for "
            f"{','.join(map(str, missing))}: evaluate again with `nerfvae eval --context ...` "
            "or drop those sizes"
        )


def check_same_scenes(results: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ConfigError unless every evaluation scored the same split, number of scenes, image
    size and target views (the comparison is only fair on the same test scenes)."""
    keys = ("split", "num_scenes", "image_size")
    names = list(results)
    reference = results[names[0]]
    for name in names[1:]:
        other = results[name]
        for key in keys:
            if key in reference and key in other and reference[key] != other[key]:
                raise ConfigError(
                    f"the evaluations of {names[0]!r} and {name!r} differ in {key} "
                    f"({reference[key]!r} vs {other[key]!r}): compare models on the same test "
                    "scenes (same --split and --max-scenes, or evaluations made with them)"
                )
        lists_a, lists_b = reference.get("view_lists", {}), other.get("view_lists", {})
        for key in ("id_targets", "ood_targets"):
            if key in lists_a and key in lists_b and lists_a[key] != lists_b[key]:
                raise ConfigError(
                    f"the evaluations of {names[0]!r} and {name!r} scored different {key} "
                    f"({lists_a[key]} vs {lists_b[key]}): evaluate both with the same --context "
                    "sizes (the ID targets start after the largest K)"
                )


def check_same_run(result: Mapping[str, Any], run: Path, source: str) -> None:
    """Raise ConfigError when an eval JSON names another run directory that exists here than the
    run it is given for (a path that does not exist here, e.g. one relative to another working
    directory, is not checked)."""
    named = result.get("run")
    if not named or not Path(named).is_dir() or not run.is_dir():
        return
    if Path(named).resolve() != run.resolve():
        raise ConfigError(f"{source} is the evaluation of run {named}, not of {run}")


def run_directory_of(run: str | None, result: Mapping[str, Any] | None) -> Path | None:
    """The run directory behind a model: ``run`` if given, else the ``run`` an eval JSON names
    when that directory (with its config.json) is here; None if neither."""
    candidate = run if run is not None else (result or {}).get("run")
    if not candidate:
        return None
    path = Path(candidate)
    return path if (path / "config.json").is_file() else None


def input_line(label: str, entry: Mapping[str, Any]) -> str:
    """A markdown bullet of the report's inputs: the run, its checkpoint step and where its
    evaluation came from (``entry``: ``run``, ``checkpoint_step``, ``eval_json``,
    ``evaluated_here``)."""
    source = (
        f"evaluated here, saved as `{entry['eval_json']}`"
        if entry["evaluated_here"]
        else f"from `{entry['eval_json']}`"
    )
    return (
        f"* {label}: run `{entry.get('run')}`, checkpoint step "
        f"{entry.get('checkpoint_step')}; {source}"
    )


class Evaluator:
    """Evaluates runs on one dataset split like ``nerfvae eval`` (the mean training image, for the
    trivial predictor, is computed once and shared by every run)."""

    def __init__(
        self,
        data: str | None,
        split: str,
        context_sizes: tuple[int, ...],
        max_scenes: int | None,
        scenes_per_batch: int,
        seed: int,
    ) -> None:
        self.data = data
        self.split = split
        self.context_sizes = context_sizes
        self.max_scenes = max_scenes
        self.scenes_per_batch = scenes_per_batch
        self.seed = seed
        self._dataset = None
        self._train_mean = None
        self._train_mean_done = False

    def __call__(self, run: str, option: str) -> dict[str, Any]:
        """The evaluation of run directory ``run`` (named by ``option`` in errors): the JSON of
        ``nerfvae eval``, NaN as None."""
        from nerfvae.data.loader import MultiSceneDataset
        from nerfvae.evaluation.evaluate import evaluate_run, optional_mean_training_image
        from nerfvae.evaluation.report import nan_to_null
        from nerfvae.training.loading import load_trained_model

        if self.data is None:
            raise ConfigError(
                f"--data is needed to evaluate {option_text(option, run)} (or give its previous "
                "`nerfvae eval` output with the matching --eval-json option)"
            )
        loaded = load_trained_model(run)
        if self._dataset is None:
            self._dataset = MultiSceneDataset(self.data, self.split)
        if not self._train_mean_done:
            self._train_mean = optional_mean_training_image(self.data)
            self._train_mean_done = True
        result = evaluate_run(
            loaded,
            self._dataset,
            run=run,
            data=self.data,
            split=self.split,
            context_sizes=self.context_sizes,
            max_scenes=self.max_scenes,
            scenes_per_batch=self.scenes_per_batch,
            mean_train_image=self._train_mean,
            seed=self.seed,
        )
        return nan_to_null(result)


def parse_context(text: str) -> tuple[int, ...]:
    """``1,3`` -> (1, 3), ConfigError otherwise (the parser of ``nerfvae eval``)."""
    from nerfvae.cli.evaluate import parse_context_sizes

    return tuple(sorted(set(parse_context_sizes(text))))


NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


# -- the cameras experiment ------------------------------------------------------------------------

METRICS = (("psnr", "PSNR"), ("object_psnr", "object PSNR"), ("ssim", "SSIM"))
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


@dataclass
class CamerasArgs:
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
    data: str | None = None
    """Dataset directory (needed unless both evaluations are given as JSON)."""
    split: str = "test"
    """Dataset split to evaluate."""
    context: str = "1,3"
    """Comma-separated numbers of context views K (views 0..K-1 of each scene; docs/evaluation.md)."""
    max_scenes: int | None = 20
    """Evaluate the first N scenes of the split (for runs evaluated here; an --eval-json keeps the
    scenes it was made on, and all evaluations must cover the same scenes)."""
    eval_json: str | None = None
    """A previous `nerfvae eval` JSON of the NeRF-VAE run, used instead of evaluating it again
    (e.g. eval_nerfvae.json from an earlier run of this experiment)."""
    gqn_eval_json: str | None = None
    """A previous `nerfvae eval` JSON of the GQN run, used instead of evaluating it again."""
    out: str = "docs/results/cameras"
    """Output directory (cameras.json, cameras.png, cameras.md, eval_*.json)."""
    scenes_per_batch: int = 4
    """Scenes inferred and rendered together."""
    seed: int = 0
    """Seed of the posterior sample used for the ELBO."""
    threads: int = 0
    """torch intra-op threads (0 = PyTorch's default)."""


def _model_entry(per_k: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for kind in ("id", "ood"):
        source = per_k.get(kind) or {}
        entry[kind] = {key: finite_or_none(source.get(key)) for key, _ in METRICS}
        entry[kind]["num_views"] = source.get("num_views")
    entry["drop"] = {key: difference(entry["id"][key], entry["ood"][key]) for key, _ in METRICS}
    return entry


def _trivial_entry(per_k: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for kind in ("id", "ood"):
        source = per_k.get(kind) or {}
        entry[kind] = {metric: finite_or_none(source.get(key)) for metric, key in keys.items()}
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
        row: dict[str, Any] = {name: _model_entry(per_k) for name, per_k in per_model.items()}
        for trivial, (_, keys) in TRIVIAL.items():
            row[trivial] = _trivial_entry(per_model["nerfvae"], keys)
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
    ]
    lines += markdown_header(
        [
            "K",
            "model",
            *(f"{title} {part}" for _, title in METRICS for part in ("ID", "OOD", "drop")),
        ]
    )
    for k, row in report["results"].items():
        names = [*report["models"], *TRIVIAL]
        for name in names:
            entry = row[name]
            label = (
                report["models"][name]["label"] if name in report["models"] else TRIVIAL[name][0]
            )
            cells = []
            for key, _ in METRICS:
                for part in ("id", "ood", "drop"):
                    cells.append(format_number(entry[part].get(key), 3 if key == "ssim" else 2))
            lines.append(markdown_row([k, label, *cells]))
    lines += [
        "",
        "PSNR above the mean training image on the same views (model − trivial predictor; "
        "whether OOD views are easier or harder in themselves cancels out):",
        "",
        *markdown_header(
            [
                "K",
                "model",
                "PSNR margin ID",
                "PSNR margin OOD",
                "object PSNR margin ID",
                "object PSNR margin OOD",
            ]
        ),
    ]
    for k, row in report["results"].items():
        for name, model in report["models"].items():
            margin = row[name]["margin_over_mean_train_image"]
            cells = [
                format_number(margin[kind][key])
                for key in ("psnr", "object_psnr")
                for kind in ("id", "ood")
            ]
            lines.append(markdown_row([k, model["label"], *cells]))
    lines += ["", "![cameras](cameras.png)", "", "## Inputs", ""]
    lines += [input_line(model["label"], model) for model in report["models"].values()]
    lines += ["", *provenance_section(report["provenance"])]
    return "\n".join(lines) + "\n"


def cameras_figure(report: Mapping[str, Any], path: Path) -> None:
    """Grouped bars: per metric a panel; per K each model and trivial predictor a group of an ID
    and an OOD bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(METRICS), figsize=(6 * len(METRICS), 4.2))
    for axis, (key, title) in zip(axes, METRICS):
        labels, id_values, ood_values, group_ends = [], [], [], []
        for k, row in report["results"].items():
            if labels:
                group_ends.append(len(labels) - 0.5)
            for name in [*report["models"], *TRIVIAL]:
                entry = row[name]
                if key not in entry["id"]:
                    continue  # the trivial predictors have no SSIM
                label = (
                    report["models"][name]["label"]
                    if name in report["models"]
                    else SHORT_LABELS[name]
                )
                labels.append(f"{label}\nK={k}")
                id_values.append(plot_value(entry["id"][key]))
                ood_values.append(plot_value(entry["ood"][key]))
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
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


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
    args = tyro.cli(CamerasArgs, args=argv, prog=prog)
    context_sizes = parse_context(args.context)
    if args.max_scenes is not None and args.max_scenes < 1:
        raise ConfigError(f"--max-scenes must be positive, got {args.max_scenes}")
    inputs = {
        "nerfvae": (args.run, args.eval_json, "--run", "--eval-json"),
        "gqn": (args.gqn_run, args.gqn_eval_json, "--gqn-run", "--gqn-eval-json"),
    }
    for run_dir, eval_json, run_option, json_option in inputs.values():
        if run_dir is None and eval_json is None:
            raise ConfigError(f"give {run_option} RUN or {json_option} EVAL.json")
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)

    out = Path(args.out)
    evaluator = Evaluator(
        args.data, args.split, context_sizes, args.max_scenes, args.scenes_per_batch, args.seed
    )
    evaluations: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, Any]] = {}
    run_dirs: list[Path] = []
    for name, (run_dir, eval_json, run_option, json_option) in inputs.items():
        if eval_json is not None:
            result = read_eval_json(eval_json, json_option)
            if run_dir is not None:
                check_same_run(result, Path(run_dir), f"{json_option} {eval_json}")
            source = f"{json_option} {eval_json}"
            saved = Path(eval_json)
        else:
            result = evaluator(run_dir, run_option)
            source = f"the evaluation of {run_option} {run_dir}"
            saved = out / f"eval_{name}.json"
            write_json(result, saved)
        check_context_sizes(result, context_sizes, source)
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
    report: dict[str, Any] = {
        "experiment": "cameras",
        "schema_version": SCHEMA_VERSION,
        "description": "PSNR, SSIM and object-pixel PSNR on ID and OOD target views, per model "
        "and K, and the drop ID - OOD, beside the trivial predictors",
        "dataset": reference.get("dataset"),
        "split": reference.get("split"),
        "num_scenes": reference.get("num_scenes"),
        "image_size": reference.get("image_size"),
        "view_lists": reference.get("view_lists", {}),
        "context_sizes": list(context_sizes),
        "models": models,
        "results": results,
        "headline": headline_rows(results, context_sizes),
        "provenance": experiment_provenance(prog, argv, run_dirs),
    }
    markdown = markdown_report(report)
    paths = write_report(
        out, "cameras", report, markdown, lambda path: cameras_figure(report, path)
    )
    print_written(paths, markdown)
    return 0
