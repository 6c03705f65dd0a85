"""Streaming a multi-scene dataset from disk: whole scenes for evaluation, ray batches for training.

* :class:`MultiSceneDataset` opens a dataset directory and one split, validates ``dataset.json``
  and the shard files (missing/truncated shards fail at once, naming the file), and reads scenes
  lazily from the memory-mapped shards, validating each scene it returns.
* :func:`training_batches` is the infinite, deterministic, resumable stream of training batches
  (works with a torch ``DataLoader`` and several worker processes; batch ``k`` depends only on
  ``(seed, k)``). :func:`batch_iterator` is that machinery (workers, resuming) for any
  batch-making function, e.g. the whole-view batches of :mod:`nerfvae.data.image_batches`.

Every batch holds, for ``S`` scenes, ``C`` context views (``C`` uniform in
``1..max_context_views``, the same for the whole batch, ID views only) and ``R`` target rays per
scene drawn uniformly from all pixels of the scene's ID views (including the context views, as
NeRF-VAE does)::

    context_images      [S, C, H, W, 3] float32 in [0, 1]
    context_K           [S, C, 3, 3]    float32
    context_c2w         [S, C, 4, 4]    float32 (OpenCV)
    target_origins      [S, R, 3]       float32
    target_directions   [S, R, 3]       float32, unit (so depth is distance along the ray)
    target_colours      [S, R, 3]       float32 in [0, 1]
    target_depth        [S, R]          float32 (0 where the dataset has no depth)
    target_object_mask  [S, R]          bool    (pixel shows an object; False without masks)
    scene_index         [S]             int64   (index in the split)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerfvae.data.storage import DatasetMeta, SceneRecord, ShardReader, read_meta
from nerfvae.errors import DataError
from nerfvae.geometry import indexed_pixel_rays, sample_ray_indices


class MultiSceneDataset(torch.utils.data.Dataset):
    """One split of a dataset directory; ``dataset[i]`` / ``load_scene(i)`` is scene ``i``.

    Args:
        root: the dataset directory (holding ``dataset.json``).
        split: ``"train"``, ``"val"`` or ``"test"``.

    Attributes:
        meta: the parsed ``dataset.json`` (image size, scene bounds, near/far, splits, ...).
        num_scenes, num_id_views, num_ood_views: of this split (views per scene).
        image_height, image_width, scene_bounds, near, far: shortcuts into ``meta``.
    """

    def __init__(self, root: str | Path, split: str):
        self.root = Path(root)
        self.split = split
        self.meta: DatasetMeta = read_meta(self.root)
        if split not in self.meta.splits:
            raise DataError(
                f"{self.root / 'dataset.json'}: the dataset has no split {split!r} (it has "
                f"{', '.join(sorted(self.meta.splits)) or 'none'})"
            )
        self.split_meta = self.meta.split(split)
        if self.split_meta.num_scenes == 0:
            raise DataError(f"{self.root / 'dataset.json'}: split {split!r} has no scenes")
        self._shard_starts = np.array([shard.first_scene for shard in self.split_meta.shards])
        self._readers: dict[int, ShardReader] = {}
        # scenes already validated in this process: the files are immutable (their sizes were
        # checked on opening), so a scene is checked once, not at every training step
        self._validated: set[int] = set()

    # shard readers hold memory maps: each process (DataLoader worker) opens its own
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_readers"] = {}
        return state

    @property
    def num_scenes(self) -> int:
        return self.split_meta.num_scenes

    @property
    def num_id_views(self) -> int:
        return self.split_meta.id_views

    @property
    def num_ood_views(self) -> int:
        return self.split_meta.ood_views

    @property
    def image_height(self) -> int:
        return self.meta.image_height

    @property
    def image_width(self) -> int:
        return self.meta.image_width

    @property
    def scene_bounds(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        return self.meta.scene_bounds

    @property
    def near(self) -> float:
        return self.meta.near

    @property
    def far(self) -> float:
        return self.meta.far

    def __len__(self) -> int:
        return self.num_scenes

    def __getitem__(self, index: int) -> SceneRecord:
        return self.load_scene(index)

    def _reader(self, shard_position: int) -> ShardReader:
        reader = self._readers.get(shard_position)
        if reader is None:
            shard = self.split_meta.shards[shard_position]
            path = self.root / shard.file
            reader = ShardReader(path, self.meta, self.split)
            if reader.first_scene != shard.first_scene or reader.num_scenes != shard.num_scenes:
                raise DataError(
                    f"{path}: holds scenes {reader.first_scene}..+{reader.num_scenes} but "
                    f"dataset.json says {shard.first_scene}..+{shard.num_scenes}"
                )
            self._readers[shard_position] = reader
        return reader

    def load_scene(self, index: int) -> SceneRecord:
        """The whole scene ``index`` (all ID then OOD views), validated."""
        if not 0 <= index < self.num_scenes:
            raise IndexError(
                f"scene {index} out of range for split {self.split!r} ({self.num_scenes})"
            )
        position = int(np.searchsorted(self._shard_starts, index, side="right") - 1)
        reader = self._reader(position)
        scene = reader.read_scene(index - reader.first_scene, validate=index not in self._validated)
        self._validated.add(index)
        return scene


def batch_seed(seed: int, step: int) -> int:
    """The RNG seed of training batch ``step``: a hash of ``(seed, step)``, so any batch can be
    made again without the ones before it (resuming at ``step`` gives the same batches)."""
    state = np.random.SeedSequence([int(seed), int(step)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def draw_scenes_and_views(
    generator: torch.Generator,
    num_scenes: int,
    num_id_views: int,
    *,
    scenes_per_batch: int,
    max_context_views: int,
) -> tuple[torch.Tensor, int, torch.Tensor]:
    """The random draws every training batch starts with, in a fixed order, so the ray batches and
    the whole-view batches (:mod:`nerfvae.data.image_batches`) of the same ``(seed, step)`` share
    their scenes and context views.

    Returns:
        scene_index: ``[S]`` scenes of the split (distinct when the split has enough).
        context_count: ``C``, uniform in ``1..max_context_views``, at most ``num_id_views``.
        view_order: ``[S, num_id_views]`` a random permutation of the ID views per scene; the
            first ``C`` are the context views.
    """
    if scenes_per_batch <= num_scenes:
        scene_index = torch.randperm(num_scenes, generator=generator)[:scenes_per_batch]
    else:
        scene_index = torch.randint(num_scenes, (scenes_per_batch,), generator=generator)
    context_count = int(torch.randint(1, max_context_views + 1, (1,), generator=generator))
    context_count = min(context_count, num_id_views)
    view_order = torch.stack(
        [torch.randperm(num_id_views, generator=generator) for _ in range(scenes_per_batch)]
    )  # [S, V]
    return scene_index, context_count, view_order


def stack_id_views(
    dataset: MultiSceneDataset, scene_index: torch.Tensor, *, depth: bool = True
) -> dict[str, torch.Tensor]:
    """The ID views of scenes ``scene_index`` ``[S]``, stacked: ``images [S, V, H, W, 3]`` uint8,
    ``K [S, V, 3, 3]``, ``c2w [S, V, 4, 4]``, ``object_mask [S, V, H, W]`` bool (False without
    masks) and, with ``depth``, ``depth [S, V, H, W]`` float32 (0 without depth)."""
    num_id, H, W = dataset.num_id_views, dataset.image_height, dataset.image_width
    views: dict[str, list[torch.Tensor]] = {"images": [], "K": [], "c2w": [], "object_mask": []}
    if depth:
        views["depth"] = []
    for index in scene_index.tolist():
        scene = dataset.load_scene(index)
        views["images"].append(scene.images[:num_id])
        views["K"].append(scene.K[:num_id])
        views["c2w"].append(scene.c2w[:num_id])
        if depth:
            views["depth"].append(
                scene.depth[:num_id] if scene.depth is not None else torch.zeros(num_id, H, W)
            )
        views["object_mask"].append(
            scene.object_mask[:num_id] > 0
            if scene.object_mask is not None
            else torch.zeros(num_id, H, W, dtype=torch.bool)
        )
    return {name: torch.stack(tensors) for name, tensors in views.items()}


def make_training_batch(
    dataset: MultiSceneDataset,
    step: int,
    *,
    scenes_per_batch: int,
    max_context_views: int,
    rays_per_scene: int,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Batch number ``step`` of the stream (see the module docstring for its contents)."""
    generator = torch.Generator().manual_seed(batch_seed(seed, step))
    num_id, H, W = dataset.num_id_views, dataset.image_height, dataset.image_width
    scene_index, context_count, view_order = draw_scenes_and_views(
        generator,
        dataset.num_scenes,
        num_id,
        scenes_per_batch=scenes_per_batch,
        max_context_views=max_context_views,
    )
    context_views = view_order[:, :context_count]  # [S, C]
    view, row, col = sample_ray_indices(
        scenes_per_batch, num_id, H, W, rays_per_scene, generator=generator
    )  # each [S, R]

    views = stack_id_views(dataset, scene_index)
    images_all, K_all, c2w_all = views["images"], views["K"], views["c2w"]  # [S, V, ...]
    scene_rows = torch.arange(scenes_per_batch).unsqueeze(-1)  # [S, 1]

    context_pick = (scene_rows, context_views)
    target_pick = (scene_rows, view, row, col)
    origins, directions = indexed_pixel_rays(K_all, c2w_all, view, row, col)
    return {
        "context_images": images_all[context_pick].float() / 255.0,
        "context_K": K_all[context_pick],
        "context_c2w": c2w_all[context_pick],
        "target_origins": origins,
        "target_directions": directions,
        "target_colours": images_all[target_pick].float() / 255.0,
        "target_depth": views["depth"][target_pick],
        "target_object_mask": views["object_mask"][target_pick],
        "scene_index": scene_index.long(),
    }


