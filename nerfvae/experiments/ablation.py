"""``nerfvae experiment ablation``: trained runs (e.g. concat, AIN, attention) compared on the same
test scenes by parameters, training budget, negative ELBO, PSNR at one K and validation curves. The
paper compares conditioning at matched parameter count: runs >10% above the smallest are flagged.
Its claim, attention beats concat and AIN, is read as the attention run − each concat / AIN run,
paired per scene, on PSNR and −ELBO bits/dim, with 95% bootstrap intervals over scenes
(:mod:`nerfvae.experiment_reports.claims`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerfvae.errors import ConfigError
from nerfvae.evaluation import markdown as md
from nerfvae.experiment_reports import ablation as ablation_report
from nerfvae.experiment_reports import claims
from nerfvae.experiment_reports.provenance import conditioning_of, run_budget
from nerfvae.experiments import common, trained_runs

DESCRIPTION = "conditioning ablation: parameters, budget, nELBO and PSNR of several runs"

MATCHED_TOLERANCE = 0.10
"""Parameter counts more than this fraction above the smallest run's are flagged."""
SCENE_METRICS = ("psnr", "object_psnr", "ssim")
"""Metrics of each run kept per scene (with −ELBO bits/dim of the ID targets)."""
CLAIM = "attention conditioning beats concat and AIN"
VALIDATION_KEYS = ("psnr_id", "object_psnr_id", "psnr_ood", "object_psnr_ood")


@dataclass(kw_only=True)
class AblationArgs(trained_runs.TrainedRunsArgs):
    """Conditioning ablation: compare trained runs by parameter count, training budget, negative
    ELBO (bits/dim) and PSNR on ID and OOD views of the same test scenes at one K, and their
    validation curves. Writes ablation.json, .png, .md and the raw evaluations (for --eval-json)."""

    runs: tuple[str, ...] = ()
    """Runs to compare as NAME=RUNDIR (e.g. `concat=runs/small-concat attention=runs/small-attention`)."""
    context: int = 3
    """Number of context views K (views 0..K-1 of each scene; docs/evaluation.md)."""
    eval_json: tuple[str, ...] = ()
    """Previous `nerfvae eval` JSONs as NAME=EVAL.json (NAME one of --runs, e.g. eval_NAME.json
    of an earlier run of this experiment), used instead of evaluating that run again."""
    out: str = "docs/results/ablation"


def parse_named(items: Sequence[str], option: str) -> dict[str, str]:
    """``NAME=PATH`` items -> {name: path}; ConfigError for a malformed or repeated name."""
    named: dict[str, str] = {}
    for item in items:
        name, separator, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not separator or not path:
            raise ConfigError(f"{option} takes NAME=PATH items, got {item!r}")
        if not trained_runs.NAME_PATTERN.match(name):
            raise ConfigError(
                f"{option} {item!r}: NAME must be letters, digits, '_', '.', '+' or '-' "
                "(it names output files)"
            )
        if name in named:
            raise ConfigError(f"{option}: {name!r} is given twice")
        named[name] = path
    return named


def parameter_counts(run: Path) -> dict[str, Any]:
    """Parameters of the model a run directory's config.json describes: ``total``,
    ``scene_function`` (None for a model without one, e.g. the GQN baseline) and ``by_module``
    (each top-level submodule)."""
    from nerfvae.models import RaySceneModel
    from nerfvae.training.loading import build_model
    from nerfvae.training.run_directory import RunDirectory

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    model = build_model(RunDirectory(run).load_config())
    scene_function = model.scene_function if isinstance(model, RaySceneModel) else None
    return {
        "total": count(model),
        "scene_function": count(scene_function) if scene_function is not None else None,
        "by_module": {name: count(module) for name, module in model.named_children()},
    }


def validation_history(run: Path) -> list[dict[str, float]]:
    """Rows of the run's validation.csv (step, psnr_id, ... and minutes of training up to it), or []."""
    from nerfvae.evaluation.curves import run_curves

    keys = ("step", "minutes", *VALIDATION_KEYS)
    rows = [row for row in run_curves(run)["validation"] if "step" in row]
    return [{key: value for key, value in row.items() if key in keys} for row in rows]


def flag_unmatched(entries: list[dict[str, Any]]) -> tuple[bool, float | None]:
    """Set each entry's ``parameter_ratio`` (total and scene function, to the smallest run's)
    and ``parameter_flag`` (text, or None when within MATCHED_TOLERANCE); returns whether all are
    matched and the largest total ratio."""
    ratios_by_key: dict[str, list[float | None]] = {}
    for key in ("total", "scene_function"):
        counts = [entry["parameters"][key] for entry in entries]
        known = [c for c in counts if c]
        smallest = min(known) if known else None
        ratios_by_key[key] = [count / smallest if count and smallest else None for count in counts]
    all_matched = True
    for index, entry in enumerate(entries):
        ratios = {key: ratios_by_key[key][index] for key in ratios_by_key}
        entry["parameter_ratio"] = ratios
        over = [
            f"{'total' if key == 'total' else 'scene function'} +{(ratio - 1) * 100:.0f}%"
            for key, ratio in ratios.items()
            if ratio is not None and ratio > 1 + MATCHED_TOLERANCE
        ]
        entry["parameter_flag"] = ", ".join(over) + " vs smallest" if over else None
        all_matched = all_matched and not over
    totals = [r for r in ratios_by_key["total"] if r is not None]
    return all_matched, (max(totals) if totals else None)


