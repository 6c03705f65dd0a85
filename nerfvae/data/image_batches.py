"""Training batches of whole target views, for models that render an image at a time (the GQN-style
baseline) rather than individual rays.

Batch ``k`` draws its scenes, its context count and each scene's context views with the same
random stream, in the same order, as :func:`nerfvae.data.loader.make_training_batch` for the same
``(seed, k)``, so a GQN run and a NeRF-VAE run with the same seed see the same scenes and context
views at every step; only the targets differ. The targets are ``target_views`` whole ID views per
scene, taken from the same random permutation of the ID views just after the context views — views
*not* in the context whenever the scene has enough, as GQN trains on held-out queries (NeRF-VAE's
target rays also cover the context views)::

    context_images      [S, C, H, W, 3] float32 in [0, 1]
    context_K           [S, C, 3, 3]    float32
    context_c2w         [S, C, 4, 4]    float32 (OpenCV)
    target_images       [S, T, H, W, 3] float32 in [0, 1]
    target_K            [S, T, 3, 3]    float32
    target_c2w          [S, T, 4, 4]    float32
    target_object_mask  [S, T, H, W]    bool    (pixel shows an object; False without masks)
    scene_index         [S]             int64   (index in the split)

Deterministic and resumable like the ray batches: batch ``k`` depends only on ``(seed, k)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from nerfvae.data.loader import (
    MultiSceneDataset,
    batch_iterator,
    batch_seed,
    draw_scenes_and_views,
    stack_id_views,
)


def make_image_batch(
    dataset: MultiSceneDataset,
    step: int,
    *,
    scenes_per_batch: int,
    max_context_views: int,
    target_views: int,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Batch number ``step`` of the stream (see the module docstring for its contents)."""
    generator = torch.Generator().manual_seed(batch_seed(seed, step))
    num_id = dataset.num_id_views
    # Same draws, in the same order, as loader.make_training_batch.
    scene_index, context_count, view_order = draw_scenes_and_views(
        generator,
        dataset.num_scenes,
        num_id,
        scenes_per_batch=scenes_per_batch,
        max_context_views=max_context_views,
    )  # [S], C, [S, num_id]
    context_views = view_order[:, :context_count]
    # Targets follow the context in the permutation (wrapping round when views run short).
    target_positions = (context_count + torch.arange(target_views)) % num_id
    target_views_index = view_order[:, target_positions]  # [S, T]

    views = stack_id_views(dataset, scene_index, depth=False)
    images_all, K_all, c2w_all = views["images"], views["K"], views["c2w"]
    rows = torch.arange(scenes_per_batch).unsqueeze(-1)  # [S, 1]
    context, target = (rows, context_views), (rows, target_views_index)
    return {
        "context_images": images_all[context].float() / 255.0,
        "context_K": K_all[context].float(),
        "context_c2w": c2w_all[context].float(),
        "target_images": images_all[target].float() / 255.0,
        "target_K": K_all[target].float(),
        "target_c2w": c2w_all[target].float(),
        "target_object_mask": views["object_mask"][target],
        "scene_index": scene_index.long(),
    }


def image_batches(
    root: str | Path,
    split: str = "train",
    *,
    scenes_per_batch: int,
    max_context_views: int,
    target_views: int,
    seed: int,
    num_workers: int = 0,
    start_step: int = 0,
) -> Iterator[dict[str, torch.Tensor]]:
    """Infinite iterator over whole-view training batches (layout in the module docstring);
    deterministic for a ``seed`` whatever ``num_workers``, resumable at ``start_step``."""
    return batch_iterator(
        make_image_batch,
        root,
        split,
        scenes_per_batch=scenes_per_batch,
        max_context_views=max_context_views,
        target_views=target_views,
        seed=seed,
        num_workers=num_workers,
        start_step=start_step,
    )