MakeBatch = Callable[..., dict[str, torch.Tensor]]
"""``make_batch(dataset, step, **options)``: batch number ``step``, a function of ``(seed, step)``
only; module-level, so DataLoader workers can unpickle it."""


class BatchStream(torch.utils.data.IterableDataset):
    """Infinite stream ``make_batch(dataset, step, **options)`` for ``step = start_step,
    start_step + 1, ...``.

    With a DataLoader of ``W`` workers, worker ``w`` makes batches ``start_step + w + k W``; the
    DataLoader returns workers' outputs round-robin, so the order is the same as with no worker.
    """

    def __init__(
        self,
        make_batch: MakeBatch,
        dataset: MultiSceneDataset,
        *,
        start_step: int = 0,
        **options: Any,
    ):
        self.make_batch = make_batch
        self.dataset = dataset
        self.options = options
        self.start_step = start_step

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        step = self.start_step + worker
        while True:
            yield self.make_batch(self.dataset, step, **self.options)
            step += workers


def batch_iterator(
    make_batch: MakeBatch,
    root: str | Path,
    split: str,
    *,
    seed: int,
    num_workers: int = 0,
    start_step: int = 0,
    **counts: int,
) -> Iterator[dict[str, torch.Tensor]]:
    """Infinite iterator over ``make_batch(dataset, step, seed=seed, **counts)`` for the split,
    from ``step = start_step``, in ``num_workers`` DataLoader workers (0: in this process); the
    same batches whatever ``num_workers``. ``counts`` (e.g. ``scenes_per_batch``) must be >= 1."""
    dataset = MultiSceneDataset(root, split)
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    stream = BatchStream(make_batch, dataset, start_step=start_step, **counts, seed=seed)
    if num_workers <= 0:
        return iter(stream)
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=True,
        prefetch_factor=2,
    )
    return iter(loader)


def training_batches(
    root: str | Path,
    split: str = "train",
    *,
    scenes_per_batch: int,
    max_context_views: int,
    rays_per_scene: int,
    seed: int,
    num_workers: int = 0,
    start_step: int = 0,
) -> Iterator[dict[str, torch.Tensor]]:
    """Infinite iterator over training batches (see the module docstring for the batch layout).

    Deterministic for a ``seed`` whatever ``num_workers``; batch ``k`` is the same whether the
    iterator started at 0 or was restarted with ``start_step=k`` (each batch's RNG is seeded from
    ``(seed, k)``).
    """
    return batch_iterator(
        make_training_batch,
        root,
        split,
        scenes_per_batch=scenes_per_batch,
        max_context_views=max_context_views,
        rays_per_scene=rays_per_scene,
        seed=seed,
        num_workers=num_workers,
        start_step=start_step,
    )
