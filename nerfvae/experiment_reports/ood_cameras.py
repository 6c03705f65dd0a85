"""The camera experiment's report: cameras.md and cameras.png, drawn from the saved result
(:mod:`nerfvae.experiments.ood_cameras` computes it), and the reading of its claim."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nerfvae.evaluation import figures
from nerfvae.evaluation import markdown as md
from nerfvae.experiment_reports import claims
from nerfvae.experiment_reports.provenance import inputs_section

# trivial predictor -> (label, short label for the figure)
TRIVIAL = {
    "mean_train_image": ("mean training image", "mean\ntrain img"),
    "mean_context_colour": ("mean context colour", "mean\ncontext"),
}
METRICS = (("psnr", "PSNR"), ("object_psnr", "object PSNR"), ("ssim", "SSIM"))


def _label(report: Mapping[str, Any], name: str, short: bool = False) -> str:
    models = report["models"]
    return models[name]["label"] if name in models else TRIVIAL[name][1 if short else 0]


def markdown_report(report: Mapping[str, Any]) -> list[str]:
    """cameras.md: the tables, the figure and the inputs."""
    names = [*report["models"], *TRIVIAL]

    def cell(entry: Mapping[str, Any], part: str, key: str) -> str:
        return claims.row_cell(entry, part, key, digits=3 if key == "ssim" else 2)

    rows = [
        [k, _label(report, name)]
        + [cell(row[name], part, key) for key, _ in METRICS for part in ("id", "ood", "drop")]
        for k, row in report["results"].items()
        for name in names
    ]
    drops = [
        [
            *[k, title, cell(row["nerfvae"], "drop", key), cell(row["gqn"], "drop", key)],
            *claims.claim_cells(drop_difference(report, k, key), 3 if key == "ssim" else 2),
        ]
        for k, row in report["results"].items()
        for key, title in METRICS
        if "gqn" in row and "nerfvae" in row
    ]
    margins = [
        [k, model["label"]]
        + [
            md.format_number(row[name]["margin_over_mean_train_image"][kind][key])
            for key in ("psnr", "object_psnr")
            for kind in md.KINDS
        ]
        for k, row in report["results"].items()
        for name, model in report["models"].items()
    ]
    titles = ["K", "model", *(f"{t} {part}" for _, t in METRICS for part in ("ID", "OOD", "drop"))]
    return md.document(
        "Camera generalisation: NeRF-VAE vs GQN-style baseline",
        f"{md.scenes_sentence(report)} Drop = ID − OOD (positive: worse on out-of-distribution "
        f"cameras), paired per scene. {md.TRIVIAL_SENTENCE} {claims.READING}",
        md.table(titles, rows),
        "The claim: the GQN-style model drops more than NeRF-VAE from ID to OOD cameras (GQN drop "
        "− NeRF-VAE drop, paired per scene, above zero); read at a K only where both models' ID "
        f"PSNR is at least {report.get('min_margin_db', 0):g} dB above the mean context colour:",
        md.table(
            "K | metric | NeRF-VAE drop | GQN drop | GQN drop − NeRF-VAE drop (paired) | verdict",
            drops,
        ),
        "PSNR above the mean training image on the same views (model − trivial predictor; "
        "whether OOD views are easier or harder in themselves cancels out):",
        md.table(
            "K | model | PSNR margin ID | PSNR margin OOD | object PSNR margin ID | "
            "object PSNR margin OOD",
            margins,
        ),
        "![cameras](cameras.png)",
        *ood_views_section(report),
        inputs_section((m["label"], m) for m in report["models"].values()),
    )


def ood_views_section(report: Mapping[str, Any]) -> list[str]:
    """The caption and link of ood_views.png, when the report drew it."""
    shown = report.get("ood_views_figure")
    if not shown:
        return []
    rows = ", ".join(shown["rows_per_scene"])
    return [
        f"The same OOD views (columns: target views {shown['views']}) of test scenes "
        f"{shown['scenes']}, per scene a row each of: {rows}; both models from context views "
        f"0..{shown['context_size'] - 1} (K = {shown['context_size']}), encoder alone, "
        "posterior mean:",
        "![OOD views](ood_views.png)",
    ]


def cameras_figure(report: Mapping[str, Any], path: Path) -> None:
    """Per metric a panel of grouped bars: per K each model and trivial predictor, ID and OOD."""
    with figures.figure_file(path, len(METRICS), (6 * len(METRICS), 4.2)) as (figure, axes):
        for axis, (key, title) in zip(axes, METRICS):
            labels, values, group_ends = [], {"id": [], "ood": []}, []
            for k, row in report["results"].items():
                group_ends += [len(labels) - 0.5] if labels else []
                for name in [*report["models"], *TRIVIAL]:
                    if key in row[name]["id"]:  # the trivial predictors have no SSIM
                        labels.append(f"{_label(report, name, short=True)}\nK={k}")
                        for kind in md.KINDS:
                            values[kind].append(row[name][kind][key])
            bars = [("ID", values["id"], "tab:blue"), ("OOD", values["ood"], "tab:orange")]
            drawn = figures.grouped_bars(axis, labels, bars, fontsize=7)
            for end in group_ends:  # separates the context sizes
                axis.axvline(end, color="grey", linewidth=0.8)
            axis.set(title=title, ylabel="SSIM" if key == "ssim" else "dB")
            if key != "ssim":
                figures.zoom_to(axis, drawn)
        axes[0].legend(fontsize=8)
        figure.suptitle(f"Camera generalisation ({report.get('num_scenes')} test scenes)")


def drop_difference(report: Mapping[str, Any], k: str, metric: str) -> dict[str, Any]:
    """The claim GQN drop − NeRF-VAE drop at ``k`` on ``metric``: as recorded, or for an older
    cameras.json the difference of the mean drops without an interval (verdict not shown)."""
    stored = md.at(report, "drop_difference", k, metric)
    drops = (md.at(report["results"][k], name, "drop", metric) for name in ("gqn", "nerfvae"))
    return claims.stored_or_means(stored, *drops, "greater")
