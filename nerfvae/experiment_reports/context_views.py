"""The views and cost experiments' reports: views.md / views.png and cost.md / cost.png, drawn from
the saved result (:mod:`nerfvae.experiments.context_views` computes it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nerfvae.evaluation import figures
from nerfvae.evaluation import markdown as md
from nerfvae.evaluation.report import inference_line
from nerfvae.experiment_reports import claims
from nerfvae.experiment_reports.provenance import provenance_lines


def comparison(cell: dict[str, Any], metric: str) -> dict[str, Any]:
    """The claim NeRF-VAE − per-scene NeRF on ``metric`` of a results cell: as recorded, or for an
    older views.json the difference of the means without an interval (verdict not shown)."""
    stored = md.at(cell, "nerfvae_minus_nerf", metric)
    means = (md.at(cell, name, metric) for name in ("nerfvae", "nerf"))
    return claims.stored_or_means(stored, *means, "greater")


def context_label(label: str, k: int) -> str:
    """``"3"`` or ``"all (7)"``."""
    return f"all ({k})" if label == "all" else label


def nerf_budget(nerf: dict[str, Any] | None, source: str) -> str:
    """One line: the per-scene NeRF's budget and where its numbers come from."""
    if nerf is None:
        return "not run (--skip-nerf)"
    config, sampling = nerf["config"], nerf["config"]["sampling"]
    return (
        f"{config['steps']} steps × {config['rays_per_scene']} rays per scene, MLPs "
        f"{config['depth']}×{config['width']}, samples {sampling['num_coarse']} + "
        f"{sampling['num_fine']}, scenes per batch: {nerf.get('scenes_per_batch', '?')}, "
        f"{nerf.get('hardware', {}).get('device', '?')}"
        + ("" if source == "computed" else f"; results reused from `{source}`")
    )


def views_markdown(result: dict[str, Any]) -> list[str]:
    """views.md: what was compared and the tables."""
    vae, context = result["models"]["nerfvae"], result["context"]
    all_note = (
        f" `all` = every ID view except the last {result['id_targets_for_all']} (= K "
        f"{context['all']})." if result.get("id_targets_for_all") else ""
    )  # fmt: skip
    names = ("nerfvae", "nerf", *md.TRIVIAL_PREDICTORS)
    cells = [
        (context_label(label, entry["k"]), kind.upper(), entry[kind])
        for label, entry in result["results"].items()
        for kind in md.KINDS
        if kind in entry
    ]

    def values(cell: dict[str, Any], key: str, models: tuple[str, ...], digits: int = 2) -> list:
        """Each row's mean [interval] (the mean alone where the JSON has no per-scene values)."""
        return [claims.row_cell(cell, name, key, digits=digits) for name in models]

    def paired(cell: dict[str, Any], key: str) -> list[str]:
        """NeRF-VAE − NeRF on ``key``, paired per scene, and the verdict."""
        if cell.get("nerf") is None:
            return [md.MISSING, "no NeRF (--skip-nerf)"]
        return claims.claim_cells(comparison(cell, key))

    times = []
    for label, timing in result["timing"].items():
        model, other = timing["nerfvae"] or {}, timing["nerf"] or {}
        seconds = [model.get("inference_s_per_scene"), model.get("render_s_per_id_view")]
        seconds += [other.get("fit_s_per_scene"), other.get("render_s_per_id_view")]
        times.append([context_label(label, context[label]), *map(md.format_seconds, seconds)])
    psnr_rows = [
        [
            *[k, kind, *values(c, "psnr", names), *paired(c, "psnr")],
            *[*values(c, "ssim", names[:2], 3), c["num_views"]],
        ]
        for k, kind, c in cells
    ]
    return md.document(
        "Views: PSNR and SSIM against the number of context views K",
        f"NeRF-VAE (`{vae['run']}`, step {vae['checkpoint_step']}) against a per-scene NeRF "
        "optimised from scratch on the same K context views. "
        f"{md.scenes_sentence(result, 'ID views 0..K-1')}{all_note} {md.TRIVIAL_SENTENCE} Means "
        "over target views (PSNR in dB; object PSNR over ground-truth object pixels). "
        f"{claims.READING} The claim: NeRF-VAE − NeRF above zero.",
        *filter(None, [inference_line(vae).strip()]),
        "![PSNR vs K](views.png)",
        "## Whole image",
        md.table(
            "K | cameras | NeRF-VAE PSNR | NeRF PSNR | mean-train-image PSNR | "
            "mean-context-colour PSNR | NeRF-VAE − NeRF PSNR (paired) | verdict | NeRF-VAE SSIM | "
            "NeRF SSIM | views",
            psnr_rows,
        ),
        "## Object pixels",
        md.table(
            "K | cameras | NeRF-VAE | NeRF | mean train image | mean context colour | "
            "NeRF-VAE − NeRF (paired) | verdict",
            (
                [k, kind, *values(c, "object_psnr", names), *paired(c, "object_psnr")]
                for k, kind, c in cells
            ),
        ),
        "## Time per scene",
        md.table(
            "K | NeRF-VAE inference s | NeRF-VAE render s per ID view | NeRF optimisation s | "
            "NeRF render s per ID view",
            times,
        ),
        f"Per-scene NeRF: {nerf_budget(result['models']['nerf'], result['nerf_source'])}.",
        *match_section(result),
    )


