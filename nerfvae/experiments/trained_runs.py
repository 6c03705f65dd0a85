"""The evaluations behind the experiments that compare trained runs (cameras, ablation): each run
evaluated here like ``nerfvae eval`` and saved as ``eval_NAME.json``, or its earlier evaluation
reused, and the checks that the comparison is fair (same scenes, same targets, every K)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerfvae.errors import ConfigError, DataError
from nerfvae.experiments.common import ScenesArgs, load_dataset, load_json, write_json

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
"""A run's name in ``--runs NAME=RUN`` (it names output files)."""

RunInput = tuple[str | None, str | None, str, str]
"""A run to evaluate: ``(run directory, earlier eval JSON, run option, JSON option)``, either
path None; the options name the paths in errors (``--run`` or ``--runs NAME=``)."""


@dataclass(kw_only=True)
class TrainedRunsArgs(ScenesArgs):
    """Options of the experiments that evaluate trained runs on the same test scenes."""

    data: str | None = None
    """Dataset directory (needed unless every evaluation is given as JSON)."""
    scenes_per_batch: int = 4
    """Scenes inferred and rendered together."""
    seed: int = 0
    """Seed of the posterior sample used for the ELBO."""


def option_text(option: str, value: str | Path) -> str:
    """``--run RUN`` / ``--runs NAME=RUN`` (an option ending in ``=`` takes no space)."""
    return f"{option}{value}" if option.endswith("=") else f"{option} {value}"


def read_eval_json(path: str | Path, option: str) -> dict[str, Any]:
    """A ``nerfvae eval`` JSON given as ``option`` (ConfigError: no such file; DataError: not an
    evaluation, i.e. no ``results`` per K with ID/OOD entries)."""
    given = option_text(option, path)
    result = load_json(path, given, DataError)
    results = result.get("results")
    if not isinstance(results, dict) or not results:
        raise DataError(f"{given}: not a `nerfvae eval` JSON (no `results` per K)")
    for k, entry in results.items():
        if not isinstance(entry, dict) or not any(kind in entry for kind in ("id", "ood")):
            raise DataError(f"{given}: results[{k!r}] has no `id`/`ood` entry")
    return result


def check_same_scenes(results: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ConfigError unless every evaluation scored the same split, number of scenes, image
    size and target views (the comparison is only fair on the same test scenes)."""
    (first, reference), *others = results.items()
    for name, other in others:
        for key in ("split", "num_scenes", "image_size"):
            if key in reference and key in other and reference[key] != other[key]:
                raise ConfigError(
                    f"the evaluations of {first!r} and {name!r} differ in {key} "
                    f"({reference[key]!r} vs {other[key]!r}): compare models on the same test "
                    "scenes (same --split and --max-scenes, or evaluations made with them)"
                )
        lists_a, lists_b = reference.get("view_lists", {}), other.get("view_lists", {})
        for key in ("id_targets", "ood_targets"):
            if key in lists_a and key in lists_b and lists_a[key] != lists_b[key]:
                raise ConfigError(
                    f"the evaluations of {first!r} and {name!r} scored different {key} "
                    f"({lists_a[key]} vs {lists_b[key]}): evaluate both with the same --context "
                    "sizes (the ID targets start after the largest K)"
                )


def scenes_of(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The result header's description of the scored scenes, taken from an evaluation."""
    fields = ("dataset", "split", "num_scenes", "image_size")
    return {
        **{key: evaluation.get(key) for key in fields},
        "view_lists": evaluation.get("view_lists", {}),
    }


def run_directory_of(run: str | None, result: Mapping[str, Any] | None) -> Path | None:
    """The run directory behind a model: ``run`` if given, else the ``run`` an eval JSON names
    when that directory (with its config.json) is here; None if neither."""
    candidate = run if run is not None else (result or {}).get("run")
    if not candidate:
        return None
    path = Path(candidate)
    return path if (path / "config.json").is_file() else None


def evaluate_runs(
    args: TrainedRunsArgs,
    context_sizes: tuple[int, ...],
    inputs: Mapping[str, RunInput],
    check: Callable[[str, dict[str, Any]], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each named run's evaluation at ``context_sizes`` (NaN as None): its earlier eval JSON
    (checked to be of its run when both are given) or the run evaluated here like ``nerfvae eval``
    and saved as ``OUT/eval_NAME.json``; ``check(name, evaluation)`` runs after each. Also, by
    name, where each came from (``checkpoint_step``, ``eval_json``, ``evaluated_here``).
    ConfigError when one lacks a K, is of another run, or they scored different scenes/targets."""
    from nerfvae.evaluation.evaluate import evaluate_run, optional_mean_training_image
    from nerfvae.evaluation.report import nan_to_null
    from nerfvae.training.loading import load_trained_model

    dataset = train_mean = None  # loaded once, for the first run evaluated here
    evaluations, sources = {}, {}
    for name, (run, eval_json, run_option, json_option) in inputs.items():
        if eval_json is not None:
            result = read_eval_json(eval_json, json_option)
            source, path = option_text(json_option, eval_json), Path(eval_json)
            named = result.get("run")
            if run is not None and named and Path(named).is_dir() and Path(run).is_dir():
                # a path that does not exist here (relative to another directory) is not checked
                if Path(named).resolve() != Path(run).resolve():
                    raise ConfigError(f"{source} is the evaluation of run {named}, not of {run}")
        else:
            if args.data is None:
                raise ConfigError(
                    f"--data is needed to evaluate {option_text(run_option, str(run))} (or give "
                    "its previous `nerfvae eval` output with the matching --eval-json option)"
                )
            loaded = load_trained_model(str(run))
            if dataset is None:
                dataset = load_dataset(args.data, args.split)
                train_mean = optional_mean_training_image(args.data)
            options = dict(data=args.data, split=args.split, context_sizes=context_sizes)
            options.update(max_scenes=args.max_scenes, scenes_per_batch=args.scenes_per_batch)
            options.update(mean_train_image=train_mean, seed=args.seed)
            result = nan_to_null(evaluate_run(loaded, dataset, run=str(run), **options))
            source = f"the evaluation of {option_text(run_option, str(run))}"
            path = Path(args.out) / f"eval_{name}.json"
            write_json(result, path)
        missing = [k for k in context_sizes if str(k) not in result["results"]]
        if missing:
            have = ",".join(sorted(result["results"], key=lambda k: int(k) if k.isdigit() else 0))
            raise ConfigError(
                f"{source} has context sizes K={have} but --context asks for "
                f"{','.join(map(str, missing))}: evaluate again with `nerfvae eval --context ...` "
                "or drop those sizes"
            )
        if check is not None:
            check(name, result)
        evaluations[name] = result
        sources[name] = {
            "checkpoint_step": result.get("checkpoint_step"),
            "eval_json": str(path),
            "evaluated_here": eval_json is None,
        }
    check_same_scenes(evaluations)
    return evaluations, sources
