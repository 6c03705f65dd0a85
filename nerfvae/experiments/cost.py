"""``nerfvae experiment cost``: per K and kind of target view, NeRF-VAE's inference + render time
per scene beside the per-scene NeRF's time to reach NeRF-VAE's PSNR on the same views (first
crossing of its probe PSNR, :func:`time_to_reach`; a batch's wall time ÷ scenes per batch), from
the views experiment run here or reused with ``--views-json``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from nerfvae.errors import ConfigError, DataError
from nerfvae.experiments import common, figures
from nerfvae.experiments import markdown as md
from nerfvae.experiments.context_views import (
    TRIVIAL_PREDICTORS,
    NeRFComparisonArgs,
    ViewsArgs,
    compute_views,
    context_label,
    nerf_budget,
    parse_context_labels,
)
from nerfvae.experiments.provenance import provenance_lines, provenance_section

DESCRIPTION = "inference cost: NeRF-VAE inference + render vs per-scene NeRF time to the same PSNR"


@dataclass(kw_only=True)
class CostArgs(NeRFComparisonArgs):
    """NeRF-VAE's inference + render time per scene against the per-scene NeRF's time to reach the
    same held-out PSNR, evaluated here (--run, --data) or from a views.json (--views-json); writes
    cost.json, cost.png and cost.md under --out."""

    run: str | None = None
    """NeRF-VAE run directory (needed unless --views-json)."""
    data: str | None = None
    """Dataset directory (needed unless --views-json)."""
    views_json: str | None = None
    """Reuse a views.json with per-scene NeRF results (and its timings) instead of evaluating."""
    context: str | None = None
    """Context sizes K, comma-separated, each at most once (`all` as in the views experiment);
    default 1,3, or every K of --views-json."""
    out: str = "docs/results/cost"


def time_to_reach(
    history: Sequence[dict[str, float]],
    target_psnr: float | None,
    *,
    psnr_key: str = "probe_psnr_id",
    time_keys: tuple[str, ...] = ("wall_s", "cpu_s"),
) -> dict[str, Any]:
    """When an optimisation's PSNR first reaches ``target_psnr`` (None/NaN: nothing to reach),
    from ``history`` rows with ``step``, ``time_keys`` and, on some rows, ``psnr_key``: ``reached``,
    ``step`` and each time key interpolated linearly between the last probe below the target and
    the first at or above it (None if never), ``max_step``, ``best_psnr``, ``note``. DataError when
    no row has ``psnr_key``."""
    probed = [row for row in history if row.get(psnr_key) is not None]
    rows = [row for row in sorted(probed, key=lambda r: r["step"]) if math.isfinite(row[psnr_key])]
    if not rows:
        raise DataError(f"the optimisation history has no {psnr_key!r} values")
    best, max_step = max(row[psnr_key] for row in rows), int(rows[-1]["step"])
    result: dict[str, Any] = {"reached": None, "step": None, **dict.fromkeys(time_keys)}
    result.update(max_step=max_step, best_psnr=best, target_psnr=target_psnr)
    if target_psnr is None or not math.isfinite(target_psnr):
        return {**result, "note": "no target PSNR"}
    for index, row in enumerate(rows):
        if row[psnr_key] >= target_psnr:
            previous = rows[index - 1] if index else row
            gain = row[psnr_key] - previous[psnr_key]
            fraction = (target_psnr - previous[psnr_key]) / gain if index else 1.0
            for key in ("step", *time_keys):
                if key in row and key in previous:
                    result[key] = previous[key] + fraction * (row[key] - previous[key])
            return {**result, "reached": True, "note": f"reached at step {result['step']:.0f}"}
    note = f"not reached within {max_step} steps (best {best:.2f} dB)"
    return {**result, "reached": False, "note": note}


def load_views_json(path: str | Path) -> dict[str, Any]:
    """A views experiment's JSON with per-scene NeRF results (ConfigError otherwise)."""
    loaded = common.load_json(path, f"--views-json {path}")
    if loaded.get("experiment") != "views":
        raise ConfigError(f"--views-json {path}: not the views.json of `nerfvae experiment views`")
    if loaded.get("models", {}).get("nerf") is None:
        raise ConfigError(
            f"--views-json {path} has no per-scene NeRF results (it was run with --skip-nerf); "
            "rerun the views experiment without it"
        )
    return loaded


def select_context(views: dict[str, Any], text: str | None) -> dict[str, int]:
    """The views result's context sizes named by ``text`` (all when None; ConfigError for one it
    lacks)."""
    available: dict[str, int] = views["context"]
    if text is None:
        return dict(available)
    chosen = {}
    for label in parse_context_labels(text):
        if label in available:
            chosen[label] = available[label]
            continue
        matches = [name for name, k in available.items() if str(k) == label]
        if not matches:
            raise ConfigError(
                f"--context {label}: the views results hold only K = "
                + ", ".join(context_label(name, k) for name, k in available.items())
            )
        chosen[matches[0]] = available[matches[0]]
    return chosen


