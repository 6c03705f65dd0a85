"""Evaluation of a trained model on a dataset split: per context size K, ID and OOD targets.

Metrics (each the mean over target views of the per-view value):
``psnr``, ``ssim``, ``mse`` on whole images; ``object_psnr`` on ground-truth object pixels only
(whole-image PSNR rewards a model that draws only floor and walls); ``depth_mae`` (expected
rendered depth vs ground-truth distance along the ray), ``surface_depth_mae`` (the same for
``depth / opacity`` on rays at least half absorbed) and the mean ``opacity``; and, beside them,
the same PSNRs of two trivial predictors: the mean training image and the mean colour of the
context views.
``nelbo_bits_per_dim`` (ID targets): negative ELBO of the target views with one posterior sample,
in bits per dimension including the 8-bit discretisation offset. Its KL term is KL(q ‖ N(0, I)),
or, with an ``elbo_prior`` (a learned prior with a bound on −log p(z)), the one-sample estimate
log q(z) + bound(z) of an upper bound on KL(q ‖ p): the ELBO with that prior in place of N(0, I).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from tqdm import tqdm

from nerfvae.data.storage import SceneRecord
from nerfvae.errors import DataError
from nerfvae.evaluation.views import ViewLists, scene_count, standard_view_lists
from nerfvae.inference import RefinementConfig, check_refinable, infer_posterior
from nerfvae.metrics import mean_view_metrics, view_metrics
from nerfvae.models import DiagonalGaussian, SceneModel
from nerfvae.models.objective import gaussian_elbo, gaussian_log_likelihood, nelbo_bits_per_dim

if TYPE_CHECKING:
    from nerfvae.training.config import TrainConfig

SCHEMA_VERSION = 1
MODEL_LABELS = {"nerfvae": "NeRF-VAE", "gqn": "GQN"}
"""How evaluation results name the model kinds (``TrainConfig.model``)."""


def scenes_to_tensors(scenes: list[SceneRecord]) -> dict[str, torch.Tensor]:
    """Stack scenes into ``images [S, V, H, W, 3]`` (float in [0, 1]), ``K``, ``c2w`` and, where
    present, ``depth [S, V, H, W]`` and ``object_mask [S, V, H, W]`` (bool)."""
    out = {
        "images": torch.stack([s.images for s in scenes]).float() / 255.0,
        "K": torch.stack([s.K for s in scenes]).float(),
        "c2w": torch.stack([s.c2w for s in scenes]).float(),
    }
    if all(s.depth is not None for s in scenes):
        out["depth"] = torch.stack([s.depth for s in scenes]).float()
    if all(s.object_mask is not None for s in scenes):
        out["object_mask"] = torch.stack([s.object_mask for s in scenes]) > 0
    return out


def mean_training_image(dataset, max_scenes: int = 200) -> torch.Tensor:
    """Mean ``[H, W, 3]`` of the ID views of up to ``max_scenes`` scenes of a (training) split."""
    total, count = None, 0
    for index in range(min(max_scenes, len(dataset))):
        scene = dataset.load_scene(index)
        views = scene.images[~scene.view_is_ood].double() / 255.0
        total = views.sum(0) if total is None else total + views.sum(0)
        count += views.shape[0]
    return (total / count).float()


def optional_mean_training_image(data: str | Path) -> torch.Tensor | None:
    """:func:`mean_training_image` of the ``train`` split of dataset directory ``data``, or None
    when the dataset has no train split (every metric but the mean-training-image predictor's
    still works)."""
    from nerfvae.data.loader import MultiSceneDataset

    try:
        return mean_training_image(MultiSceneDataset(data, "train"))
    except DataError:
        return None


def scene_batches(
    dataset, num_scenes: int, scenes_per_batch: int, first: SceneRecord
) -> Iterator[list[SceneRecord]]:
    """The first ``num_scenes`` scenes of ``dataset`` in batches of up to ``scenes_per_batch``.

    Raises:
        DataError: a scene has other numbers of ID / OOD views than ``first`` (scene 0: the view
            lists, made from its numbers, are the same for every scene).
    """
    for start in range(0, num_scenes, scenes_per_batch):
        records = [
            dataset.load_scene(i) for i in range(start, min(num_scenes, start + scenes_per_batch))
        ]
        for record in records:
            if (record.num_id_views, record.num_ood_views) != (
                first.num_id_views,
                first.num_ood_views,
            ):
                raise DataError(
                    f"scene {record.scene_id} has {record.num_id_views} ID / {record.num_ood_views} "
                    f"OOD views, unlike the first scene ({first.num_id_views} / {first.num_ood_views})"
                )
        yield records


def score_target_views(
    metrics: dict[str, list[float]],
    rendered: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    targets: list[int],
    context_colour: torch.Tensor,
    mean_train_image: torch.Tensor | None,
) -> None:
    """Append every scene's and target view's :func:`~nerfvae.metrics.view_metrics` to
    the lists in ``metrics``.

    ``rendered``: ``colour [S, T, H, W, 3]`` and ``depth [S, T, H, W]`` of the ``targets`` (view
    indices into ``batch``, a :func:`scenes_to_tensors` batch); ``context_colour [S, 3]``.
    """
    for s in range(rendered["colour"].shape[0]):
        for v, view in enumerate(targets):
            values = view_metrics(
                rendered["colour"][s, v],
                batch["images"][s, view],
                object_mask=batch["object_mask"][s, view] if "object_mask" in batch else None,
                depth=rendered["depth"][s, v] if "depth" in rendered else None,
                true_depth=batch["depth"][s, view] if "depth" in batch else None,
                opacity=rendered["opacity"][s, v] if "opacity" in rendered else None,
                context_colour=context_colour[s],
                mean_train_image=mean_train_image,
            )
            for name, value in values.items():
                metrics[name].append(value)


def per_scene_metrics(
    per_view: Mapping[tuple[int, str], Mapping[str, list[float]]], num_scenes: int
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Each metric's mean over every scene's target views, scene by scene: ``[K][kind][name]``
    lists ``num_scenes`` values in scene order (the lists of ``per_view`` hold the scenes in
    order, each with the same number of target views). The unit of paired comparisons between
    models (:mod:`nerfvae.statistics`)."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for (k, kind), metrics in per_view.items():
        entry = {}
        for name, values in metrics.items():
            if not values or len(values) % num_scenes:
                continue
            per_scene = torch.tensor(values, dtype=torch.float64).reshape(num_scenes, -1)
            entry[name] = per_scene.nanmean(dim=1).tolist()
        out.setdefault(str(k), {})[kind] = entry
    return out


def render_seconds_per_view(timing: Mapping[str, float]) -> dict[str, float]:
    """``render_s_per_id_view`` / ``render_s_per_ood_view`` from the totals
    ``render_{kind}_s`` and ``render_{kind}_views`` in ``timing`` (kinds with no view are left out)."""
    return {
        f"render_s_per_{kind}_view": timing[f"render_{kind}_s"] / timing[f"render_{kind}_views"]
        for kind in ("id", "ood")
        if timing.get(f"render_{kind}_views")
    }


class LatentDensityBound(Protocol):
    def negative_log_likelihood_bound(
        self, latents: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Upper bound on −log p(z), ``[N]`` nats, of ``latents [N, T, C]``."""
        ...


