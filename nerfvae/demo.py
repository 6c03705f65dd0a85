"""The end-to-end demo: new test scenes -> inference -> renders, uncertainty, samples -> report."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from nerfvae import visualise as vis
from nerfvae.data.generate import GeneratorSettings, generate, make_settings
from nerfvae.data.loader import MultiSceneDataset
from nerfvae.evaluation.aggregate_prior import run_aggregate_prior
from nerfvae.evaluation.evaluate import evaluate, mean_training_image
from nerfvae.evaluation.learned_prior import run_learned_prior
from nerfvae.evaluation.report import inference_line, markdown_table, write_report
from nerfvae.geometry import orbit_cameras
from nerfvae.inference import RefinementConfig, check_refinable, refine_posterior
from nerfvae.models import RaySceneModel
from nerfvae.models.latent import DiagonalGaussian
from nerfvae.rendering import DensityGridConfig
from nerfvae.training.loading import load_trained_model
from nerfvae.training.warm_start import lineage, teacher_history, training_totals

DEMO_SEED = 20261128  # not the training seed, so every demo scene is new to the model
CONTEXT = [0, 1, 2]
TURNTABLE_FRAMES = 24


def training_summary(run: Path) -> dict[str, float | int | str]:
    """Steps, wall time and last validation numbers of a run, from its own logs. A run started
    from another run's weights (``--init-from``) or distilled from another run
    (``--distill-from``) counts those runs' hours too, and lists the steps of each stage, oldest
    first."""
    summary: dict[str, float | int | str] = {}
    totals = training_totals(run)
    if totals.steps > 0:
        summary["steps"] = totals.steps
    if totals.seconds > 0:
        summary["training_hours"] = round(totals.seconds / 3600, 2)
    if len(totals.stage_steps) > 1:
        summary["stage_steps"] = " + ".join(map(str, totals.stage_steps))
    validation = run / "validation.csv"
    if validation.exists():
        rows = list(csv.DictReader(validation.open()))
        if rows:
            summary.update({f"validation_{k}": v for k, v in rows[-1].items()})
    config = json.loads((run / "config.json").read_text())
    summary["conditioning"] = config["nerfvae"]["scene_function"]["conditioning"]
    summary["latent"] = config["nerfvae"]["latent"]["layout"]
    return summary


def render_scene_rows(
    model,
    scene,
    meta,
    samples: int,
    generator,
    refinement: RefinementConfig,
    density_grid: DensityGridConfig | None = None,
    amortized: DiagonalGaussian | None = None,
    refined: DiagonalGaussian | None = None,
) -> tuple[list[list[torch.Tensor]], torch.Tensor, DiagonalGaussian]:
    """Rows of a figure for one scene: context views; then for two ID and two OOD targets:
    ground truth | render | (with refinement: the refined posterior's render |) true depth (where
    the data has it) | rendered depth. Also the posterior-sample std ``[targets, H, W]``, whose
    column :func:`add_std_column` appends once the report's colour scale is known, and the final
    posterior (the refined one when ``refinement`` has steps), which the depth and std are of.

    Both depth maps share one grey scale, white at 0 and black at the farthest true depth of the
    scene's targets: the room's diagonal (``meta.far``) would leave every surface a pale grey.
    ``density_grid``: how the renders place the field's samples (:func:`vis.render_latents`).
    ``amortized`` / ``refined``: the scene's posteriors ``[1, T, C]`` from the context views
    (the encoder's, and after ``refinement``) where the caller has them already; inferred
    here otherwise."""
    images = scene.images.float() / 255.0
    num_id = scene.num_id_views
    targets = [num_id - 2, num_id - 1] + ([num_id, num_id + 1] if scene.num_ood_views > 1 else [])
    context = (images[CONTEXT][None], scene.K[CONTEXT][None], scene.c2w[CONTEXT][None])
    if amortized is None:
        amortized = model.infer(*context, generator=generator)
    size = (meta.image_height, meta.image_width)
    renders = []
    if refinement.steps > 0:
        amortized_colour = vis.render_latents(
            model, amortized.mean, scene.K[targets], scene.c2w[targets], *size,
            density_grid=density_grid,
        )["colour"][0]  # fmt: skip
        renders.append(amortized_colour)
        posterior = refined
        if posterior is None:
            posterior = refine_posterior(model, amortized, *context, refinement, generator)
    else:
        posterior = amortized
    rendered = vis.posterior_statistics(
        model, posterior, scene.K[targets], scene.c2w[targets], *size, samples, generator,
        density_grid=density_grid,
    )  # fmt: skip
    renders.append(rendered["colour"])
    true_depth = scene.depth[targets] if scene.depth is not None else None
    depth_range = float(true_depth.max()) if true_depth is not None else meta.far
    rows = [[images[i] for i in CONTEXT]]
    for j, view in enumerate(targets):
        row = [images[view], *(colour[j] for colour in renders)]
        if true_depth is not None:
            row.append(vis.depth_to_image(true_depth[j], depth_range))
        rows.append([*row, vis.depth_to_image(rendered["depth"][j], depth_range)])
    return rows, rendered["sample_std"], posterior


def refined_metrics_section(result: dict | None) -> list[str]:
    """The report's lines for the eval with test-time refinement (none without it)."""
    if result is None:
        return []
    return [
        "## Metrics with test-time refinement (`metrics_refined.json`)",
        "",
        "The encoder's posterior refined on each scene's context views (see docs/evaluation.md: it "
        "narrows the amortisation gap when the context views pin the geometry down, K >= 2).",
        "",
        inference_line(result) + markdown_table(result),
        "",
    ]


def aggregate_prior_section(aggregate: tuple | None) -> list[str]:
    """The report's lines for samples of the run's aggregate prior (none if it has none)."""
    if aggregate is None:
        return []
    info = aggregate[1]
    return [
        "## Samples of the aggregate prior (`nerfvae sample --prior aggregate`)",
        "",
        f"New scenes drawn from a Gaussian fitted to the posterior means of {info['scenes']} "
        f"training scenes ({info['components']} principal directions, "
        f"{100 * info['variance_kept']:.0f}% of their variance; docs/evaluation.md): where the "
        "model's N(0, I) prior puts mass its decoder never saw, this stays where real scenes lie.",
        "",
        "![aggregate prior samples](aggregate_prior_samples.png)",
        "",
    ]


def learned_prior_section(learned: tuple | None) -> list[str]:
    """The report's lines for samples of the run's learned prior (none if it has none)."""
    if learned is None:
        return []
    info = learned[1]
    return [
        "## New scenes from the learned prior (`nerfvae sample --prior learned`)",
        "",
        f"Each row is one scene drawn from a diffusion model fitted to the posteriors of "
        f"{info['scenes']} training scenes (`nerfvae prior fit`; docs/evaluation.md), rendered "
        "from three cameras, then its depth from the same three (near = white). The same room "
        "from every camera: the sample is one 3D scene, not three images.",
        "",
        "![learned prior samples](learned_prior_samples.png)",
        "",
    ]


def figure_sampling_line(model, density_grid: DensityGridConfig) -> str:
    """How the report's figures placed the field's samples (the metrics use the model's own)."""
    own = "the model's own sampling"
    if not (isinstance(model, RaySceneModel) and model.samples_from_grid(density_grid)):
        return f"Figures and metrics are rendered with {own}."
    return (
        f"The metrics are rendered with {own}; the figures run the field at "
        f"{density_grid.field_samples} samples per ray placed by a density grid baked from each "
        f"latent ({density_grid.resolution} nodes along the box's longest side; docs/viewer.md), "
        "which draws the same pictures many times faster (`benchmarks/density_grid.py`)."
    )


def add_std_column(rows: list[list[torch.Tensor]], std: torch.Tensor, vmax: float) -> None:
    """Append the heat map of ``std [targets, H, W]`` to the target rows (``rows[1:]``)."""
    for row, values in zip(rows[1:], std, strict=True):
        row.append(vis.heat_image(values, vmax=vmax))


def demo_data_settings(scenes: int = 4) -> GeneratorSettings:
    """New scenes from the `small` preset's distribution (what the shipped model was trained on):
    ``scenes`` test scenes, plus 12 training scenes for the mean-training-image baseline."""
    return make_settings("small", scenes=12, eval_scenes=scenes, seed=DEMO_SEED)


def run_demo(
    out: Path,
    run: Path,
    settings: GeneratorSettings,
    *,
    workers: int = 2,
    samples: int = 4,
    context_sizes: tuple[int, ...] = (1, 2, 3, 5),
    refinement: RefinementConfig | None = None,
    refine_context_sizes: tuple[int, ...] = (3,),
    progress: bool = True,
    precision: str | None = None,
    density_grid: DensityGridConfig | None = None,
) -> Path:
    """Render the scenes ``settings`` describe, evaluate the run on them, write ``out/report.md``.

    With ``refinement`` steps, the scenes are also evaluated for ``refine_context_sizes`` with the
    refined posterior (``out/metrics_refined.*``), and the figures show both renders. The
    figures place the field's samples with ``density_grid`` (default: a 64-node grid, 5 field
    samples per ray; resolution 0: the model's own sampling); the metrics never do."""
    density_grid = DensityGridConfig() if density_grid is None else density_grid
    grid = {"density_grid": density_grid}
    refinement = refinement or RefinementConfig()
    started = time.perf_counter()
    model, config, record = load_trained_model(run, precision=precision)
    check_refinable(model, refinement)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    print(f"[demo] rendering {settings.total_views} views of new scenes into {data}")
    generate(data, settings, workers=workers, progress=progress)
    test = MultiSceneDataset(data, "test")
    meta = test.meta
    print(f"[demo] evaluating {run} (step {record['step']}) on {len(test)} new test scenes")
    train_mean = mean_training_image(MultiSceneDataset(data, "train"))
    # the figures show scenes 0-2 from views 0-2 (K = 3): keep the posteriors the metrics scored
    figure_scenes = min(3, len(test))
    kept: dict[str, list[DiagonalGaussian]] = {"amortized": [], "refined": []}

    def keep(name: str):
        def on_posterior(k: int, first_scene: int, posterior: DiagonalGaussian) -> None:
            if k != len(CONTEXT):
                return
            for row in range(min(posterior.mean.shape[0], figure_scenes - first_scene)):
                rows = slice(row, row + 1)
                kept[name].append(DiagonalGaussian(posterior.mean[rows], posterior.log_std[rows]))

        return on_posterior

    result = evaluate(
        model, test, mean_train_image=train_mean,
        pixel_std=config.objective.pixel_std_end, progress=progress, context_sizes=context_sizes,
        on_posterior=keep("amortized"),
    )  # fmt: skip
    labels = {
        "model": "NeRF-VAE",
        "run": str(run),
        "checkpoint_step": record["step"],
        "dataset": str(data),
        "split": "test",
    }
    result.update(labels)
    write_report(result, out / "metrics.json")
    refined_result = None
    if refinement.steps > 0:
        print(f"[demo] evaluating again with {refinement.steps} refinement steps per posterior")
        refined_result = evaluate(
            model, test, mean_train_image=train_mean,
            pixel_std=config.objective.pixel_std_end, progress=progress,
            context_sizes=refine_context_sizes, refinement=refinement,
            on_posterior=keep("refined"),
        )  # fmt: skip
        refined_result.update(labels)
        write_report(refined_result, out / "metrics_refined.json")

    generator = torch.Generator().manual_seed(0)

    def known(name: str, index: int) -> DiagonalGaussian | None:
        return kept[name][index] if len(kept[name]) == figure_scenes else None

    rendered_scenes = [
        render_scene_rows(
            model,
            test.load_scene(index),
            meta,
            samples,
            generator,
            refinement,
            density_grid,
            amortized=known("amortized", index),
            refined=known("refined", index),
        )
        for index in range(figure_scenes)
    ]
    std_scale = vis.std_colour_scale([std for _, std, _ in rendered_scenes])
    id_std = torch.cat([std[:2].flatten() for _, std, _ in rendered_scenes]).mean()
    ood_values = torch.cat([std[2:].flatten() for _, std, _ in rendered_scenes])
    ood_std = f"{ood_values.mean():.4f}" if ood_values.numel() else "–"
    figures = []
    for index, (rows, std, _) in enumerate(rendered_scenes):
        add_std_column(rows, std, std_scale)
        path = out / f"scene_{index}.png"
        vis.write_png(path, vis.image_grid(rows))
        figures.append(path.name)
    scene = test.load_scene(0)
    id_views = (~scene.view_is_ood).nonzero().squeeze(-1)
    posterior = rendered_scenes[0][2]
    path_c2w = orbit_cameras(scene.c2w[id_views], TURNTABLE_FRAMES)
    K = scene.K[int(id_views[0])].expand(TURNTABLE_FRAMES, 3, 3)
    frames = vis.render_latents(
        model, posterior.mean, K, path_c2w, meta.image_height, meta.image_width, **grid
    )
    vis.write_video(out / "turntable.gif", frames["colour"][0])
    prior_samples = {"prior_samples.png": model.prior(4).rsample(generator)}
    aggregate = run_aggregate_prior(run, model, record)
    if aggregate is not None:
        prior_samples["aggregate_prior_samples.png"] = aggregate[0].rsample(4, generator)
    for name, latents in prior_samples.items():
        sampled = vis.render_latents(
            model, latents, scene.K[id_views[:4]], scene.c2w[id_views[:4]], meta.image_height,
            meta.image_width, **grid,
        )  # fmt: skip
        vis.write_png(out / name, vis.image_grid([list(row) for row in sampled["colour"]]))
    learned = run_learned_prior(run, model, record)
    if learned is not None:
        cameras = id_views[[0, len(id_views) // 3, 2 * len(id_views) // 3]]
        sampled = vis.render_latents(
            model, learned[0].rsample(4, generator), scene.K[cameras], scene.c2w[cameras],
            meta.image_height, meta.image_width, **grid,
        )  # fmt: skip
        rows = [
            list(colour) + [vis.depth_to_image(d, meta.far) for d in depth]
            for colour, depth in zip(sampled["colour"], sampled["depth"])
        ]
        vis.write_png(out / "learned_prior_samples.png", vis.image_grid(rows))

    summary = training_summary(run)
    lines = [
        "# nerfvae demo",
        "",
        f"Model: `{run}` — NeRF-VAE, {summary.get('conditioning')} conditioning, "
        f"{summary.get('latent')} latent, checkpoint step {record['step']}"
        + (f", {summary['training_hours']} h of training" if "training_hours" in summary else "")
        + (
            f" in stages of {summary['stage_steps']} steps (`{run}/parent`)"
            if "stage_steps" in summary
            else ""
        )
        + f". Test scenes: {len(test)} new scenes rendered now with Mitsuba (seed {settings.seed}), "
        f"{meta.image_height}×{meta.image_width}.",
        "",
        figure_sampling_line(model, density_grid),
        "",
        "## Metrics (`nerfvae eval`, view lists in docs/evaluation.md)",
        "",
        inference_line(result) + markdown_table(result),
        "",
        "![PSNR vs number of context views](metrics_psnr_vs_k.png)",
        "",
        *refined_metrics_section(refined_result),
        "## Reconstructions from 3 context views",
        "",
        "Top row: the context views. Then per target view: ground truth | NeRF-VAE render "
        "(posterior mean) | "
        + (
            f"render after {refinement.steps} refinement steps (posterior mean) | "
            if refinement.steps > 0
            else ""
        )
        + "true depth | rendered depth (expected distance along the ray; both "
        "white at 0 and black at the scene's farthest true depth) | per-pixel standard deviation "
        "over "
        f"{samples} posterior samples. The first two targets are held-out ID views, the last two "
        "OOD views (cameras unlike any seen in training)."
        + (" Depth and std are the refined posterior's." if refinement.steps > 0 else ""),
        "",
        f"Std colour scale (magma): black = 0, white = {std_scale:.4f} (the 99th percentile over "
        f"these figures). Mean std: {id_std:.4f} on the ID targets, {ood_std} on the OOD "
        "targets.",
        "",
        *[f"![scene {i}]({name})\n" for i, name in enumerate(figures)],
        "## Turntable of scene 0 (inferred from 3 views"
        + (f", {refinement.steps} refinement steps)" if refinement.steps > 0 else ")"),
        "",
        "![turntable](turntable.gif)",
        "",
        "## Prior samples (new scenes z ~ p(z), each row one scene from 4 cameras)",
        "",
        "![prior samples](prior_samples.png)",
        "",
        *aggregate_prior_section(aggregate),
        *learned_prior_section(learned),
        f"Demo wall time: {time.perf_counter() - started:.0f} s.",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def train_from_scratch(out: Path, shipped_run: Path, minutes: float, workers: int) -> Path | None:
    """Generate the `small` training set and train a new run with the shipped run's config.

    A shipped run that was started from another run's weights is retrained stage by stage, oldest
    first, each stage from the last one's weights, with the configs recorded in its ``parent/``
    folders; a stage distilled from a teacher first retrains the teacher from the history in its
    ``teacher/`` folder. ``minutes`` bounds this whole call; re-running continues where it
    stopped. Returns the final run (``out/run``), or None while a stage is unfinished."""
    data = out / "train-data"
    generate(data, make_settings("small"), workers=workers)
    deadline = time.perf_counter() + 60.0 * minutes
    return _retrain(shipped_run, out, "run", data, deadline)


def _retrain(history: Path, out: Path, name: str, data: Path, deadline: float) -> Path | None:
    """Retrain the run whose history is ``history`` as ``out/name`` (its earlier stages as
    ``out/name-stage-K``, a stage's teacher as ``out/<stage>-teacher``); None while unfinished."""
    from nerfvae.training.checkpoint import load_checkpoint
    from nerfvae.training.config import load_config
    from nerfvae.training.trainer import train

    stages = list(reversed(lineage(history)))  # oldest first
    previous: Path | None = None
    for index, stage in enumerate(stages):
        config = load_config(stage / "config.json")
        run = out / name if index == len(stages) - 1 else out / f"{name}-stage-{index + 1}"
        teacher, taught_by = "", teacher_history(stage)
        if taught_by is not None:
            retrained = _retrain(taught_by, out, f"{run.name}-teacher", data, deadline)
            if retrained is None:
                return None
            teacher = str(retrained)
        left = (deadline - time.perf_counter()) / 60.0
        if left <= 0:
            print(f"[demo] out of training time before {run.name}; re-run to continue")
            return None
        last = train(
            replace(
                config,
                data=str(data),
                run=str(run),
                time_budget_minutes=left,
                # the shipped run's wall-clock cap belongs to the machine it was trained on; the
                # retrain is bounded by the demo's own budget and ends at the schedule's last step
                run_time_budget_minutes=0.0,
                init_from=str(previous) if previous is not None else "",
                distill_from=teacher,
            )
        )
        target = config.stop_at_step or config.steps
        reached = int(load_checkpoint(last)[0]["step"]) if last is not None else 0
        if reached < target:
            print(f"[demo] {run.name} stopped at step {reached} of {target}; re-run to continue")
            return None
        previous = run
    return previous
