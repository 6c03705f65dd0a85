"""``nerfvae experiment ablation``: trained runs (e.g. concat, AIN, attention) compared on the same
test scenes by parameters, training budget, negative ELBO, PSNR at one K and validation curves. The
paper compares conditioning at matched parameter count: runs >10% above the smallest are flagged.
Its claim, attention beats concat and AIN, is read as the attention run − each concat / AIN run,
paired per scene, on PSNR and −ELBO bits/dim, with 95% bootstrap intervals over scenes
(:mod:`nerfvae.experiments.claims`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerfvae.errors import ConfigError
from nerfvae.evaluation import figures
from nerfvae.evaluation import markdown as md
from nerfvae.experiments import claims, common, trained_runs
from nerfvae.experiments.provenance import conditioning_of, run_budget

DESCRIPTION = "conditioning ablation: parameters, budget, nELBO and PSNR of several runs"

MATCHED_TOLERANCE = 0.10
"""Parameter counts more than this fraction above the smallest run's are flagged."""
KEYS = ("psnr", "object_psnr")
SCENE_METRICS = ("psnr", "object_psnr", "ssim")
"""Metrics of each run kept per scene (with −ELBO bits/dim of the ID targets)."""
CLAIM = "attention conditioning beats concat and AIN"
REFERENCE = "attention"
"""The conditioning whose run every concat and AIN run is compared with."""
COMPARED = ("concat", "ain")
CLAIM_METRICS = (
    ("psnr", "id", "PSNR ID (dB)", "greater", 2),
    ("psnr", "ood", "PSNR OOD (dB)", "greater", 2),
    ("nelbo_bits_per_dim", "id", "−ELBO bits/dim", "less", 3),
)
"""The claim's metrics: (key, kind of target, title, claimed direction of attention − other,
digits)."""
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
    keys = [f"{prefix}_{key}" for prefix in md.TRIVIAL_PREDICTORS.values() for key in KEYS]
    return {kind: md.finite_values(per_k.get(kind), keys) for kind in md.KINDS}


def claim_pairs(entries: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping, Mapping]]:
    """``(attention run, other run)`` for every run with concat or AIN conditioning, in --runs
    order: the run named ``attention`` (else the first with attention conditioning) against each;
    none without an attention run."""
    attention = [entry for entry in entries if entry.get("conditioning") == REFERENCE]
    if not attention:
        return []
    reference = next((entry for entry in attention if entry["name"] == REFERENCE), attention[0])
    return [(reference, entry) for entry in entries if entry.get("conditioning") in COMPARED]


def _keys(key: str, kind: str) -> tuple[str, ...]:
    """Where a run's ``key`` on ``kind`` targets is in its metrics, per-scene values and intervals
    (−ELBO: only on the ID targets, at the top)."""
    return (key,) if key == "nelbo_bits_per_dim" else (kind, key)


def _mean_and_scenes(entry: Mapping[str, Any], key: str, kind: str) -> tuple[Any, Any]:
    """A run's mean of ``key`` on ``kind`` targets and its per-scene values (None without)."""
    return md.at(entry["metrics"], *_keys(key, kind)), md.at(entry, "per_scene", *_keys(key, kind))


