"""Generating the built-in rooms dataset: presets, sharded rendering, resume, baselines.

A dataset is a pure function of ``(seed, settings)``: scene ``i`` of split ``s`` draws its room and
cameras from ``numpy.random.SeedSequence([seed, split_code, i])`` (separate child streams for the
room, the ID cameras and the OOD cameras, so changing a view count never changes a room), and
Mitsuba's sampler seed is fixed. So regenerating gives byte-identical shards, a killed run resumes
by rendering only the shards that are missing (each shard is written to a temporary name and
renamed when complete), and ``--workers`` only changes the speed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerfvae.data.baselines import trivial_baselines
from nerfvae.data.resume import resume_with_settings
from nerfvae.data.rooms import (
    ID_CAMERAS,
    OBJECT_ID_CAMERAS,
    OBJECT_OOD_CAMERAS,
    OBJECTS_LAYOUT,
    OOD_CAMERAS,
    CameraDistribution,
    Room,
    RoomLayout,
    camera_distributions_json,
    random_objects_scene,
    random_room,
    sample_cameras,
)
from nerfvae.data.storage import (
    META_FILENAME,
    DatasetMeta,
    DatasetWriter,
    SceneRecord,
    ShardReader,
    SplitMeta,
)
from nerfvae.errors import DataError

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class SceneKind:
    """What a preset renders: how a scene is drawn, its cameras, box, far bound and background."""

    draw: Callable[[np.random.Generator], Room]
    layout: RoomLayout
    id_cameras: CameraDistribution
    ood_cameras: CameraDistribution
    far: float
    background: tuple[float, float, float] | None
    """sRGB colour behind an open scene; None for closed rooms."""


def _farthest_box_corner(layout: RoomLayout, cameras: Sequence[CameraDistribution]) -> float:
    """An upper bound on the distance from any camera to any point of the scene box."""
    low, high = np.array(layout.scene_bounds[0]), np.array(layout.scene_bounds[1])
    reach = max(c.radius[1] + c.target_offset + np.linalg.norm(c.target) for c in cameras)
    return float(reach + np.linalg.norm(high - low))


SCENE_KINDS = {
    "rooms": SceneKind(
        lambda rng: random_room(rng, RoomLayout()),
        RoomLayout(),
        ID_CAMERAS,
        OOD_CAMERAS,
        RoomLayout().far,
        None,
    ),
    "objects": SceneKind(
        random_objects_scene,
        OBJECTS_LAYOUT,
        OBJECT_ID_CAMERAS,
        OBJECT_OOD_CAMERAS,
        _farthest_box_corner(OBJECTS_LAYOUT, (OBJECT_ID_CAMERAS, OBJECT_OOD_CAMERAS)),
        (1.0, 1.0, 1.0),
    ),
}
GENERATOR_VERSION = 1
"""Bumped whenever the rooms, cameras or rendering change, so an old directory is not resumed."""
GENERATION_FILENAME = "generation.json"
NEAR = 0.1
"""Near plane written to dataset.json: below every camera-to-surface distance the cameras allow
(cameras stay >= 0.13 m above the tallest object; the generator checks every depth against it)."""


@dataclass(frozen=True)
class SplitSettings:
    num_scenes: int
    id_views: int
    ood_views: int


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything that determines the rendered data (written to generation.json and dataset.json)."""

    preset: str
    seed: int
    resolution: int
    spp: int
    shard_size: int
    splits: dict[str, SplitSettings]
    scene_kind: str = "rooms"
    """``rooms``: closed rooms (floor, walls, 2–5 objects); ``objects``: 1–3 objects in the open
    before a white background, cameras on a sphere around them."""

    def to_json(self) -> dict[str, Any]:
        return {"generator_version": GENERATOR_VERSION, **dataclasses.asdict(self)}

    @property
    def total_views(self) -> int:
        return sum(s.num_scenes * (s.id_views + s.ood_views) for s in self.splits.values())


