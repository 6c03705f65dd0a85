"""Evaluate the per-scene NeRF baseline exactly as ``nerfvae eval`` evaluates a trained model.

For each context size K (the same view lists as ``nerfvae eval``, :mod:`nerfvae.evaluation.views`),
a NeRF is optimised from scratch on each test scene's K context views
(:func:`nerfvae.models.baselines.nerf.fit_per_scene_nerf`, several scenes batched together), then
scored on the same held-out ID and OOD target views with the same per-view metrics as
:func:`nerfvae.evaluation.evaluate.evaluate` (PSNR, SSIM, MSE, object PSNR, depth MAE and the
trivial predictors' PSNRs; there is no ELBO: a NeRF fitted by MSE is no generative model).

Besides the final metrics the result records the optimisation: wall time, and PSNR over steps
(training PSNR on the context rays, and the PSNR of a few held-out ID/OOD views rendered at
geometrically spaced steps; the held-out views are only looked at, never trained on or used to
choose anything).

``context_sizes=None`` means "all ID views as context" (single-scene NeRF data such as lego, where
the held-out views are the dataset's OOD views and there is no ID target).
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from nerfvae.data.storage import write_json_atomic
from nerfvae.errors import ConfigError, DataError
from nerfvae.evaluation import figures
from nerfvae.evaluation import markdown as md
from nerfvae.evaluation.evaluate import (
    SCHEMA_VERSION,
    per_scene_metrics,
    render_seconds_per_view,
    scene_batches,
    scenes_to_tensors,
    score_target_views,
)
from nerfvae.evaluation.report import markdown_table, nan_to_null
from nerfvae.evaluation.views import ViewLists, scene_count, standard_view_lists
from nerfvae.metrics import mean_view_metrics, psnr
from nerfvae.models.baselines.nerf import (
    PerSceneNeRF,
    PerSceneNeRFConfig,
    default_probe_steps,
    fit_per_scene_nerf,
)


@dataclass(kw_only=True)
class PerSceneNeRFOptions:
    """How the per-scene NeRF baseline is fitted and probed, beside its architecture and budget
    (:class:`PerSceneNeRFConfig`): the options of `nerfvae baseline nerf` and of the experiments
    that fit it (`nerfvae experiment views`, `cost`)."""

    background: str = "auto"
    """Colour where rays leave the scene box: `auto` (the import's background for imported data,
    else black), white, black, grey, #rrggbb or r,g,b."""
    probe_views: int = 2
    """Held-out ID and OOD views per scene rendered during optimisation to track PSNR over steps
    and time (0 = none, -1 = every target view: the last probe is then the final score, which
    `experiment cost` needs to time the NeRF to a PSNR on exactly the scored views)."""
    probe_points: int = 8
    """How many times (geometrically spaced steps, first and last included) the probe views are
    rendered."""
    device: str = "cpu"
    """Torch device of the per-scene NeRF (`cpu`, `cuda`)."""


def resolve_background(text: str, meta) -> tuple[float, float, float]:
    """The NeRFs' background colour from ``--background`` ``text`` (a colour name or ``r,g,b``):
    ``auto`` is the dataset's own background (``dataset.json``'s ``background``, which the
    trainer also reads), else black. Raises ConfigError for a colour that cannot be read."""
    from nerfvae.data.storage import parse_colour

    if text.strip().lower() == "auto":
        return meta.background if meta.background is not None else (0.0, 0.0, 0.0)
    try:
        return parse_colour(text)
    except DataError as error:
        raise ConfigError(f"--background: {error}") from None


def all_views_lists(num_id_views: int, num_ood_views: int) -> ViewLists:
    """Context = every ID view, no ID target, OOD targets = every OOD view (the held-out views)."""
    if num_ood_views == 0:
        raise DataError(
            "context 'all' uses every ID view as context, so the split needs held-out (OOD) views "
            "to score; this split has none"
        )
    return ViewLists(
        context={num_id_views: list(range(num_id_views))},
        id_targets=[],
        ood_targets=list(range(num_id_views, num_id_views + num_ood_views)),
    )


def probe_view_count(requested: int, num_id_targets: int, num_ood_targets: int) -> int:
    """``-1`` -> enough probe views to cover every target view of either kind; otherwise
    ``requested`` (0 = no probe).

    Raises:
        ConfigError: ``requested`` below -1.
    """
    if requested < -1:
        raise ConfigError(f"--probe-views must be -1 (all targets), 0 or positive, got {requested}")
    if requested == -1:
        return max(1, num_id_targets, num_ood_targets)
    return requested