def run_entry(
    name: str, run: Path, result: Mapping[str, Any], k: int, source: Mapping[str, Any]
) -> dict[str, Any]:
    """One run's row of ablation.json (``source``: where its evaluation came from): its
    ``metrics``, with their ``per_scene`` values (None where the evaluation has none) and
    ``intervals`` over scenes."""
    config = json.loads((run / "config.json").read_text())
    per_k = result["results"][str(k)]
    nelbo = md.finite_or_none((per_k.get("id") or {}).get("nelbo_bits_per_dim"))
    metrics: dict[str, Any] = {"nelbo_bits_per_dim": nelbo}
    per_scene: dict[str, Any] = {
        "nelbo_bits_per_dim": claims.scene_values(result, k, "id", "nelbo_bits_per_dim")
    }
    for kind in md.KINDS:
        scored = per_k.get(kind) or {}
        metrics[kind] = md.finite_values(scored, SCENE_METRICS)
        metrics[kind]["num_views"] = scored.get("num_views")
        per_scene[kind] = {key: claims.scene_values(result, k, kind, key) for key in SCENE_METRICS}
    history = validation_history(run)
    nerfvae = config.get("model") == "nerfvae"
    return {
        "name": name,
        "run": str(run),
        "model": config.get("model"),
        "conditioning": conditioning_of(config),
        "latent_layout": md.at(config, "nerfvae", "latent", "layout") if nerfvae else None,
        **source,
        "parameters": parameter_counts(run),
        "metrics": metrics,
        "per_scene": per_scene,
        "intervals": claims.intervals_of(per_scene),
        "validation": {"final": history[-1] if history else None, "history": history},
    }


def trivial_predictors(result: Mapping[str, Any], k: int) -> dict[str, Any]:
    """The trivial predictors' PSNRs on the same targets (they depend only on the data)."""
    per_k = result["results"][str(k)]
    keys = [
        f"{prefix}_{key}"
        for prefix in md.TRIVIAL_PREDICTORS.values()
        for key in ablation_report.KEYS
    ]
    return {kind: md.finite_values(per_k.get(kind), keys) for kind in md.KINDS}


def ablation_claims(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The claim's rows for the results summary: one per comparison."""
    return [
        claims.claim_row(
            CLAIM,
            f"{row['reference']} − {row['other']}, K={report['context']}",
            row["title"],
            {key: row.get(key) for key in ("mean", "difference", "direction", "verdict")},
            row["digits"],
        )
        for row in ablation_report.comparisons_of(report)
    ]


def headline_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each run's ID PSNR (``psnr_interval``: its interval over scenes, None without per-scene
    values) beside the trivial predictors'."""
    ids = report["trivial"]["id"]
    trivial = {name: ids[f"{prefix}_psnr"] for name, prefix in md.TRIVIAL_PREDICTORS.items()}
    rows = []
    for entry in report["runs"]:
        nelbo = md.format_number(entry["metrics"]["nelbo_bits_per_dim"], 3)
        note = f"K={report['context']}, ID views; −ELBO {nelbo} bits/dim; {entry['parameters']['total']:,} parameters"
        note += f" (⚠ {entry['parameter_flag']})" if entry["parameter_flag"] else ""
        scored = entry["metrics"]["id"]
        row = common.headline_row(
            entry["name"], scored["psnr"], scored["object_psnr"], trivial, note
        )
        row["psnr_interval"] = md.at(entry, "intervals", "id", "psnr")
        rows.append(row)
    return rows


def run(argv: list[str], prog: str) -> int:
    args = common.parse_args(AblationArgs, argv, prog)
    runs = parse_named(args.runs, "--runs")
    if not runs:
        raise ConfigError("give the runs to compare: --runs NAME=RUNDIR [NAME=RUNDIR ...]")
    eval_jsons = parse_named(args.eval_json, "--eval-json")
    unknown = sorted(set(eval_jsons) - set(runs))
    if unknown:
        raise ConfigError(
            f"--eval-json names {', '.join(unknown)} not given in --runs ({', '.join(runs)})"
        )
    if args.context < 1:
        raise ConfigError(f"--context must be a positive number of views, got {args.context}")
    for name, run_dir in runs.items():
        if not (Path(run_dir) / "config.json").is_file():
            raise ConfigError(f"--runs {name}={run_dir}: not a run directory (no config.json)")
    inputs = {
        name: (run_dir, eval_jsons.get(name), f"--runs {name}=", f"--eval-json {name}=")
        for name, run_dir in runs.items()
    }
    evaluations, sources = trained_runs.evaluate_runs(args, (args.context,), inputs)
    entries = [
        run_entry(name, Path(runs[name]), result, args.context, sources[name])
        for name, result in evaluations.items()
    ]
    all_matched, largest_ratio = flag_unmatched(entries)
    for entry in entries:
        budget = run_budget(entry["run"])
        entry.update({key: budget.get(key) for key in ("steps", "wall_minutes", "device")})
    reference = evaluations[next(iter(runs))]
    report = common.result_header(
        "ablation",
        "parameter count, training budget, negative ELBO (bits/dim) and PSNR / object-pixel PSNR "
        "on ID and OOD targets of each run at one K, and their final validation PSNR",
        **trained_runs.scenes_of(reference),
        context=args.context,
        parameters_matched=all_matched,
        matched_tolerance=MATCHED_TOLERANCE,
        max_parameter_ratio=largest_ratio,
        runs=entries,
        trivial=trivial_predictors(reference, args.context),
        comparisons=ablation_report.compare_runs(entries),
    )
    report["claims"] = ablation_claims(report)
    report["headline"] = headline_rows(report)
    figure = {"ablation.png": ablation_report.ablation_figure}
    return common.finish(
        prog, argv, args.out, report, ablation_report.markdown_report, figure, runs.values()
    )
