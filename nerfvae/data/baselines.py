"""Trivial-predictor baselines of a dataset, written into its ``dataset.json``.

Every dataset (generated or imported) records what two predictors that know nothing about 3D
score on its val and test splits, so that a model's PSNR can be read against them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from nerfvae.data.storage import DatasetMeta, SceneRecord, ShardReader
from nerfvae.errors import DataError
from nerfvae.image_metrics import psnr_from_mse

CONTEXT_VIEWS_FOR_BASELINE = 3
"""Trivial-predictor baselines use the first 3 ID views of a val/test scene as its context."""


def _iterate_scenes(root: Path, meta: DatasetMeta, split: str) -> Iterator[SceneRecord]:
    for shard in meta.split(split).shards:
        reader = ShardReader(root / shard.file, meta, split)
        for local in range(reader.num_scenes):
            yield reader.read_scene(local)


def _psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) ``[N]`` of ``[N, H, W, 3]`` float images in [0, 1]."""
    return psnr_from_mse(((prediction - target) ** 2).flatten(1).mean(dim=1))


def trivial_baselines(root: Path, meta: DatasetMeta) -> dict[str, Any]:
    """PSNRs of two predictors that know nothing about 3D, on the val and test splits.

    * ``mean_training_image``: the per-pixel mean of all training ID views;
    * ``context_mean_colour``: the mean colour of the scene's context views (its first
      ``CONTEXT_VIEWS_FOR_BASELINE`` ID views), predicted for every pixel.

    Targets: the remaining ID views (``id_targets``) and the OOD views (``ood_targets``). Each
    number is the mean over target images of the per-image PSNR.
    """
    total = torch.zeros(meta.image_height, meta.image_width, 3, dtype=torch.float64)
    count = 0
    for scene in _iterate_scenes(root, meta, "train"):
        id_images = scene.images[~scene.view_is_ood].double() / 255.0
        total += id_images.sum(dim=0)
        count += len(id_images)
    if count == 0:
        raise DataError(f"{root}: no training images to compute baselines from")
    mean_image = (total / count).float()
    result: dict[str, Any] = {
        "definition": (
            "mean over target images of per-image PSNR (dB, images in [0, 1]); context = the first "
            f"{CONTEXT_VIEWS_FOR_BASELINE} ID views of each scene, id_targets = its other ID views, "
            "ood_targets = its OOD views; mean_training_image = per-pixel mean of all training ID "
            "views; context_mean_colour = mean RGB of the context views, everywhere"
        ),
        "context_views": CONTEXT_VIEWS_FOR_BASELINE,
    }
    for split in ("val", "test"):
        if split not in meta.splits or meta.splits[split].num_scenes == 0:
            continue
        if meta.splits[split].id_views <= CONTEXT_VIEWS_FOR_BASELINE:
            continue
        scores: dict[str, list[torch.Tensor]] = {}
        for scene in _iterate_scenes(root, meta, split):
            images = scene.images.float() / 255.0
            num_id = scene.num_id_views
            context = images[:CONTEXT_VIEWS_FOR_BASELINE]
            context_colour = context.reshape(-1, 3).mean(dim=0)
            groups = {"id_targets": images[CONTEXT_VIEWS_FOR_BASELINE:num_id]}
            if scene.num_ood_views:
                groups["ood_targets"] = images[num_id:]
            for group, targets in groups.items():
                scores.setdefault(f"mean_training_image/{group}", []).append(
                    _psnr(mean_image.expand_as(targets), targets)
                )
                scores.setdefault(f"context_mean_colour/{group}", []).append(
                    _psnr(context_colour.expand_as(targets), targets)
                )
        split_result: dict[str, dict[str, float]] = {}
        for key, values in scores.items():
            predictor, group = key.split("/")
            split_result.setdefault(predictor, {})[group] = round(
                float(torch.cat(values).mean()), 3
            )
        result[split] = split_result
    return result
