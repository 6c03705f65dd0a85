"""Write evaluation results as JSON, a markdown table and a PSNR-vs-K figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if value != value else f"{value:.3f}"
    return str(value)


def markdown_table(result: dict[str, Any]) -> str:
    present = [
        (key, title)
        for key, title in COLUMNS
        if any(key in entry for per_k in result["results"].values() for entry in per_k.values())
    ]
    lines = [
        "| K | cameras | " + " | ".join(title for _, title in present) + " | views |",
        "|---|---|" + "---|" * (len(present) + 1),
    ]
    for k in sorted(result["results"], key=int):
        for kind in ("id", "ood"):
            entry = result["results"][k].get(kind)
            if entry is None:
                continue
            cells = [_format(entry.get(key)) for key, _ in present]
            lines.append(
                f"| {k} | {kind.upper()} | " + " | ".join(cells) + f" | {entry['num_views']} |"
            )
    return "\n".join(lines)


def psnr_figure(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(result["results"], key=int)
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=False)
    for axis, metric, title in (
        (axes[0], "psnr", "whole image"),
        (axes[1], "object_psnr", "object pixels"),
    ):
        for kind, colour in (("id", "tab:blue"), ("ood", "tab:orange")):
            points = [
                (int(k), result["results"][k][kind].get(metric))
                for k in ks
                if kind in result["results"][k]
            ]
            points = [(k, v) for k, v in points if v is not None and v == v]
            if points:
                label = f"{result.get('model', 'model')} {kind.upper()}"
                axis.plot(*zip(*points), "o-", color=colour, label=label)
            baseline_key = (
                "baseline_mean_train_psnr"
                if metric == "psnr"
                else "baseline_mean_train_object_psnr"
            )
            baseline = [
                (int(k), result["results"][k][kind].get(baseline_key))
                for k in ks
                if kind in result["results"][k]
            ]
            baseline = [(k, v) for k, v in baseline if v is not None and v == v]
            if baseline:
                axis.plot(
                    *zip(*baseline),
                    "--",
                    color=colour,
                    alpha=0.6,
                    label=f"mean train image {kind.upper()}",
                )
        axis.set_xlabel("context views K")
        axis.set_ylabel("PSNR (dB)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


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