@torch.no_grad()
def evaluate(
    model: SceneModel,
    dataset,
    *,
    context_sizes: tuple[int, ...] = (1, 2, 3, 5),
    max_scenes: int | None = None,
    scenes_per_batch: int = 4,
    chunk_rays: int = 4096,
    mean_train_image: torch.Tensor | None = None,
    pixel_std: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    refinement: RefinementConfig | None = None,
    elbo_prior: LatentDensityBound | None = None,
    id_targets: int | None = None,
    on_posterior: Callable[[int, int, DiagonalGaussian], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` (a :class:`nerfvae.data.loader.MultiSceneDataset`).

    ``id_targets``: the last N ID views are the ID targets of every K (default: every ID view
    after the largest K; :func:`nerfvae.evaluation.views.standard_view_lists`).

    ``elbo_prior`` replaces N(0, I) in the ELBO's KL term (module docstring); None keeps it.

    ``refinement`` refines each posterior on its context views before rendering (see
    :mod:`nerfvae.inference`); its time counts as inference time.
    ``on_posterior(k, first_scene, posterior)`` is called with each batch's posterior over
    latents ``[scenes, T, C]`` (refined where ``refinement`` says so) from context views
    ``0..k-1``, ``first_scene`` the index of the batch's first scene: figures can then show the
    posteriors the metrics scored instead of inferring them again.
    Returns the JSON-serialisable result documented in docs/evaluation.md.
    """
    refinement = refinement or RefinementConfig()
    check_refinable(model, refinement)
    meta = dataset.meta
    height, width = meta.image_height, meta.image_width
    num_scenes = scene_count(max_scenes, dataset)
    first = dataset.load_scene(0)
    views: ViewLists = standard_view_lists(
        first.num_id_views, first.num_ood_views, context_sizes, id_targets
    )
    per_view: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    timing: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    generator = torch.Generator().manual_seed(seed)
    bar = tqdm(total=num_scenes * len(views.context), disable=not progress, desc="eval")
    first_scene = 0
    for records in scene_batches(dataset, num_scenes, scenes_per_batch, first):
        batch = scenes_to_tensors(records)
        count = len(records)
        for k, context in views.context.items():
            started = time.perf_counter()
            posterior = infer_posterior(
                model,
                batch["images"][:, context],
                batch["K"][:, context],
                batch["c2w"][:, context],
                refinement,
                generator,
            )
            timing[k]["inference_s"] += time.perf_counter() - started
            if on_posterior is not None:
                on_posterior(k, first_scene, posterior)
            context_colour = batch["images"][:, context].mean(dim=(1, 2, 3))  # [S, 3]
            for kind, targets in (("id", views.id_targets), ("ood", views.ood_targets)):
                if not targets:
                    continue
                started = time.perf_counter()
                rendered = model.render_views(
                    posterior.mean,
                    batch["K"][:, targets],
                    batch["c2w"][:, targets],
                    height,
                    width,
                    chunk_rays,
                )
                timing[k][f"render_{kind}_s"] += time.perf_counter() - started
                timing[k][f"render_{kind}_views"] += count * len(targets)
                metrics = per_view[(k, kind)]
                score_target_views(
                    metrics, rendered, batch, targets, context_colour, mean_train_image
                )
                if kind == "id":
                    # Negative ELBO of the ID targets with one posterior sample z ~ q.
                    truth = batch["images"][:, targets]
                    latent = posterior.rsample(generator)
                    sampled = model.render_views(
                        latent,
                        batch["K"][:, targets],
                        batch["c2w"][:, targets],
                        height,
                        width,
                        chunk_rays,
                    )
                    log_likelihood = gaussian_log_likelihood(sampled["colour"], truth, pixel_std)
                    dims = truth[0].numel()
                    if elbo_prior is None:
                        kl = posterior.kl_to_standard_normal()
                    else:  # one-sample estimate of E_q[log q(z) - log p(z)] <= E_q[log q + bound]
                        bound = elbo_prior.negative_log_likelihood_bound(latent, generator)
                        kl = posterior.log_prob(latent) + bound.to(latent)
                    bits = nelbo_bits_per_dim(gaussian_elbo(log_likelihood, kl, dims), dims)
                    metrics["nelbo_bits_per_dim"].extend(bits.tolist())
            timing[k]["scenes"] += count
            bar.update(count)
        first_scene += count
    bar.close()

    results = mean_view_metrics(per_view)
    per_scene = per_scene_metrics(per_view, num_scenes)
    timings = {}
    for k, t in timing.items():
        timings[str(k)] = {
            "inference_s_per_scene": t["inference_s"] / max(1, t["scenes"]),
            **render_seconds_per_view(t),
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "num_scenes": num_scenes,
        "image_size": [height, width],
        "view_lists": views.to_json(),
        "pixel_std": pixel_std,
        "refinement": refinement.to_json(),
        "elbo_prior": "standard" if elbo_prior is None else "learned",
        "results": results,
        "per_scene": per_scene,
        "timing": timings,
    }


def evaluate_run(
    loaded: tuple[SceneModel, TrainConfig, Mapping[str, Any]],
    dataset,
    *,
    run: str | Path,
    data: str | Path,
    split: str,
    **options: Any,
) -> dict[str, Any]:
    """The ``nerfvae eval`` result of a trained run: :func:`evaluate` with the run's final pixel
    std, labelled with the model, run directory, checkpoint step, dataset directory and split.

    Args:
        loaded: ``(model, config, checkpoint record)`` of the run, from
            :func:`nerfvae.training.loading.load_trained_model`.
        dataset: the split to evaluate on (a :class:`nerfvae.data.loader.MultiSceneDataset`).
        run, data, split: the run directory, dataset directory and split, as the result names them.
        options: the other keyword arguments of :func:`evaluate` (``context_sizes``,
            ``mean_train_image``, ...).
    """
    model, config, record = loaded
    result = evaluate(model, dataset, pixel_std=config.objective.pixel_std_end, **options)
    result.update(
        model=MODEL_LABELS.get(config.model, config.model),
        run=str(run),
        checkpoint_step=record["step"],
        precision=config.precision,
        dataset=str(data),
        split=split,
    )
    return result