def match_section(result: dict[str, Any]) -> list[str]:
    """The table of :func:`views_to_match` (absent from an older views.json)."""
    rows = [
        [
            context_label(row["label"], row["k"]),
            row["kind"].upper(),
            md.format_number(row["nerfvae_psnr"]),
            f"not within K ≤ {row['largest_k_tried']}"
            if row["nerf_k"] is None
            else context_label(row["nerf_label"], row["nerf_k"]),
            md.format_number(row["nerf_psnr"]),
            md.format_seconds(row["nerf_fit_s_per_scene"]),
        ]
        for row in result.get("views_to_match") or []
    ]
    if not rows:
        return []
    return [
        "## Views the per-scene NeRF needs to match NeRF-VAE",
        "The fewest context views from which the NeRF's mean PSNR reaches NeRF-VAE's at K (among "
        "the K of this sweep; means over the same scenes and targets), and its optimisation time "
        "per scene there.",
        md.table(
            "NeRF-VAE K | cameras | NeRF-VAE PSNR | NeRF views needed | NeRF PSNR there | "
            "NeRF optimisation s per scene",
            rows,
        ),
    ]


def views_figure(result: dict[str, Any], path: Path) -> None:
    """PSNR (whole image, object pixels) and SSIM against K: both models and the trivial
    predictors, ID solid and OOD dashed."""
    entries = result["results"]
    ks = [entry["k"] for entry in entries.values()]
    series = (
        ("NeRF-VAE", "nerfvae", "C0", "o"),
        ("per-scene NeRF", "nerf", "C1", "s"),
        ("mean train image", "mean_train_image", "0.5", "x"),
        ("mean context colour", "mean_context_colour", "C2", "+"),
    )
    panels = (
        ("psnr", "PSNR (dB)", "whole image"),
        ("object_psnr", "PSNR (dB)", "object pixels"),
        ("ssim", "SSIM", "whole image"),
    )
    with figures.figure_file(path, 3, (13, 3.8), rect=(0, 0, 0.84, 1)) as (figure, axes):
        for axis, (metric, unit, title) in zip(axes, panels):
            for name, key, colour, marker in series:
                for kind, style in (("id", "-"), ("ood", "--")):
                    cells = [(entry.get(kind) or {}).get(key) or {} for entry in entries.values()]
                    figures.plot_line(
                        axis,
                        [(k, c[metric]) for k, c in zip(ks, cells) if c.get(metric) is not None],
                        linestyle=style,
                        marker=marker,
                        color=colour,
                        markersize=4,
                        label=f"{name} {kind.upper()}",
                    )
            axis.set_xticks(ks, [context_label(label, k) for label, k in zip(entries, ks)])
            axis.set(xlabel="context views K", ylabel=unit, title=title)
            axis.grid(alpha=0.3)
        handles, names = axes[0].get_legend_handles_labels()
        figure.legend(handles, names, loc="center right", fontsize=7)
        figure.suptitle(
            f"{md.scenes_text(result['num_scenes'])} of {Path(result['dataset']).name} "
            "(ID targets solid, OOD dashed)"
        )


