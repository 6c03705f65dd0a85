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

from nerfvae.data.loader import MultiSceneDataset, batch_seed


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
    num_scenes, num_id = dataset.num_scenes, dataset.num_id_views
    height, width = dataset.image_height, dataset.image_width
    # Same draws, in the same order, as loader.make_training_batch.
    if scenes_per_batch <= num_scenes:
        scene_index = torch.randperm(num_scenes, generator=generator)[:scenes_per_batch]
    else:
        scene_index = torch.randint(num_scenes, (scenes_per_batch,), generator=generator)
    context_count = int(torch.randint(1, max_context_views + 1, (1,), generator=generator))
    context_count = min(context_count, num_id)
    permutations = torch.stack(
        [torch.randperm(num_id, generator=generator) for _ in range(scenes_per_batch)]
    )  # [S, num_id]
    context_views = permutations[:, :context_count]
    # Targets follow the context in the permutation (wrapping round when views run short).
    target_positions = (context_count + torch.arange(target_views)) % num_id
    target_views_index = permutations[:, target_positions]  # [S, T]

    images, K, c2w, masks = [], [], [], []
    for index in scene_index.tolist():
        scene = dataset.load_scene(index)
        images.append(scene.images[:num_id])
        K.append(scene.K[:num_id])
        c2w.append(scene.c2w[:num_id])
        masks.append(
            scene.object_mask[:num_id] > 0
            if scene.object_mask is not None
            else torch.zeros(num_id, height, width, dtype=torch.bool)
        )
    images_all, K_all, c2w_all = torch.stack(images), torch.stack(K), torch.stack(c2w)
    masks_all = torch.stack(masks)
    rows = torch.arange(scenes_per_batch).unsqueeze(-1)  # [S, 1]
    context, target = (rows, context_views), (rows, target_views_index)
    return {
        "context_images": images_all[context].float() / 255.0,
        "context_K": K_all[context].float(),
        "context_c2w": c2w_all[context].float(),
        "target_images": images_all[target].float() / 255.0,
        "target_K": K_all[target].float(),
        "target_c2w": c2w_all[target].float(),
        "target_object_mask": masks_all[target],
        "scene_index": scene_index.long(),
    }


class ImageBatchStream(torch.utils.data.IterableDataset):
    """Infinite stream of image batches ``start_step, start_step + 1, ...`` (worker ``w`` of ``W``
    makes batches ``start_step + w + k W``; a DataLoader returns them in order)."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        scenes_per_batch: int,
        max_context_views: int,
        target_views: int,
        seed: int,
        start_step: int = 0,
    ):
        self.dataset = MultiSceneDataset(root, split)
        for name, value in (
            ("scenes_per_batch", scenes_per_batch),
            ("max_context_views", max_context_views),
            ("target_views", target_views),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.options = dict(
            scenes_per_batch=scenes_per_batch,
            max_context_views=max_context_views,
            target_views=target_views,
            seed=seed,
        )
        self.start_step = start_step

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        step = self.start_step + worker
        while True:
            yield make_image_batch(self.dataset, step, **self.options)
            step += workers


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
    stream = ImageBatchStream(
        root,
        split,
        scenes_per_batch=scenes_per_batch,
        max_context_views=max_context_views,
        target_views=target_views,
        seed=seed,
        start_step=start_step,
    )
    if num_workers <= 0:
        return iter(stream)
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=num_workers, persistent_workers=True, prefetch_factor=2
    )
    return iter(loader)
