"""Evaluation of a trained model on a dataset split: per context size K, ID and OOD targets.

Metrics (each the mean over target views of the per-view value):
``psnr``, ``ssim``, ``mse`` on whole images; ``object_psnr`` on ground-truth object pixels only
(whole-image PSNR rewards a model that draws only floor and walls); ``depth_mae`` (expected
rendered depth vs ground-truth distance along the ray); and, beside them, the same PSNRs of two
trivial predictors: the mean training image and the mean colour of the context views.
``nelbo_bits_per_dim`` (ID targets): negative ELBO of the target views with one posterior sample,
in bits per dimension including the 8-bit discretisation offset.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from nerfvae.data.format import SceneRecord
from nerfvae.errors import DataError
from nerfvae.evaluation.metrics import mse, psnr, ssim
from nerfvae.evaluation.views import ViewLists, standard_view_lists
from nerfvae.models import SceneModel
from nerfvae.models.nerfvae import BITS_PER_8BIT_BIN, gaussian_log_likelihood

SCHEMA_VERSION = 1


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


def _nan_mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


@torch.no_grad()
def evaluate(
    model: SceneModel,
    dataset,
    *,
    context_sizes: tuple[int, ...] = (1, 2, 3, 5),
    max_scenes: int | None = None,
    scenes_per_batch: int = 4,
    chunk_rays: int = 8192,
    mean_train_image: torch.Tensor | None = None,
    pixel_std: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` (a :class:`nerfvae.data.loader.MultiSceneDataset`).

    Returns the JSON-serialisable result documented in docs/evaluation.md.
    """
    meta = dataset.meta
    height, width = meta.image_height, meta.image_width
    num_scenes = len(dataset) if max_scenes is None else min(max_scenes, len(dataset))
    first = dataset.load_scene(0)
    views: ViewLists = standard_view_lists(first.num_id_views, first.num_ood_views, context_sizes)
    per_view: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    timing: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    generator = torch.Generator().manual_seed(seed)
    bar = tqdm(total=num_scenes * len(views.context), disable=not progress, desc="eval")
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
        batch = scenes_to_tensors(records)
        count = len(records)
        for k, context in views.context.items():
            started = time.perf_counter()
            posterior = model.infer(
                batch["images"][:, context],
                batch["K"][:, context],
                batch["c2w"][:, context],
                generator=generator,
            )
            timing[k]["inference_s"] += time.perf_counter() - started
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
                truth = batch["images"][:, targets]
                metrics = per_view[(k, kind)]
                for s in range(count):
                    for v in range(len(targets)):
                        prediction, target = rendered["colour"][s, v], truth[s, v]
                        mask = (
                            batch["object_mask"][s, targets[v]] if "object_mask" in batch else None
                        )
                        metrics["psnr"].append(psnr(prediction, target))
                        metrics["ssim"].append(ssim(prediction, target))
                        metrics["mse"].append(mse(prediction, target))
                        constant = context_colour[s].expand_as(target)
                        metrics["baseline_mean_context_psnr"].append(psnr(constant, target))
                        if mean_train_image is not None:
                            metrics["baseline_mean_train_psnr"].append(
                                psnr(mean_train_image, target)
                            )
                        if mask is not None:
                            metrics["object_psnr"].append(psnr(prediction, target, mask))
                            metrics["baseline_mean_context_object_psnr"].append(
                                psnr(constant, target, mask)
                            )
                            if mean_train_image is not None:
                                metrics["baseline_mean_train_object_psnr"].append(
                                    psnr(mean_train_image, target, mask)
                                )
                        if "depth" in batch:
                            error = (rendered["depth"][s, v] - batch["depth"][s, targets[v]]).abs()
                            metrics["depth_mae"].append(float(error.mean()))
                if kind == "id":
                    # Negative ELBO of the ID targets with one posterior sample z ~ q.
                    sampled = model.render_views(
                        posterior.rsample(generator),
                        batch["K"][:, targets],
                        batch["c2w"][:, targets],
                        height,
                        width,
                        chunk_rays,
                    )
                    log_likelihood = gaussian_log_likelihood(sampled["colour"], truth, pixel_std)
                    dims = truth[0].numel()
                    elbo = log_likelihood.flatten(1).sum(1) - posterior.kl_to_standard_normal()
                    bits = -elbo / (dims * math.log(2.0)) + BITS_PER_8BIT_BIN
                    metrics["nelbo_bits_per_dim"].extend(bits.tolist())
            timing[k]["scenes"] += count
            bar.update(count)
    bar.close()

    results: dict[str, dict[str, dict[str, float]]] = {}
    for (k, kind), metrics in per_view.items():
        entry = {name: _nan_mean(values) for name, values in metrics.items()}
        entry["num_views"] = len(metrics["psnr"])
        results.setdefault(str(k), {})[kind] = entry
    timings = {}
    for k, t in timing.items():
        timings[str(k)] = {
            "inference_s_per_scene": t["inference_s"] / max(1, t["scenes"]),
            **{
                f"render_s_per_{kind}_view": t[f"render_{kind}_s"] / t[f"render_{kind}_views"]
                for kind in ("id", "ood")
                if t.get(f"render_{kind}_views")
            },
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "num_scenes": num_scenes,
        "image_size": [height, width],
        "view_lists": views.to_json(),
        "pixel_std": pixel_std,
        "results": results,
        "timing": timings,
    }