def cost_markdown(result: dict[str, Any]) -> list[str]:
    """cost.md: what was compared and the table."""
    rows, caveats = [], set()
    for label, entry in result["results"].items():
        for kind in md.KINDS:
            if (cell := entry.get(kind)) is None:
                continue
            vae, nerf, reach = cell["nerfvae"], cell["nerf"], cell["time_to_reach"]
            reached = reach["reached"]
            rows.append([
                context_label(label, entry["k"]), kind.upper(), md.format_number(vae["psnr"]),
                md.format_seconds(vae["inference_s_per_scene"]),
                md.format_seconds(vae["render_s_per_view"]),
                md.format_seconds(reach["wall_s_per_scene"]) if reached else reach["note"],
                md.format_number(reach["step"], 0) if reached else md.MISSING,
                f"{md.format_number(nerf['final_psnr'])} ({nerf['steps']})",
                md.format_seconds(nerf["fit_s_per_scene"]),
                md.MISSING if cell["speedup"] is None else f"{cell['speedup']:.3g}×",
            ])  # fmt: skip
            if nerf["probe_is_all_targets"] is False:
                caveats.add(
                    f"the NeRF's PSNR over steps is on the first {nerf['probe_views']} "
                    "target views of each kind, NeRF-VAE's on all of them."
                )
            elif nerf["probe_is_all_targets"] is None:
                caveats.add(
                    "the reused NeRF results do not say how many target views were "
                    "probed: compare the NeRF's final probe and final PSNR in cost.json."
                )
    lines = md.document(
        "Cost: amortised inference against per-scene optimisation",
        f"NeRF-VAE (`{result['run']}`) infers each scene from K context views in one forward "
        f"pass; the per-scene NeRF is optimised on the same views. {md.scenes_sentence(result)} "
        "*Time to reach*: the NeRF's optimisation wall time until its held-out PSNR first reaches "
        "NeRF-VAE's (interpolated between probes). *Speed-up* = (NeRF time to reach + one "
        "render) / (NeRF-VAE inference + one render), per scene.",
        "![PSNR vs wall time](cost.png)",
        md.table(
            "K | cameras | NeRF-VAE PSNR | NeRF-VAE inference s | NeRF-VAE render s/view | "
            "NeRF time to reach s | at step | NeRF final PSNR (steps) | NeRF optimisation s | "
            "speed-up",
            rows,
        ),
        [f"Note: {text}" for text in sorted(caveats)],
        f"Per-scene NeRF: {result['nerf_budget']}; its time per scene is the batch's wall time "
        "÷ scenes per batch (probe renders excluded).",
    )
    if views := result.get("views_provenance"):
        command = views.get("command", "?")
        lines += ["", f"Timings reused from `{result['source']}`, measured by `{command}` on:", ""]
        lines += provenance_lines(views)
    return lines


def cost_figure(result: dict[str, Any], path: Path) -> None:
    """Per camera kind: the NeRF's held-out PSNR against optimisation wall time per scene (log
    axis; step 0 left out), NeRF-VAE as a star at its inference + render time, and a cross where
    the NeRF reaches NeRF-VAE's PSNR."""
    kinds = [kind for kind in md.KINDS if any(kind in e for e in result["results"].values())]
    with figures.figure_file(path, max(1, len(kinds)), (5.5 * max(1, len(kinds)), 4)) as (
        figure,
        axes,
    ):
        for axis, kind in zip(axes, kinds):
            for index, (label, entry) in enumerate(result["results"].items()):
                if (cell := entry.get(kind)) is None:
                    continue
                colour, name = f"C{index}", context_label(label, entry["k"])
                curve = [(t, p) for t, p, _ in cell["curve"] if t > 0]
                style = dict(color=colour, markersize=3, label=f"NeRF, K={name}")
                figures.plot_line(axis, curve, "o-", **style)
                vae, reach = cell["nerfvae"], cell["time_to_reach"]
                if vae["psnr"] is not None and vae["s_per_scene"] > 0:
                    axis.plot(
                        vae["s_per_scene"], vae["psnr"], "*", color=colour, markersize=12,
                        markeredgecolor="black", label=f"NeRF-VAE, K={name}",
                    )  # fmt: skip
                    axis.axhline(vae["psnr"], color=colour, linestyle=":", alpha=0.6)
                if reach["reached"] and reach["wall_s_per_scene"] > 0:
                    axis.plot(
                        reach["wall_s_per_scene"], vae["psnr"], "x", color=colour, markersize=9
                    )
            axis.set(xscale="log", xlabel="wall time per scene (s, log)")
            axis.set(ylabel="held-out PSNR (dB)", title=f"{kind.upper()} targets")
            axis.grid(alpha=0.3, which="both")
            axis.legend(fontsize=6)
        figure.suptitle(
            "per-scene NeRF optimisation vs NeRF-VAE inference (× = NeRF reaches NeRF-VAE)"
        )