def _mean_history(histories: list[tuple[int, list[dict[str, float]]]]) -> list[dict[str, float]]:
    """Scene-weighted mean of the batches' history rows (every batch logs the same steps)."""
    total = sum(count for count, _ in histories)
    rows: list[dict[str, float]] = []
    for index, first in enumerate(histories[0][1]):
        row = {"step": first["step"]}
        for key in first:
            if key == "step":
                continue
            values = [(count, history[index].get(key)) for count, history in histories]
            values = [(c, v) for c, v in values if v is not None and v == v]
            if values:
                row[key] = sum(c * v for c, v in values) / sum(c for c, _ in values)
        row["scenes"] = total
        rows.append(row)
    return rows


def _probe(
    batch: dict[str, torch.Tensor],
    views: dict[str, list[int]],
    height: int,
    width: int,
    chunk_rays: int,
    announce: bool,
):
    """A fit probe: mean PSNR of the given held-out ``views`` per kind (``probe_psnr_id/ood``)."""

    def probe(step: int, model: PerSceneNeRF) -> dict[str, float]:
        row = {}
        for kind, chosen in views.items():
            if not chosen:
                continue
            rendered = model.render_views(
                batch["K"][:, chosen], batch["c2w"][:, chosen], height, width, chunk_rays
            )["colour"]
            truth = batch["images"][:, chosen]
            values = [
                psnr(rendered[s, v], truth[s, v])
                for s in range(truth.shape[0])
                for v in range(len(chosen))
            ]
            row[f"probe_psnr_{kind}"] = float(np.mean(values))
        if announce:
            tqdm.write(f"step {step}: " + ", ".join(f"{k}={v:.2f}" for k, v in row.items()))
        return row

    return probe


def _fit_batch(
    records: list,
    views: ViewLists,
    config: PerSceneNeRFConfig,
    scene_min: torch.Tensor,
    scene_max: torch.Tensor,
    background: tuple[float, float, float],
    train_image: torch.Tensor | None,
    probe_views: int,
    probe_steps: Sequence[int],
    chunk_rays: int,
    device: str | torch.device,
    progress: bool,
) -> dict[str, Any]:
    """Fit and score the NeRFs of one batch of scenes for every K: JSON-ready ``per_view``
    (``"K/kind"`` -> metric -> values, scenes then views in order), ``timing`` (K -> sums) and
    ``history`` (K -> the fit's rows)."""
    height, width = records[0].images.shape[1:3]
    batch = {key: value.to(device) for key, value in scenes_to_tensors(records).items()}
    count = len(records)
    targets_by_kind = {"id": views.id_targets, "ood": views.ood_targets}
    probes = {kind: targets[:probe_views] for kind, targets in targets_by_kind.items()}
    per_view: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    timing: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    history: dict[str, list[dict[str, float]]] = {}
    for k, context in views.context.items():
        fit = fit_per_scene_nerf(
            batch["images"][:, context],
            batch["K"][:, context],
            batch["c2w"][:, context],
            config,
            scene_min,
            scene_max,
            background=background,
            probe=_probe(batch, probes, height, width, chunk_rays, progress)
            if probe_views > 0
            else None,
            probe_steps=probe_steps,
        )
        timing[str(k)]["fit_s"] += fit.wall_s
        timing[str(k)]["fit_cpu_s"] += fit.cpu_s
        timing[str(k)]["batches"] += 1
        history[str(k)] = fit.history
        context_colour = batch["images"][:, context].mean(dim=(1, 2, 3))  # [S, 3]
        for kind, targets in targets_by_kind.items():
            if not targets:
                continue
            started = time.perf_counter()
            rendered = fit.model.render_views(
                batch["K"][:, targets], batch["c2w"][:, targets], height, width, chunk_rays
            )
            timing[str(k)][f"render_{kind}_s"] += time.perf_counter() - started
            timing[str(k)][f"render_{kind}_views"] += count * len(targets)
            score_target_views(
                per_view[f"{k}/{kind}"], rendered, batch, targets, context_colour, train_image
            )
        timing[str(k)]["scenes"] += count
    # as JSON reads it back: a batch fitted now merges exactly like one resumed from its file
    return json.loads(json.dumps({"per_view": per_view, "timing": timing, "history": history}))


