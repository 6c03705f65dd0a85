"""The skeleton every experiment shares: common options, one setup (threads, model, dataset, scene
limit), one result header, one reader of saved results and one writer of the outputs. An experiment
module keeps its own options and computation; its markdown and figures, drawn from the saved
result, and the intervals and verdicts of its claims live in :mod:`nerfvae.experiment_reports`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tyro

from nerfvae.errors import ConfigError, DataError
from nerfvae.evaluation import markdown as md
from nerfvae.evaluation.views import check_max_scenes
from nerfvae.experiment_reports.provenance import experiment_provenance, provenance_section
from nerfvae.precision import ThreadsOption, use_threads

SCHEMA_VERSION = 1
"""Version of the experiment JSONs this code writes and reads back."""

Args = TypeVar("Args")


@dataclass(kw_only=True)
class ExperimentArgs:
    """Options of every experiment (each experiment sets its own default --out)."""

    split: str = "test"
    """Dataset split to use."""
    out: str
    """Output directory of the experiment's JSON, markdown and figures."""
    machine: tyro.conf.OmitArgPrefixes[ThreadsOption] = field(default_factory=ThreadsOption)
    """How the experiment uses this machine."""


@dataclass(kw_only=True)
class ScenesArgs(ExperimentArgs):
    """Options of the experiments that score the first scenes of a split."""

    max_scenes: int | None = 20
    """Use the first N scenes of the split (fewer if it has fewer)."""


@dataclass(kw_only=True)
class RunArgs(ExperimentArgs):
    """Options of the experiments that study one trained run on a dataset."""

    run: str
    """Run directory (from `nerfvae train`)."""
    data: str
    """Dataset directory."""
    checkpoint: str | None = None
    """Checkpoint JSON to load (default: the run's newest)."""
    seed: int = 0
    """Seed of the posterior and prior samples."""


def parse_args(args_type: type[Args], argv: list[str], prog: str) -> Args:
    """The experiment's options from ``argv``: ``--max-scenes`` checked (ConfigError below 1) and
    torch's thread count set (``--threads``)."""
    args = tyro.cli(args_type, args=argv, prog=prog)
    if isinstance(args, ScenesArgs):
        check_max_scenes(args.max_scenes)
    use_threads(args.machine.threads)
    return args


def load_dataset(data: str | Path, split: str):
    """The split's :class:`nerfvae.data.loader.MultiSceneDataset` (DataError when it has none)."""
    from nerfvae.data.loader import MultiSceneDataset

    dataset = MultiSceneDataset(data, split)
    if len(dataset) == 0:
        raise DataError(f"{data}: split {split!r} has no scenes")
    return dataset


def load_run(run: str | Path, checkpoint: str | None = None):
    """``(model, config, checkpoint record)`` of a run directory given as ``--run``."""
    from nerfvae.training.loading import load_trained_model

    if not Path(run).is_dir():
        raise ConfigError(f"--run {run}: no such run directory")
    return load_trained_model(run, checkpoint)


def setup_run(args: RunArgs) -> tuple[Any, dict[str, Any], Any]:
    """``(model, checkpoint record, dataset)`` of an experiment on one trained run: ``--run``
    (``--checkpoint``) and the ``--split`` of ``--data``."""
    model, _, record = load_run(args.run, args.checkpoint)
    return model, record, load_dataset(args.data, args.split)


def run_fields(args: RunArgs, record: Mapping[str, Any]) -> dict[str, Any]:
    """The result header's entries of an experiment on one trained run: the run, its checkpoint
    step, the dataset and the split."""
    return dict(
        run=str(args.run),
        checkpoint_step=record.get("step"),
        dataset=str(args.data),
        split=args.split,
    )


def result_header(experiment: str, description: str | None = None, **fields: Any) -> dict:
    """The first entries of every experiment's JSON: its name, the schema version, what it
    measures and ``fields`` (dataset, split, scenes, run, ...), in that order."""
    header: dict[str, Any] = {"experiment": experiment, "schema_version": SCHEMA_VERSION}
    if description is not None:
        header["description"] = description
    return {**header, **fields}


def load_json(path: str | Path, given: str, error: type[Exception] = ConfigError) -> dict:
    """A saved JSON object given as ``given`` (e.g. ``--views-json PATH``), reused instead of
    computing again: ConfigError when the file does not exist or holds another ``schema_version``
    than this code reads, ``error`` when it is not a JSON object."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{given}: no such file")
    try:
        loaded = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise error(f"{given}: not a JSON file ({problem})") from None
    if not isinstance(loaded, dict):
        raise error(f"{given}: expected a JSON object")
    version = loaded.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"{given}: schema_version {version!r}, but this nerfvae reads version "
            f"{SCHEMA_VERSION}; rerun the experiment that wrote {path.name}"
        )
    return loaded


def write_json(data: Mapping[str, Any], path: Path) -> None:
    """Strict JSON (NaN written as null), indented, with a final newline; makes the folder."""
    from nerfvae.evaluation.report import nan_to_null

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nan_to_null(dict(data)), indent=2, allow_nan=False) + "\n")


def finish(
    prog: str, argv: list[str], out: str | Path, result: dict[str, Any],
    markdown: Callable[[dict[str, Any]], list[str]],
    figures: Mapping[str, Callable[[dict[str, Any], Path], Any]] | None = None,
    runs: Iterable[str | Path] = (), **provenance: Any,
) -> int:  # fmt: skip
    """Record the provenance of ``result`` (command, commit, hardware, the ``runs``' training
    budgets, ``provenance`` extras), then write under ``out`` ``NAME.json`` (NAME: the result's
    experiment), each figure (file name -> drawing function given the result and the figure's
    path) and ``NAME.md`` (the lines ``markdown`` makes of the saved JSON, then the provenance
    section); print the markdown and the paths."""
    result["provenance"] = experiment_provenance(prog, argv, runs, **provenance)
    out, name = Path(out), result["experiment"]
    paths = [out / f"{name}.json"]
    write_json(result, paths[0])
    for file_name, draw in (figures or {}).items():
        paths.append(out / file_name)
        draw(result, paths[-1])
    saved = json.loads(paths[0].read_text())
    text = "\n".join([*markdown(saved), "", *provenance_section(saved["provenance"]), ""])
    paths.append(out / f"{name}.md")
    paths[-1].write_text(text)
    print(text)
    print("wrote " + ", ".join(str(path) for path in paths))
    return 0


def headline_row(
    label: str, psnr: Any, object_psnr: Any, trivial: Mapping[str, Any], note: str | None = None
) -> dict[str, Any]:
    """A row of the results summary's headline table: a model's PSNRs beside the trivial
    predictors' on the same views (``trivial``: ``mean_train_image`` and ``mean_context_colour``
    PSNR), and an optional note."""
    row = {"label": label, "psnr": psnr, "object_psnr": object_psnr}
    row.update({f"{key}_psnr": trivial[name] for name, key in md.TRIVIAL_PREDICTORS.items()})
    return row if note is None else {**row, "note": note}