PRESETS: dict[str, GeneratorSettings] = {
    "tiny": GeneratorSettings(
        preset="tiny",
        seed=0,
        resolution=32,
        spp=4,
        shard_size=16,
        splits={
            "train": SplitSettings(48, 10, 0),
            "val": SplitSettings(8, 10, 5),
            "test": SplitSettings(8, 10, 5),
        },
    ),
    "small": GeneratorSettings(
        preset="small",
        seed=0,
        resolution=64,
        spp=9,
        shard_size=100,
        splits={
            "train": SplitSettings(900, 10, 0),
            "val": SplitSettings(50, 10, 5),
            "test": SplitSettings(100, 10, 5),
        },
    ),
    "objects": GeneratorSettings(
        preset="objects",
        seed=0,
        resolution=64,
        spp=9,
        shard_size=100,
        splits={
            "train": SplitSettings(600, 10, 0),
            "val": SplitSettings(20, 10, 5),
            "test": SplitSettings(50, 10, 5),
        },
        scene_kind="objects",
    ),
    "default": GeneratorSettings(
        preset="default",
        seed=0,
        resolution=64,
        spp=9,
        shard_size=100,
        splits={
            "train": SplitSettings(5000, 10, 0),
            "val": SplitSettings(100, 10, 5),
            "test": SplitSettings(100, 10, 5),
        },
    ),
}


def make_settings(
    preset: str,
    *,
    scenes: int | None = None,
    eval_scenes: int | None = None,
    views: int | None = None,
    ood_views: int | None = None,
    resolution: int | None = None,
    spp: int | None = None,
    seed: int | None = None,
    shard_size: int | None = None,
) -> GeneratorSettings:
    """A preset with overrides: ``scenes`` = training scenes, ``eval_scenes`` = val and test scenes
    each, ``views`` = ID views per scene (all splits), ``ood_views`` = OOD views per val/test scene.
    """
    if preset not in PRESETS:
        raise DataError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    base = PRESETS[preset]
    for name, value, low in (
        ("scenes", scenes, 1),
        ("eval_scenes", eval_scenes, 0),
        ("views", views, 1),
        ("ood_views", ood_views, 0),
        ("resolution", resolution, 8),
        ("spp", spp, 1),
        ("shard_size", shard_size, 1),
    ):
        if value is not None and value < low:
            raise DataError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
    splits = {}
    for name, split in base.splits.items():
        count = split.num_scenes
        if name == "train" and scenes is not None:
            count = scenes
        if name != "train" and eval_scenes is not None:
            count = eval_scenes
        splits[name] = SplitSettings(
            num_scenes=count,
            id_views=views if views is not None else split.id_views,
            ood_views=(
                ood_views if (ood_views is not None and name != "train") else split.ood_views
            ),
        )
    return GeneratorSettings(
        preset=preset,
        seed=base.seed if seed is None else seed,
        resolution=base.resolution if resolution is None else resolution,
        spp=base.spp if spp is None else spp,
        shard_size=base.shard_size if shard_size is None else shard_size,
        splits=splits,
        scene_kind=base.scene_kind,
    )


@dataclass(frozen=True)
class ShardJob:
    split: str
    shard_index: int
    first_scene: int
    num_scenes: int
    views_per_scene: int


def shard_jobs(settings: GeneratorSettings) -> list[ShardJob]:
    jobs = []
    for split, split_settings in settings.splits.items():
        views = split_settings.id_views + split_settings.ood_views
        for shard_index, first in enumerate(
            range(0, split_settings.num_scenes, settings.shard_size)
        ):
            count = min(settings.shard_size, split_settings.num_scenes - first)
            jobs.append(ShardJob(split, shard_index, first, count, views))
    return jobs


