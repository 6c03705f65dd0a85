"""The conditioning ablation's report: ablation.md and ablation.png, drawn from the saved result
(:mod:`nerfvae.experiments.ablation` computes it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nerfvae.evaluation import figures
from nerfvae.evaluation import markdown as md
from nerfvae.experiment_reports import claims
from nerfvae.experiment_reports.provenance import inputs_section

KEYS = ("psnr", "object_psnr")
"""The PSNRs reported per run and kind of target view."""

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


def _keys(key: str, kind: str) -> tuple[str, ...]:
    """Where a run's ``key`` on ``kind`` targets is in its metrics, per-scene values and intervals
    (−ELBO: only on the ID targets, at the top)."""
    return (key,) if key == "nelbo_bits_per_dim" else (kind, key)


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

    tolerance = report["matched_tolerance"]
    # name what is over the tolerance: the totals can be level while one scene function is not
    flags = "; ".join(
        f"{entry['name']} {entry['parameter_flag']}"
        for entry in report["runs"]
        if entry.get("parameter_flag")
    )
    matched = (
        f"Parameter counts are matched within {tolerance:.0%}."
        if report["parameters_matched"]
        else f"**Parameter counts are not matched** within {tolerance:.0%} ({flags}); the largest "
        f"run has {md.format_number(report['max_parameter_ratio'])}× the smallest's parameters "
        "in all. Differences between these runs may come from model size, not conditioning."
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
        f"between resumed parts excluded). ⚠: parameter count more than {tolerance:.0%} "
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
        inputs_section((entry["name"], entry) for entry in report["runs"]),
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


def claim_pairs(entries: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping, Mapping]]:
    """``(attention run, other run)`` for every run with concat or AIN conditioning, in --runs
    order: the run named ``attention`` (else the first with attention conditioning) against each;
    none without an attention run."""
    attention = [entry for entry in entries if entry.get("conditioning") == REFERENCE]
    if not attention:
        return []
    reference = next((entry for entry in attention if entry["name"] == REFERENCE), attention[0])
    return [(reference, entry) for entry in entries if entry.get("conditioning") in COMPARED]


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