def remove_parts(parts: Path) -> None:
    """Delete the saved batches and settings record of a finished run (only those files)."""
    for path in [*parts.glob("batch-*.json"), parts / "settings.json"]:
        path.unlink(missing_ok=True)
    if parts.is_dir() and not any(parts.iterdir()):
        parts.rmdir()


def _read_part(path: Path) -> dict[str, Any] | None:
    """A saved batch, or None (it is fitted again) when the file is unreadable or incomplete."""
    try:
        part = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(part, dict) or not all(
        isinstance(part.get(key), dict) for key in ("per_view", "timing", "history")
    ):
        return None
    return part


def evaluate_per_scene_nerf(
    dataset,
    config: PerSceneNeRFConfig,
    *,
    context_sizes: tuple[int, ...] | None = (1, 2, 3, 5),
    max_scenes: int | None = None,
    scenes_per_batch: int = 4,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    mean_train_image: torch.Tensor | None = None,
    probe_views: int = 2,
    probe_points: int = 8,
    id_targets: int | None = None,
    chunk_rays: int = 4096,
    device: str | torch.device = "cpu",
    progress: bool = True,
    parts: Path | None = None,
) -> dict[str, Any]:
    """Fit and evaluate per-scene NeRFs on ``dataset`` (a ``MultiSceneDataset`` split).

    Args:
        config: NeRF architecture and optimisation budget (the same for every scene and K).
        context_sizes: numbers of context views K, or ``None`` for all ID views (see module doc).
        scenes_per_batch: scenes whose NeRFs are optimised together (batched weights).
        background: colour seen where a ray leaves the scene box.
        mean_train_image: ``[H, W, 3]`` for the mean-training-image trivial predictor.
        probe_views: held-out ID and OOD views per scene rendered while optimising (0 = none,
            -1 = every target view, so the last probe is the final score).
        probe_points: how many times they are rendered (geometrically spaced steps, 0 and last
            included).
        id_targets: hold out the last N ID views as ID targets (default: every ID view after the
            largest K; see :mod:`nerfvae.evaluation.views`). Ignored for ``context_sizes=None``.
        parts: a folder where each finished batch of scenes is saved, so that a run stopped
            part-way and started again with the same settings fits only the batches not yet
            saved (each fit is seeded on its own, so the result is the same). DataError when the
            folder holds batches made with other settings.

    Returns:
        The JSON-serialisable result: ``nerfvae eval``'s layout (``results[K][id|ood]`` metric
        means, ``view_lists``, ``timing``) plus ``history[K]`` (rows of step, wall_s, train_psnr,
        probe_psnr_id/ood, averaged over scenes) and ``config``.
    """
    meta = dataset.meta
    height, width = meta.image_height, meta.image_width
    num_scenes = scene_count(max_scenes, dataset)
    if num_scenes < 1:
        raise DataError("no scenes to evaluate")
    first = dataset.load_scene(0)
    if context_sizes is None:
        views = all_views_lists(first.num_id_views, first.num_ood_views)
    else:
        views = standard_view_lists(
            first.num_id_views, first.num_ood_views, context_sizes, id_targets
        )
    scene_min, scene_max = (torch.tensor(bound, dtype=torch.float32) for bound in meta.scene_bounds)
    probe_views = probe_view_count(probe_views, len(views.id_targets), len(views.ood_targets))
    probe_steps = default_probe_steps(config.steps, probe_points) if probe_views > 0 else ()
    train_image = mean_train_image.to(device) if mean_train_image is not None else None

    per_view: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    timing: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    histories: dict[int, list[tuple[int, list[dict[str, float]]]]] = defaultdict(list)
    if parts is not None:
        from nerfvae.data.resume import resume_with_settings

        settings = dict(config=asdict(config), view_lists=views.to_json(), num_scenes=num_scenes)
        settings.update(scenes_per_batch=scenes_per_batch, background=list(background))
        settings.update(probe_views=probe_views, probe_steps=list(probe_steps))
        settings.update(mean_train_image=train_image is not None, device=str(device))
        settings.update(dataset=str(Path(dataset.root).resolve()), split=dataset.split)
        resume_with_settings(
            parts / "settings.json",
            settings,
            mismatch="per-scene NeRF batches made with other settings are here; rerun with the "
            "same options or delete this folder",
            remedy="delete this folder to start over",
        )
    bar = tqdm(total=num_scenes * len(views.context), disable=not progress, desc="per-scene NeRF")
    batches = scene_batches(dataset, num_scenes, scenes_per_batch, first)
    for index, records in enumerate(batches):
        saved = parts / f"batch-{index:05d}.json" if parts is not None else None
        part = _read_part(saved) if saved is not None and saved.is_file() else None
        if part is None:
            part = _fit_batch(
                records, views, config, scene_min, scene_max, background, train_image,
                probe_views, probe_steps, chunk_rays, device, progress,
            )  # fmt: skip
            if saved is not None:
                write_json_atomic(saved, part)
        for key, metrics in part["per_view"].items():
            k, kind = key.split("/")
            for metric, values in metrics.items():
                per_view[(int(k), kind)][metric] += values
        for k, entry in part["timing"].items():
            for key, value in entry.items():
                timing[int(k)][key] += value
        for k, history in part["history"].items():
            histories[int(k)].append((len(records), history))
        bar.update(len(records) * len(views.context))
    bar.close()

    timings = {}
    for k, t in timing.items():
        timings[str(k)] = {
            # Scenes of a batch are optimised together: this is the batch's time per scene.
            "fit_s_per_scene": t["fit_s"] / max(1, t["scenes"]),
            "fit_s_per_batch": t["fit_s"] / max(1, t["batches"]),
            "fit_cpu_s_per_batch": t["fit_cpu_s"] / max(1, t["batches"]),
            **render_seconds_per_view(t),
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "model": "per-scene NeRF",
        "num_scenes": num_scenes,
        "image_size": [height, width],
        "view_lists": views.to_json(),
        "results": mean_view_metrics(per_view),
        "per_scene": per_scene_metrics(per_view, num_scenes),
        "timing": timings,
        "history": {str(k): _mean_history(rows) for k, rows in histories.items()},
        "config": asdict(config),
        "scenes_per_batch": scenes_per_batch,
        "probe_views": probe_views,
        "background": list(background),
        "hardware": {
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
    }


HISTORY_DIGITS = {"step": 0, "wall_s": 1, "cpu_s": 1, "train_psnr": 2}
"""Decimals of the optimisation history's columns (the probes' PSNRs: 2)."""


def history_markdown(result: dict[str, Any]) -> str:
    """One table per K: step, wall time, training PSNR and the held-out probes' PSNR."""
    parts = []
    for k, rows in sorted(result["history"].items(), key=lambda item: int(item[0])):
        keys = [
            key
            for key in ("step", "wall_s", "cpu_s", "train_psnr", "probe_psnr_id", "probe_psnr_ood")
            if any(key in row for row in rows)
        ]
        probed = [row for row in rows if any(key.startswith("probe_") for key in row)]
        scenes = rows[0].get("scenes", "?") if rows else 0
        cells = [
            [md.format_number(row.get(key), HISTORY_DIGITS.get(key, 2)) for key in keys]
            for row in probed or rows
        ]
        lines = [
            f"### K = {k}: optimisation (mean over {scenes} scenes)",
            "",
            *md.table(keys, cells),
        ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def history_figure(result: dict[str, Any], path: Path) -> None:
    """PSNR over optimisation steps and over wall time, per K (training and held-out probes)."""
    styles = {"train_psnr": "-", "probe_psnr_id": "o-", "probe_psnr_ood": "s--"}
    with figures.figure_file(path, 2, (10, 3.8)) as (figure, axes):
        history = sorted(result["history"].items(), key=lambda item: int(item[0]))
        for index, (k, rows) in enumerate(history):
            for key, style in styles.items():
                rows_with = [row for row in rows if key in row]
                label = f"K={k} {key.replace('_psnr', '').replace('probe_', 'held-out ')}"
                options = dict(color=f"C{index}", markersize=3)
                steps = [(row["step"], row[key]) for row in rows_with]
                figures.plot_line(axes[0], steps, style, label=label, **options)
                figures.plot_line(
                    axes[1], [(row["wall_s"], row[key]) for row in rows_with], style, **options
                )
        axes[0].set_xlabel("optimisation step")
        axes[1].set_xlabel("wall time (s, batch of scenes)")
        for axis in axes:
            axis.set_ylabel("PSNR (dB)")
            axis.grid(alpha=0.3)
        axes[0].legend(fontsize=6)
        figure.suptitle("per-scene NeRF: PSNR during optimisation")


def write_baseline_report(result: dict[str, Any], json_path: Path) -> tuple[Path, Path, Path]:
    """Write ``json_path`` and, beside it, ``<stem>.md`` (metrics table like ``nerfvae eval``'s and
    the optimisation history) and ``<stem>_psnr_vs_steps.png``."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(nan_to_null(result), indent=2, allow_nan=False))
    config = result["config"]
    header = (
        f"# Per-scene NeRF on {result.get('dataset', '')} ({result.get('split', '')})\n\n"
        f"{result['num_scenes']} scenes, {config['steps']} steps × {config['rays_per_scene']} rays "
        f"per scene, MLPs {config['depth']}×{config['width']}, samples "
        f"{config['sampling']['num_coarse']} + {config['sampling']['num_fine']}; "
        f"{result['hardware']['device']}, {result['hardware']['torch_threads']} threads.\n\n"
    )
    timing = "\n".join(
        f"- K = {k}: optimisation {t['fit_s_per_batch']:.1f} s per batch of up to "
        f"{result['scenes_per_batch']} scenes ({t['fit_s_per_scene']:.1f} s per scene; "
        f"{t['fit_cpu_s_per_batch']:.1f} s of CPU time per batch)"
        for k, t in sorted(result["timing"].items(), key=lambda item: int(item[0]))
    )
    table_path = json_path.with_suffix(".md")
    table_path.write_text(
        header
        + markdown_table(result)
        + "\n\n## Wall time\n\n"
        + timing
        + "\n\n## PSNR during optimisation\n\n"
        + history_markdown(result)
        + "\n"
    )
    figure_path = json_path.with_name(json_path.stem + "_psnr_vs_steps.png")
    history_figure(result, figure_path)
    return json_path, table_path, figure_path


def _by_k(entries: dict[str, Any]) -> dict[str, Any]:
    """``entries`` ordered by K, numeric K first."""
    return dict(sorted(entries.items(), key=lambda item: (not item[0].isdigit(), item[0].zfill(9))))


def merge_nerf_results(parts: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """One per-scene NeRF result from several made for different K on the same scenes: the per-K
    entries united (each K from one part only), everything else must agree (ConfigError naming the
    files and the field); ``sources`` lists the files."""
    first_path, merged = parts[0]
    merged = json.loads(json.dumps(merged))  # a deep copy: parts stay untouched
    per_k = {key: merged.get(key) or {} for key in ("results", "timing", "history", "per_scene")}
    per_k["context"] = merged["view_lists"].get("context", {})
    origin = dict.fromkeys(merged["results"], first_path)
    for path, part in parts[1:]:
        files = f"--nerf-json {first_path} and {path}"
        for key in ("split", "num_scenes", "image_size", "config", "background"):
            if part.get(key) != merged.get(key):
                raise ConfigError(
                    f"{files} differ in {key} ({merged.get(key)!r} vs {part.get(key)!r}): only "
                    "results of the same per-scene NeRF on the same scenes can be merged"
                )
        for kind in ("id_targets", "ood_targets"):
            ours, theirs = merged["view_lists"].get(kind), part["view_lists"].get(kind)
            if ours != theirs:
                raise ConfigError(
                    f"{files} score different {kind} ({ours} vs {theirs}); make both with the "
                    "same `nerfvae baseline nerf --id-targets N`"
                )
        for k in part["results"]:
            if k in origin:
                raise ConfigError(f"--nerf-json: K = {k} is in both {origin[k]} and {path}")
            origin[k] = path
            for key, entries in per_k.items():
                source = part["view_lists"] if key == "context" else part
                entries[k] = (source.get(key) or {}).get(k)
    merged.update({key: _by_k(per_k[key]) for key in ("results", "timing", "history")})
    # per-scene values (older baseline JSONs have none): kept for the K whose part has them
    per_scene = {k: values for k, values in per_k["per_scene"].items() if values}
    merged.pop("per_scene", None)
    if per_scene:
        merged["per_scene"] = _by_k(per_scene)
    merged["view_lists"]["context"] = _by_k(per_k["context"])
    # how many targets were probed is one number per file: kept only where every part agrees
    probed = {part.get("probe_views") for _, part in parts}
    merged["probe_views"] = probed.pop() if len(probed) == 1 else None
    merged["sources"] = [str(path) for path, _ in parts]
    return merged


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