def scene_cameras(
    settings: GeneratorSettings, split: str, index: int
) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Room and cameras of one scene: ``room, K [V, 3, 3], c2w [V, 4, 4], view_is_ood [V]``."""
    split_settings = settings.splits[split]
    sequence = np.random.SeedSequence([settings.seed, SPLIT_CODES[split], index])
    room_rng, id_rng, ood_rng = (np.random.default_rng(child) for child in sequence.spawn(3))
    kind = SCENE_KINDS[settings.scene_kind]
    room = kind.draw(room_rng)
    size = settings.resolution
    K, c2w = sample_cameras(id_rng, kind.id_cameras, split_settings.id_views, size, size)
    if split_settings.ood_views > 0:
        K_ood, c2w_ood = sample_cameras(
            ood_rng, kind.ood_cameras, split_settings.ood_views, size, size
        )
        K, c2w = torch.cat([K, K_ood]), torch.cat([c2w, c2w_ood])
    view_is_ood = torch.arange(len(K)) >= split_settings.id_views
    return room, K, c2w, view_is_ood


_RENDERERS: dict[tuple[int, int], Any] = {}


def render_scene(
    settings: GeneratorSettings,
    split: str,
    index: int,
    on_view: Callable[[], None] | None = None,
) -> SceneRecord:
    """Render every view of one scene into a :class:`SceneRecord`."""
    from nerfvae.data.mitsuba import RoomRenderer, srgb_to_linear

    background = SCENE_KINDS[settings.scene_kind].background
    key = (settings.resolution, settings.spp, background)
    if key not in _RENDERERS:
        _RENDERERS.clear()
        _RENDERERS[key] = RoomRenderer(
            settings.resolution,
            settings.resolution,
            settings.spp,
            threads=1,
            background=None if background is None else srgb_to_linear(background),
        )
    renderer = _RENDERERS[key]
    room, K, c2w, view_is_ood = scene_cameras(settings, split, index)
    renderer.set_room(room)
    images, depths, masks = [], [], []
    for view in range(len(K)):
        rgb, depth, mask = renderer.render_view(K[view].numpy(), c2w[view].numpy())
        images.append(rgb)
        depths.append(depth)
        masks.append(mask)
        if on_view is not None:
            on_view()
    depth = torch.from_numpy(np.stack(depths))
    info = room.info()
    if renderer.background is not None:  # an open scene: its floor and walls are not rendered
        del info["floor"], info["walls"]
    hits = depth[depth > 0]  # 0: the ray hit nothing (an open scene's background)
    if len(hits):
        info["depth_range"] = [round(float(hits.min()), 5), round(float(hits.max()), 5)]
    return SceneRecord(
        images=torch.from_numpy(np.stack(images)),
        K=K,
        c2w=c2w,
        view_is_ood=view_is_ood,
        depth=depth,
        object_mask=torch.from_numpy(np.stack(masks)),
        objects=room.objects_json(),
        scene_id=f"{split}-{index:06d}",
        info=info,
    )


def dataset_meta(settings: GeneratorSettings) -> DatasetMeta:
    kind = SCENE_KINDS[settings.scene_kind]
    layout = kind.layout
    name = settings.preset
    if not name.startswith(settings.scene_kind):
        name = f"{settings.scene_kind}-{name}"
    return DatasetMeta(
        name=name,
        image_height=settings.resolution,
        image_width=settings.resolution,
        scene_bounds=layout.scene_bounds,
        near=NEAR,
        far=round(kind.far, 4),
        splits={
            name: SplitMeta(id_views=split.id_views, ood_views=split.ood_views)
            for name, split in settings.splits.items()
        },
        world_up="+z",
        background=kind.background,  # rooms: None, every ray ends on a wall or the floor
        mask_source="generator",
        camera_distributions=camera_distributions_json(kind.id_cameras, kind.ood_cameras),
        generator={
            **settings.to_json(),
            "renderer": "mitsuba3",
            "room_layout": dataclasses.asdict(layout),
            "depth": "distance from the camera centre along the unit pixel-centre ray",
            "object_mask": "0 = floor, walls, sky, lights or background; k = objects[k-1]",
        },
    )


# ------------------------------------------------------------------------------------ workers
_PROGRESS_QUEUE: Any = None


def _init_worker(queue: Any) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = queue
    # each worker renders with one thread; parallelism comes from the worker processes
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


def _run_job(root: str, settings: GeneratorSettings, job: ShardJob) -> ShardJob:
    """Render and write one shard (in a worker process or in-process)."""
    counter = {"views": 0}

    def on_view() -> None:
        counter["views"] += 1
        if _PROGRESS_QUEUE is not None and counter["views"] % 5 == 0:
            _PROGRESS_QUEUE.put(5)

    scenes = [
        render_scene(settings, job.split, job.first_scene + local, on_view)
        for local in range(job.num_scenes)
    ]
    writer = DatasetWriter(root, dataset_meta(settings))
    writer.write_shard(job.split, job.shard_index, job.first_scene, scenes)
    if _PROGRESS_QUEUE is not None and counter["views"] % 5:
        _PROGRESS_QUEUE.put(counter["views"] % 5)
    return job


def _check_generation_file(root: Path, settings: GeneratorSettings) -> None:
    """Start generating into ``root`` or resume there; refuse a dataset of other settings."""
    record = root / GENERATION_FILENAME
    if not record.is_file() and (
        (root / META_FILENAME).exists() or any(root.glob("*/shard-*.safetensors"))
    ):
        raise DataError(f"{root}: holds a dataset without {GENERATION_FILENAME}; refusing to mix")
    resume_with_settings(
        record,
        settings.to_json(),
        mismatch=f"{root} holds a dataset generated with different settings; use another "
        "--out directory or delete this one",
        remedy="delete it to start over",
    )


@dataclass
class GenerationReport:
    root: Path
    rendered_views: int
    skipped_views: int
    seconds: float
    meta: DatasetMeta
    views_per_second: float = field(init=False)

    def __post_init__(self) -> None:
        self.views_per_second = self.rendered_views / self.seconds if self.seconds > 0 else 0.0


def generate(
    root: str | Path,
    settings: GeneratorSettings,
    workers: int = 1,
    progress: bool = True,
) -> GenerationReport:
    """Render (or finish rendering) the dataset into ``root`` and write dataset.json.

    Finished shards are skipped; with ``workers > 1`` shards render in parallel processes.
    """
    from tqdm import tqdm

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _check_generation_file(root, settings)
    writer = DatasetWriter(root, dataset_meta(settings))
    jobs = shard_jobs(settings)
    todo = [job for job in jobs if not writer.shard_done(job.split, job.shard_index)]
    skipped_views = sum(j.num_scenes * j.views_per_scene for j in jobs if j not in todo)
    todo_views = sum(j.num_scenes * j.views_per_scene for j in todo)
    # leftovers of killed runs (temporary files never count as shards); a temporary of a writer
    # that is still running (another generate on the same directory) is left alone
    for temporary in root.glob("*/.shard-*.tmp-*"):
        if not _process_alive(temporary.name.rsplit("-", 1)[-1]):
            temporary.unlink(missing_ok=True)
    bar = tqdm(
        total=settings.total_views,
        initial=skipped_views,
        unit="view",
        desc=f"rooms-{settings.preset}",
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    start = time.perf_counter()
    try:
        if todo and workers <= 1:
            global _PROGRESS_QUEUE
            _PROGRESS_QUEUE = None
            for job in todo:
                scenes = []
                for local in range(job.num_scenes):
                    scenes.append(
                        render_scene(
                            settings, job.split, job.first_scene + local, lambda: bar.update(1)
                        )
                    )
                writer.write_shard(job.split, job.shard_index, job.first_scene, scenes)
        elif todo:
            _generate_parallel(root, settings, todo, workers, bar)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    meta = finalize_dataset(root, settings)
    return GenerationReport(root, todo_views, skipped_views, seconds, meta)


def _process_alive(pid_text: str) -> bool:
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _generate_parallel(
    root: Path, settings: GeneratorSettings, todo: list[ShardJob], workers: int, bar: Any
) -> None:
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(progress_queue,),
    ) as pool:
        pending = {pool.submit(_run_job, str(root), settings, job) for job in todo}
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()  # re-raise a worker's error here
            while True:
                try:
                    bar.update(progress_queue.get_nowait())
                except queue_module.Empty:
                    break
        while True:
            try:
                bar.update(progress_queue.get(timeout=0.1))
            except queue_module.Empty:
                break


def finalize_dataset(root: Path, settings: GeneratorSettings) -> DatasetMeta:
    """Write dataset.json (splits, shards, depth range check, baselines) once all shards exist."""
    writer = DatasetWriter(root, dataset_meta(settings))
    for job in shard_jobs(settings):
        if not writer.shard_done(job.split, job.shard_index):
            raise DataError(f"{writer.shard_path(job.split, job.shard_index)}: shard missing")
    # scene counts and shard list first (baselines read through them); dataset.json comes last
    meta = writer.scan_shards()
    depth_low, depth_high = math.inf, 0.0
    for split, split_meta in meta.splits.items():
        for shard in split_meta.shards:
            for info in ShardReader(root / shard.file, meta, split).scene_infos:
                if "depth_range" in info:  # absent: an open scene whose views hit nothing
                    depth_low = min(depth_low, info["depth_range"][0])
                    depth_high = max(depth_high, info["depth_range"][1])
    if depth_low < meta.near or depth_high > meta.far:
        raise DataError(
            f"{root}: rendered depths span [{depth_low}, {depth_high}], outside near/far "
            f"[{meta.near}, {meta.far}] (generator bug)"
        )
    generator = dict(meta.generator)
    generator["measured_depth_range"] = [depth_low, depth_high]
    baselines = trivial_baselines(root, meta)
    return writer.finalize(generator=generator, baselines=baselines)