def compare_runs(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The paper's claim (3): per :func:`claim_pairs` pair and :data:`CLAIM_METRICS` metric the
    paired difference attention − other per scene (PSNR "greater", −ELBO "less"); rows with
    ``reference``, ``other``, ``metric``, ``kind``, ``title``, ``digits`` and the claim record
    (no interval, verdict not shown, where the runs have no per-scene values)."""
    rows = []
    for reference, other in claim_pairs(entries):
        for key, kind, title, direction, digits in CLAIM_METRICS:
            (first_mean, first), (second_mean, second) = (
                _mean_and_scenes(entry, key, kind) for entry in (reference, other)
            )
            record = claims.claim(first, second, direction, md.difference(first_mean, second_mean))
            rows.append(
                {
                    "reference": reference["name"],
                    "other": other["name"],
                    "metric": key,
                    "kind": kind,
                    "title": title,
                    "digits": digits,
                    **record,
                }
            )
    return rows


def comparisons_of(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report's recorded comparisons, or (an older ablation.json) those of its runs."""
    stored = report.get("comparisons")
    return list(stored) if isinstance(stored, list) else compare_runs(report["runs"])


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
        for row in comparisons_of(report)
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


def _cells(entry: Mapping[str, Any]) -> list[str]:
    """One run's row of ablation.md (means with their intervals where the JSON has them)."""
    parameters, final, metrics = entry["parameters"], entry["validation"]["final"], entry["metrics"]
    scene_function = parameters["scene_function"]
    return [
        entry["name"],
        entry.get("conditioning") or entry.get("model") or md.MISSING,
        entry.get("latent_layout") or md.MISSING,
        f"{parameters['total']:,}",
        f"{scene_function:,}" if scene_function else md.MISSING,
        f"⚠ {entry['parameter_flag']}" if entry["parameter_flag"] else "✓",
        str(entry.get("steps", md.MISSING)),
        md.format_number(entry.get("wall_minutes"), 1),
        claims.row_cell(entry, "nelbo_bits_per_dim", digits=3, values=metrics),
        *(claims.row_cell(entry, kind, key, values=metrics) for kind in md.KINDS for key in KEYS),
        md.MISSING
        if not final
        else f"{md.format_number(final.get('psnr_id'))} / "
        f"{md.format_number(final.get('psnr_ood'))} ({int(final['step'])})",
    ]


def markdown_report(report: Mapping[str, Any]) -> list[str]:
    """ablation.md: the table, the figure and the inputs."""
    k = report["context"]

    def trivial(name: str) -> str:
        return "; ".join(
            f"{md.format_number(report['trivial'][kind][f'baseline_mean_{name}_psnr'])} / "
            f"{md.format_number(report['trivial'][kind][f'baseline_mean_{name}_object_psnr'])}"
            for kind in md.KINDS
        )

    matched = (
        f"Parameter counts are matched within {MATCHED_TOLERANCE:.0%}."
        if report["parameters_matched"]
        else f"**Parameter counts are not matched**: the largest run has "
        f"{md.format_number(report['max_parameter_ratio'])}× the smallest's parameters; "
        "differences between these runs may come from model size, not conditioning."
    )
    runs = {entry["name"]: entry for entry in report["runs"]}

    def run_cell(name: str, row: Mapping[str, Any]) -> str:
        entry, keys = runs.get(name) or {}, _keys(row["metric"], row["kind"])
        return claims.row_cell(entry, *keys, digits=row["digits"], values=entry.get("metrics"))

    comparisons = [
        [
            f"{row['reference']} − {row['other']}",
            row["title"],
            run_cell(row["reference"], row),
            run_cell(row["other"], row),
            *claims.claim_cells(row, row["digits"]),
        ]
        for row in comparisons_of(report)
    ]
    claim_block: str | list[str] = (
        md.table(
            "comparison | metric | attention run | other run | difference (paired) | verdict",
            comparisons,
        )
        if comparisons
        else "No run with attention conditioning beside one with concat or AIN: no claim to read."
    )
    return md.document(
        "Conditioning ablation",
        f"{md.scenes_sentence(report, f'the first {k} ID views (K = {k})')} −ELBO "
        "on the ID targets. Steps and minutes: each run's metrics.csv (training time, pauses "
        f"between resumed parts excluded). ⚠: parameter count more than {MATCHED_TOLERANCE:.0%} "
        "above the smallest run's (the paper compares at matched parameter count).",
        md.table(
            "run | conditioning | latent | parameters | scene function | matched | steps | "
            "minutes | −ELBO bits/dim | PSNR ID | object PSNR ID | PSNR OOD | object PSNR OOD | "
            "final val. PSNR ID / OOD (step)",
            map(_cells, report["runs"]),
        ),
        matched,
        f"{claims.READING} The claim: attention − concat and attention − AIN above zero in PSNR, "
        "below zero in −ELBO bits/dim.",
        claim_block,
        "Trivial predictors on the same targets (PSNR / object PSNR, ID; OOD): mean training "
        f"image {trivial('train')} dB; mean context colour {trivial('context')} dB.",
        "![ablation](ablation.png)",
        trained_runs.inputs_section((entry["name"], entry) for entry in report["runs"]),
    )


def ablation_figure(report: Mapping[str, Any], path: Path) -> None:
    """PSNR bars (ID/OOD, whole image and object pixels) with the mean-training-image PSNR as
    lines, −ELBO bars, and validation PSNR against minutes of training (the budget the runs are
    compared at; pauses between resumed parts left out) where any run logged validation."""
    entries = report["runs"]
    has_curves = any(entry["validation"]["history"] for entry in entries)
    panels = 3 if has_curves else 2
    names = [entry["name"] for entry in entries]
    colours = {"id": {"psnr": "tab:blue", "object_psnr": "tab:green"}}
    colours["ood"] = {"psnr": "tab:orange", "object_psnr": "tab:red"}
    bars = [
        (f"{title}{kind.upper()}", [entry["metrics"][kind][key] for entry in entries], colour)
        for key, title in (("psnr", "PSNR "), ("object_psnr", "object PSNR "))
        for kind, colour in ((kind, colours[kind][key]) for kind in md.KINDS)
    ]
    with figures.figure_file(path, panels, (5.5 * panels, 4)) as (_, axes):
        drawn = figures.grouped_bars(axes[0], names, bars)
        for kind, style in (("id", "-"), ("ood", "--")):
            baseline = report["trivial"][kind]["baseline_mean_train_psnr"]
            if baseline is not None:
                drawn.append(baseline)
                label = f"mean train image {kind.upper()}"
                axes[0].axhline(baseline, color="grey", linestyle=style, linewidth=1, label=label)
        figures.zoom_to(axes[0], drawn)
        axes[0].set(ylabel="dB", title=f"PSNR, K = {report['context']}")
        axes[0].legend(fontsize=6)
        nelbo = [entry["metrics"]["nelbo_bits_per_dim"] for entry in entries]
        figures.grouped_bars(axes[1], names, [(None, nelbo, "tab:purple")], width=0.6)
        axes[1].set(ylabel="bits/dim (lower is better)", title="−ELBO, ID targets")
        if has_curves:
            for index, entry in enumerate(entries):
                for key, style in (("psnr_id", "o-"), ("psnr_ood", "s--")):
                    history = entry["validation"]["history"]
                    points = [
                        (row["minutes"], row[key])
                        for row in history
                        if {key, "minutes"} <= set(row)
                    ]
                    label = f"{entry['name']} {key.split('_')[1].upper()}"
                    figures.plot_line(axes[2], points, style, color=f"C{index}", label=label)
            axes[2].set(xlabel="minutes of training", ylabel="validation PSNR (dB)")
            axes[2].set_title("validation PSNR (validation.csv)")
            axes[2].legend(fontsize=6)
            axes[2].grid(alpha=0.3)


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
        comparisons=compare_runs(entries),
    )
    report["claims"] = ablation_claims(report)
    report["headline"] = headline_rows(report)
    figure = {"ablation.png": ablation_figure}
    return common.finish(prog, argv, args.out, report, markdown_report, figure, runs.values())
