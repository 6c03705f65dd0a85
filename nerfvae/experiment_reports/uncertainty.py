"""The uncertainty experiment's report: uncertainty.md, drawn from the saved result
(:mod:`nerfvae.experiments.uncertainty` computes it)."""

from __future__ import annotations

from typing import Any

from nerfvae.evaluation import markdown as md


def markdown_report(result: dict[str, Any]) -> list[str]:
    """``uncertainty.md``: the claim and a table per group."""
    rows, error_rows = [], []
    for group in result["results"]:
        entry, name = result["results"][group], group.upper() if group != "all" else "all"

        def cells(key: str, entry: dict[str, Any] = entry) -> list[str]:
            parts = (("seen", 4), ("unseen", 4), ("ratio", 2))
            return [md.format_number(entry.get(f"{key}_{part}"), digits) for part, digits in parts]

        colour, depth = (
            md.format_percent(entry.get(f"{key}_scenes_unseen_higher"))
            for key in ("colour_std", "depth_std")
        )
        compared = f"{colour} / {depth} of {entry.get('colour_std_scenes_compared', 0)}"
        seen = md.format_number(entry["fraction_seen"], 3)
        rows.append([name, seen, *cells("colour_std"), *cells("depth_std"), compared])
        rows[-1].append(entry["num_pixels"])
        error_rows.append([name, *cells("colour_error")])
    settings, figure = result["settings"], result["figure"]
    return md.document(
        "Posterior uncertainty on seen vs unseen surfaces",
        f"Run `{result['run']}` (checkpoint step {result.get('checkpoint_step')}). "
        + md.scenes_sentence(
            result,
            f"ID view {settings['context_view']} alone"
            + refinement_clause(settings.get("refinement")),
        )
        + f" {settings['samples']} posterior samples render the targets. A target pixel is "
        "*seen* if its ground-truth surface point projects into the context image at the "
        f"context depth there within {settings['tolerance']:.0%} (not occluded), else "
        "*unseen*. Colour std: per-pixel std over samples (mean over RGB in [0, 1]); depth "
        "std in world units; means over all pixels of the group; ratio = unseen / seen; "
        "scenes unseen > seen: the share of scenes (with both kinds of pixel) whose unseen "
        "mean exceeds their seen mean.",
        md.table(
            "targets | pixels seen | colour std seen | colour std unseen | ratio | "
            "depth std seen | depth std unseen | ratio | scenes unseen > seen (colour / "
            "depth) | pixels",
            rows,
        ),
        "Mean absolute colour error of the posterior-mean render on the same pixels:",
        md.table(["targets", "colour error seen", "colour error unseen", "ratio"], error_rows),
        "`uncertainty.png`, a row per (scene, target): context | target | seen mask (white "
        "seen, black unseen, red no surface) | colour std | depth std (shared scales: up to "
        f"{md.format_number(figure['colour_std_vmax'], 3)} and "
        f"{md.format_number(figure['depth_std_vmax'], 3)}).",
    )


def refinement_clause(refinement: dict[str, Any] | None) -> str:
    """`` (then N test-time refinement steps on it)`` for a result made with refinement, else
    nothing."""
    if not refinement or refinement["steps"] == 0:
        return ""
    return f" (then {refinement['steps']} test-time refinement steps on it)"