def cost_analysis(views: dict[str, Any], context: dict[str, int]) -> dict[str, Any]:
    """``results[label][id|ood]``: NeRF-VAE's PSNR and time per scene, the per-scene NeRF's final
    PSNR and time to reach NeRF-VAE's PSNR, and the speed-up."""
    vae, nerf = views["models"]["nerfvae"], views["models"]["nerf"]
    targets = {kind: views["view_lists"][f"{kind}_targets"] for kind in ("id", "ood")}
    probe_views = nerf.get("probe_views")
    results: dict[str, Any] = {}
    for label, k in context.items():
        key = str(k)
        vae_timing, nerf_timing = vae["timing"][key], nerf["timing"][key]
        # History wall times are per batch of scenes optimised together; per scene = ÷ batch size.
        per_scene = (
            nerf_timing["fit_s_per_scene"] / nerf_timing["fit_s_per_batch"]
            if nerf_timing.get("fit_s_per_batch")
            else 1.0 / max(1, nerf.get("scenes_per_batch") or 1)
        )
        history = nerf["history"][key]
        entry: dict[str, Any] = {"k": k}
        for kind in md.KINDS:
            if not targets[kind] or kind not in vae["results"][key]:
                continue
            vae_psnr = vae["results"][key][kind].get("psnr")
            vae_render = vae_timing.get(f"render_s_per_{kind}_view")
            vae_total = vae_timing["inference_s_per_scene"] + (vae_render or 0.0)
            try:
                reach = time_to_reach(history, vae_psnr, psnr_key=f"probe_psnr_{kind}")
            except DataError:
                raise ConfigError(
                    f"the per-scene NeRF results for K = {k} have no held-out {kind.upper()} probe "
                    "PSNR over steps (made with --probe-views 0?); rerun with --probe-views -1"
                ) from None
            psnr_key = f"probe_psnr_{kind}"
            probed = [row for row in history if row.get(psnr_key) is not None]
            nerf_render = nerf_timing.get(f"render_s_per_{kind}_view")
            reach_wall = reach["wall_s"] * per_scene if reach["reached"] else None
            nerf_total = reach_wall + (nerf_render or 0.0) if reach_wall is not None else None
            all_probed = None if probe_views is None else probe_views >= len(targets[kind])
            cpu = reach["cpu_s"] * per_scene if reach["cpu_s"] is not None else None
            entry[kind] = {
                "nerfvae": dict(
                    psnr=vae_psnr, inference_s_per_scene=vae_timing["inference_s_per_scene"],
                    render_s_per_view=vae_render, s_per_scene=vae_total,
                ),
                "nerf": dict(
                    final_psnr=nerf["results"][key][kind].get("psnr"),
                    final_probe_psnr=probed[-1][psnr_key] if probed else None,
                    steps=nerf["config"]["steps"], probe_views=probe_views,
                    probe_is_all_targets=all_probed,
                    fit_s_per_scene=nerf_timing["fit_s_per_scene"], render_s_per_view=nerf_render,
                ),
                "time_to_reach": dict(
                    reached=reach["reached"], step=reach["step"], wall_s_per_scene=reach_wall,
                    cpu_s_per_scene=cpu, wall_s_per_batch=reach["wall_s"],
                    max_step=reach["max_step"], best_probe_psnr=reach["best_psnr"],
                    note=reach["note"],
                ),
                # (NeRF optimisation to NeRF-VAE's PSNR + one render) / (NeRF-VAE inference + one
                # render), per scene.
                "speedup": nerf_total / vae_total if nerf_total is not None and vae_total else None,
                "curve": [[row["wall_s"] * per_scene, row[psnr_key], row["step"]] for row in probed],
            }  # fmt: skip
        results[label] = entry
    return results


