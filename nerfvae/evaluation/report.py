"""Write evaluation results as JSON, a markdown table and a PSNR-vs-K figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nerfvae.evaluation import figures
from nerfvae.evaluation import markdown as md

COLUMNS = (
    ("psnr", "PSNR"),
    ("object_psnr", "object PSNR"),
    ("ssim", "SSIM"),
    ("depth_mae", "depth MAE"),
    ("surface_depth_mae", "surface depth MAE"),
    ("opacity", "opacity"),
    ("baseline_mean_train_psnr", "mean-train-image PSNR"),
    ("baseline_mean_context_psnr", "mean-context-colour PSNR"),
    ("baseline_mean_train_object_psnr", "mean-train-image object PSNR"),
    ("nelbo_bits_per_dim", "−ELBO bits/dim"),
)


def markdown_table(result: dict[str, Any]) -> str:
    """Per K and kind of target, the metrics of :data:`COLUMNS` an evaluation has (3 decimals)."""
    present = [
        (key, title)
        for key, title in COLUMNS
        if any(key in entry for per_k in result["results"].values() for entry in per_k.values())
    ]
    rows = []
    for k in sorted(result["results"], key=int):
        for kind in md.KINDS:
            if (entry := result["results"][k].get(kind)) is not None:
                cells = [md.format_number(entry.get(key), 3) for key, _ in present]
                rows.append([k, kind.upper(), *cells, entry["num_views"]])
    return "\n".join(md.table(["K", "cameras", *(title for _, title in present), "views"], rows))


def psnr_figure(result: dict[str, Any], path: Path) -> None:
    """PSNR against K (whole image, object pixels), ID and OOD, beside the mean training image."""
    ks = sorted(result["results"], key=int)
    panels = (("psnr", "whole image"), ("object_psnr", "object pixels"))
    baselines = {
        "psnr": "baseline_mean_train_psnr",
        "object_psnr": "baseline_mean_train_object_psnr",
    }
    with figures.figure_file(path, 2, (9, 3.5)) as (_, axes):
        for axis, (metric, title) in zip(axes, panels):
            for kind, colour in (("id", "tab:blue"), ("ood", "tab:orange")):
                entries = [(int(k), result["results"][k].get(kind)) for k in ks]
                for key, style, alpha, name in (
                    (metric, "o-", 1.0, f"{result.get('model', 'model')} {kind.upper()}"),
                    (baselines[metric], "x--", 0.6, f"mean train image {kind.upper()}"),
                ):
                    points = [
                        (k, value)
                        for k, entry in entries
                        if entry is not None
                        and (value := md.finite_or_none(entry.get(key))) is not None
                    ]
                    figures.plot_line(axis, points, style, color=colour, alpha=alpha, label=name)
            axis.set_xticks([int(k) for k in ks])
            axis.set(xlabel="context views K", ylabel="PSNR (dB)", title=title)
            axis.grid(alpha=0.3)
        axes[0].legend(fontsize=7)


def nan_to_null(value: Any) -> Any:
    """NaN (a metric with no inputs, e.g. depth of a model without depth) -> JSON null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: nan_to_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_to_null(v) for v in value]
    return value


def inference_line(result: dict[str, Any]) -> str:
    """How the posteriors were inferred, as a markdown paragraph (empty for results from before
    refinement existed, which all used the encoder alone)."""
    refinement = result.get("refinement")
    if refinement is None:
        return ""
    prior = ""
    if result.get("elbo_prior") == "learned":
        prior = (
            " −ELBO with the run's learned prior in place of N(0, I): KL term log q(z) + the "
            "prior's bound on −log p(z), one posterior sample."
        )
    if refinement["steps"] == 0:
        return f"Posterior: the encoder's q(z | context), no test-time refinement.{prior}\n\n"
    return (
        f"Posterior: the encoder's q(z | context), then {refinement['steps']} Adam steps on the "
        f"context views' ELBO ({refinement['rays_per_scene']} rays per scene and step, learning "
        f"rate {refinement['learning_rate']}).{prior}\n\n"
    )


def write_report(result: dict[str, Any], json_path: Path) -> tuple[Path, Path, Path]:
    """Write ``json_path`` and, beside it, ``<stem>.md`` and ``<stem>_psnr_vs_k.png``."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(nan_to_null(result), indent=2, allow_nan=False))
    table_path = json_path.with_suffix(".md")
    header = f"# Evaluation: {result.get('run', '')} on {result.get('dataset', '')} ({result.get('split', '')})\n\n"
    table_path.write_text(header + inference_line(result) + markdown_table(result) + "\n")
    figure_path = json_path.with_name(json_path.stem + "_psnr_vs_k.png")
    psnr_figure(result, figure_path)
    return json_path, table_path, figure_path