def cost_markdown(result: dict[str, Any]) -> str:
    """cost.md: what was compared, the table and the provenance."""
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
                    f"The NeRF's held-out PSNR over steps is on the first {nerf['probe_views']} "
                    "target views of each kind, NeRF-VAE's PSNR on all of them."
                )
            elif nerf["probe_is_all_targets"] is None:
                caveats.add(
                    "The reused NeRF results do not record how many target views were probed; "
                    "compare the NeRF's final probe PSNR in cost.json with its final PSNR."
                )
    lines = [
        "# Cost: amortised inference against per-scene optimisation",
        "",
        f"Per scene, on the first {md.scenes_text(result['num_scenes'])} of `{result['dataset']}` "
        f"({result['split']}): NeRF-VAE (`{result['run']}`) infers the scene from K context views "
        "in one forward pass and renders a view; the per-scene NeRF is optimised on the same K "
        "views. *Time to reach* is the optimisation wall time until the NeRF's held-out PSNR first "
        "reaches NeRF-VAE's PSNR on the same views (linear interpolation between probes). "
        "*Speed-up* = (NeRF time to reach + one render) / (NeRF-VAE inference + one render).",
        "",
        "![PSNR vs wall time](cost.png)",
        "",
        *md.table(
            "K | cameras | NeRF-VAE PSNR | NeRF-VAE inference s | NeRF-VAE render s/view | "
            "NeRF time to reach s | at step | NeRF final PSNR (steps) | NeRF optimisation s | "
            "speed-up",
            rows,
        ),
        "",
        *(f"Note: {text}" for text in sorted(caveats)),
        "",
        f"Per-scene NeRF: {result['nerf_budget']}. Its time is per scene: the batch's optimisation "
        "wall time ÷ scenes per batch (probe renders excluded).",
    ]
    if views := result.get("views_provenance"):
        command = views.get("command", "?")
        lines += ["", f"Timings reused from `{result['source']}`, measured by `{command}` on:", ""]
        lines += provenance_lines(views)
    return "\n".join([*lines, "", *provenance_section(result["provenance"]), ""])


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


def cost_headline(
    results: dict[str, Any], views: dict[str, Any], context: dict[str, int]
) -> list[dict[str, Any]]:
    """Headline rows: per K and kind of target, NeRF-VAE and the per-scene NeRF beside the trivial
    predictors on the same views, with their times in the note."""
    rows = []
    for label, k in context.items():
        for kind in md.KINDS:
            cell, scored = results[label].get(kind), views["results"][label].get(kind)
            if cell is None or scored is None:
                continue
            where = f"K={context_label(label, k)}, {kind.upper()} views"
            trivial = {name: scored[name]["psnr"] for name in TRIVIAL_PREDICTORS}
            vae, nerf, reach = cell["nerfvae"], cell["nerf"], cell["time_to_reach"]
            note = f"inference + one render {md.format_seconds(vae['s_per_scene'])} s"
            object_psnr = scored["nerfvae"]["object_psnr"]
            rows.append(
                md.headline_row(f"NeRF-VAE, {where}", vae["psnr"], object_psnr, trivial, note)
            )
            reached = reach["note"]
            if reach["reached"]:
                seconds = md.format_seconds(reach["wall_s_per_scene"])
                reached = f"reaches NeRF-VAE after {seconds} s (step {reach['step']})"
            note = f"optimisation {md.format_seconds(nerf['fit_s_per_scene'])} s; {reached}"
            object_psnr = (scored.get("nerf") or {}).get("object_psnr")
            label_nerf = f"per-scene NeRF ({nerf['steps']} steps), {where}"
            rows.append(md.headline_row(label_nerf, nerf["final_psnr"], object_psnr, trivial, note))
    return rows


def run(argv: list[str], prog: str) -> int:
    args = common.parse_args(CostArgs, argv, prog)
    if args.views_json:
        if args.run or args.data or args.nerf_json:
            raise ConfigError(
                "--views-json reuses a views experiment's results: leave out --run, --data and "
                "--nerf-json (or leave out --views-json to evaluate afresh)"
            )
        views, source = load_views_json(args.views_json), str(args.views_json)
    else:
        if not args.run or not args.data:
            raise ConfigError("give --run and --data (or --views-json to reuse the views results)")
        shared = {item.name: getattr(args, item.name) for item in fields(NeRFComparisonArgs)}
        shared.update(out=args.out, context=args.context or "1,3")
        views, source = compute_views(ViewsArgs(run=args.run, data=args.data, **shared)), "computed"
    context = select_context(views, args.context if args.views_json else None)
    run_dir = views["models"]["nerfvae"]["run"]
    nerf = views["models"]["nerf"]
    results = cost_analysis(views, context)
    result = common.result_header(
        "cost",
        source=source,
        dataset=views["dataset"],
        split=views["split"],
        run=run_dir,
        num_scenes=views["num_scenes"],
        image_size=views["image_size"],
        context=context,
        view_lists=views["view_lists"],
        nerf_budget=nerf_budget(nerf, views["nerf_source"]),
        nerf_config=nerf["config"],
        results=results,
        headline=cost_headline(results, views, context),
        views_provenance=views.get("provenance"),
    )
    runs = [run_dir] if (Path(run_dir) / "config.json").exists() else []
    figure = {"cost.png": lambda path: cost_figure(result, path)}
    return common.finish(prog, argv, runs, args.out, "cost", result, cost_markdown, figure)
