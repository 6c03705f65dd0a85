"""Convert a dataset in a standard format into nerfvae's format (``dataset.json`` + shards).

Splits. nerfvae splits hold whole scenes, each with ``id_views`` in-distribution views followed by
``ood_views`` out-of-distribution views. Two ways to get there (``split_by``):

* ``scenes`` — every scene goes, with all its views as ID views, to one split: the one the format
  gives (SRN's ``*_train/_val/_test`` directories, GQN's ``train/`` and ``test/``) or else one drawn
  by ``split_fractions`` (seeded, deterministic). ``val_scenes`` moves that many training scenes to
  ``val`` when the source has no validation split (GQN).
* ``views`` — for formats that split the views of each scene (NeRF-synthetic's
  ``transforms_{train,val,test}.json``, nerfstudio's filename lists or every ``holdout_every``-th
  frame): ``train`` holds each scene with its training views; ``val`` and ``test`` hold the same
  scene with its training views as ID views (the context a model may see) followed by that split's
  held-out views, flagged ``view_is_ood`` so evaluation scores them as targets. Such "OOD" views are
  *held-out*, not from a different camera distribution; ``dataset.json`` says so.

``auto`` uses ``views`` for a single NeRF-synthetic / nerfstudio scene and ``scenes`` otherwise.

Every scene of a split needs the same view counts: the smallest count of the split is used (or
``views``), and longer scenes are cut, with a notice. Images are composited on ``background`` and
resized (area filter) to ``image_size``; intrinsics are rescaled to match. Images with an alpha
channel give an object mask (alpha > 0.5 → object 1). Nothing here has depth.

Scene bounds and near/far come from the format when it gives them (NeRF-synthetic: near 2, far 6,
box ±1.5; pixelNeRF's SRN cars/chairs near/far), else from the cameras
(:func:`~nerfvae.data.importers.common.estimate_bounds`); options override them. They are printed.

The import is resumable: ``import.json`` records the options, finished shards are skipped when the
same command is re-run, and ``dataset.json`` is written last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from nerfvae.data.baselines import trivial_baselines
from nerfvae.data.importers.blender import looks_like_nerf_synthetic, read_blender, read_nerfstudio
from nerfvae.data.importers.common import (
    Bounds,
    SourceScene,
    SourceView,
    estimate_bounds,
    prepare_image,
    scale_intrinsics,
)
from nerfvae.data.importers.gqn import GQN_DATASETS, axis_miss_distance, scan_gqn
from nerfvae.data.importers.srn import KNOWN_NEAR_FAR, read_srn
from nerfvae.data.resume import resume_with_settings
from nerfvae.data.storage import (
    META_FILENAME,
    DatasetMeta,
    DatasetWriter,
    SceneRecord,
    ShardReader,
    SplitMeta,
    check_image_size,
    check_ray_range,
    check_scene_box,
    parse_colour,
)
from nerfvae.errors import ConfigError, DataError

FORMATS = ("blender", "nerfstudio", "srn", "gqn")
SPLIT_ORDER = ("train", "val", "test")
IMPORT_FILENAME = "import.json"
_SHARD_TARGET_BYTES = 64 << 20
NERF_SYNTHETIC_BOUNDS = Bounds(np.full(3, -1.5), np.full(3, 1.5), 2.0, 6.0, "known")

CONVENTIONS = {
    "blender": "OpenGL camera-to-world (transform_matrix) converted with opengl_to_opencv; "
    "fx = W/2 / tan(camera_angle_x/2), principal point at the image centre (fl_x, fl_y, cx, cy "
    "used as given where the file or a frame has them); world +z up",
    "nerfstudio": "OpenGL camera-to-world converted with opengl_to_opencv; fl_x, fl_y, cx, cy used "
    "as given (pixel centres at +0.5, as nerfstudio casts rays), per-frame values override",
    "srn": "SRN poses are OpenCV camera-to-world and used as stored (pixelNeRF's diag(1,-1,-1,1) "
    "converts them to OpenGL for its own renderer); K = [[f,0,cx],[0,f,cy],[0,0,1]]",
    "gqn": "camera (x, y, z, yaw, pitch): world +z up, yaw counter-clockwise about +z from +x, "
    "pitch up positive; forward = (cos p cos y, cos p sin y, sin p), no roll; square pinhole with "
    "the given field of view, principal point at the centre",
}


@dataclass
class ImportOptions:
    """How to convert (the options of ``nerfvae data import``; each docstring is its ``--help``)."""

    image_size: tuple[int, int] | None = None
    """Resize every image to HEIGHT WIDTH (area filter; intrinsics are rescaled). Default: keep the
    source size, which must then be the same for all images."""
    background: str = "white"
    """Colour composited under transparent pixels: white, black, grey, #rrggbb or r,g,b in [0, 1]."""
    split_by: Literal["auto", "views", "scenes"] = "auto"
    """views: every scene in every split, the source's held-out views (test/val) stored as the
    scene's OOD views after its training views; scenes: whole scenes per split (the format's split,
    else split-fractions). auto: views for one blender/nerfstudio scene, scenes otherwise."""
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Train, val, test fractions for scenes the format does not assign to a split."""
    holdout_every: int = 8
    """nerfstudio without train/val/test_filenames: every N-th frame is a held-out test view."""
    views: int | None = None
    """ID views per scene (the first N). Default: the smallest view count in each split."""
    max_scenes: int | None = None
    """Import at most this many scenes per split (handy for the large GQN sets)."""
    val_scenes: int | None = None
    """If the source has no val split: move this many training scenes, drawn with --seed, to val
    (recorded in dataset.json). Default: 5% of them (1 to 100) when there are at least 10; 0: none
    (training then runs without validation and says so)."""
    scenes_per_shard: int = 0
    """Scenes per shard file; 0 chooses about 64 MiB per shard."""
    near: float | None = None
    """Override the near ray distance."""
    far: float | None = None
    """Override the far ray distance."""
    scene_bounds: tuple[float, float, float, float, float, float] | None = None
    """Override the scene box: XMIN YMIN ZMIN XMAX YMAX ZMAX."""
    masks: bool = True
    """Make object masks (--no-masks: don't): alpha > 0.5 where the images have an alpha channel;
    otherwise, for object datasets (blender, srn), the pixels whose colour differs from the
    background by more than 6% in some channel (so an object coloured like the background loses
    those pixels from its mask)."""
    gqn_dataset: str | None = None
    """GQN dataset name when the path does not contain it (e.g. rooms_ring_camera)."""
    gqn_fov_degrees: float = 50.0
    """GQN horizontal = vertical field of view in degrees (unpublished; 50 as in tf-gqn)."""
    seed: int = 0
    """Seed of the scene split by fractions."""
    name: str | None = None
    """Dataset name written to dataset.json (default: the source directory's name)."""


@dataclass
class _Planned:
    """A scene to write: where it comes from and which of its view groups go where."""

    scene_id: str
    source: Any  # SourceScene or a lazy reference with .load() -> SourceScene
    id_groups: tuple[str, ...] | None  # None: all views in group order
    ood_group: str | None = None


@dataclass
class _SplitPlan:
    scenes: list[_Planned]
    id_views: int
    ood_views: int = 0


@dataclass
class ImportSummary:
    """What an import wrote."""

    root: Path
    meta: DatasetMeta
    bounds: Bounds
    notes: list[str] = field(default_factory=list)


def _load(source: Any) -> SourceScene:
    return source if isinstance(source, SourceScene) else source.load()


def _assign_splits(
    scenes: Sequence[Any], options: ImportOptions, notes: list[str], facts: dict[str, Any]
) -> dict[str, list[Any]]:
    """Whole scenes to splits: the format's split where given, else by seeded fractions; a val
    split carved from training scenes is recorded in ``facts["val_from_train"]``."""
    assigned: dict[str, list[Any]] = {split: [] for split in SPLIT_ORDER}
    unassigned = []
    for scene in scenes:
        if scene.split is None:
            unassigned.append(scene)
        elif scene.split in assigned:
            assigned[scene.split].append(scene)
        else:
            raise DataError(f"scene {scene.scene_id}: unknown split {scene.split!r}")
    if unassigned:
        fractions = np.asarray(options.split_fractions, dtype=np.float64)
        if fractions.shape != (3,) or (fractions < 0).any() or fractions.sum() <= 0:
            raise ConfigError(f"split_fractions must be three non-negative numbers: {fractions}")
        fractions = fractions / fractions.sum()
        unassigned.sort(key=lambda scene: scene.scene_id)
        order = np.random.default_rng(options.seed).permutation(len(unassigned))
        count = len(unassigned)
        n_val = math.floor(fractions[1] * count + 0.5)
        n_test = math.floor(fractions[2] * count + 0.5)
        n_val, n_test = (0, 0) if count - n_val - n_test < 1 else (n_val, n_test)
        for rank, index in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            assigned[split].append(unassigned[index])
        for split in SPLIT_ORDER:
            assigned[split].sort(key=lambda scene: scene.scene_id)
    if not assigned["val"]:
        train_count = len(assigned["train"])
        moved = min(carved_val_scenes(train_count, options.val_scenes), train_count - 1)
        if moved > 0:
            order = np.random.default_rng(options.seed).permutation(len(assigned["train"]))
            chosen = set(order[:moved].tolist())
            train = assigned["train"]
            assigned["val"] = [scene for i, scene in enumerate(train) if i in chosen]
            assigned["train"] = [scene for i, scene in enumerate(train) if i not in chosen]
            notes.append(
                f"the source has no val split: moved {moved} training scenes (drawn with seed "
                f"{options.seed}) to val"
            )
            facts["val_from_train"] = {"scenes": moved, "seed": options.seed}
    return assigned


def carved_val_scenes(train_scenes: int, requested: int | None) -> int:
    """How many of ``train_scenes`` become val scenes when the source has no val split: the
    ``requested`` number, or by default 5% (1 to 100) of at least 10 training scenes."""
    if requested is not None:
        if requested < 0:
            raise ConfigError(f"val_scenes must be >= 0, got {requested}")
        return requested
    if train_scenes < 10:
        return 0
    return max(1, min(100, round(0.05 * train_scenes)))


def _plan(
    scenes: Sequence[Any],
    split_by: str,
    options: ImportOptions,
    notes: list[str],
    facts: dict[str, Any],
) -> dict[str, _SplitPlan]:
    plans: dict[str, _SplitPlan] = {}
    if split_by == "views":
        for scene in scenes:
            if "train" not in scene.view_groups:
                raise ConfigError(f"scene {scene.scene_id} has no training views to split by views")
        held_out = [
            split for split in ("val", "test") if all(split in s.view_groups for s in scenes)
        ]
        train_count = min(len(scene.view_groups["train"]) for scene in scenes)
        if options.views is not None:
            train_count = min(train_count, options.views)
        plans["train"] = _SplitPlan(
            [_Planned(f"train-{s.scene_id}", s, ("train",)) for s in scenes], train_count
        )
        for split in held_out:
            ood_count = min(len(scene.view_groups[split]) for scene in scenes)
            plans[split] = _SplitPlan(
                [_Planned(f"{split}-{s.scene_id}", s, ("train",), split) for s in scenes],
                train_count,
                ood_count,
            )
        for split, plan in plans.items():
            group_counts = {len(s.view_groups[plan.scenes[0].ood_group or "train"]) for s in scenes}
            if len(group_counts) > 1 or len({len(s.view_groups["train"]) for s in scenes}) > 1:
                notes.append(
                    f"{split}: scenes have different view counts; each is cut to the "
                    f"smallest ({plan.id_views} ID + {plan.ood_views} held-out)"
                )
    else:
        for split, members in _assign_splits(scenes, options, notes, facts).items():
            if options.max_scenes is not None:
                members = members[: options.max_scenes]
            if not members:
                continue
            planned = [_Planned(f"{split}-{s.scene_id}", s, None) for s in members]
            if all(isinstance(s, SourceScene) for s in members):
                counts = [len(s.all_views()) for s in members]
                id_views = min(counts)
                if options.views is not None:
                    id_views = min(id_views, options.views)
                if len(set(counts)) > 1:
                    notes.append(
                        f"{split}: scenes have {min(counts)}..{max(counts)} views; each is "
                        f"cut to its first {id_views}"
                    )
            else:
                id_views = (
                    options.views
                    or getattr(members[0], "sequence_size", None)
                    or len(_load(members[0]).all_views())
                )
            plans[split] = _SplitPlan(planned, id_views)
    if options.max_scenes is not None and split_by == "views":
        for plan in plans.values():
            plan.scenes = plan.scenes[: options.max_scenes]
    return {split: plans[split] for split in SPLIT_ORDER if split in plans}


def _select_views(
    planned: _Planned, plan: _SplitPlan
) -> tuple[SourceScene, list[SourceView], list[SourceView]]:
    scene = _load(planned.source)
    if planned.id_groups is None:
        id_pool = scene.all_views()
    else:
        id_pool = [view for group in planned.id_groups for view in scene.view_groups.get(group, [])]
    ood_pool = scene.view_groups.get(planned.ood_group, []) if planned.ood_group else []
    if len(id_pool) < plan.id_views or len(ood_pool) < plan.ood_views:
        raise DataError(
            f"{scene.info.get('source', scene.scene_id)}: scene has {len(id_pool)} views "
            f"(+{len(ood_pool)} held out) but its split needs {plan.id_views} "
            f"(+{plan.ood_views}); pass --views to use fewer"
        )
    return scene, id_pool[: plan.id_views], ood_pool[: plan.ood_views]


def _materialize(
    planned: _Planned,
    plan: _SplitPlan,
    out_size: tuple[int, int],
    background: tuple[float, float, float],
    mask_source: str | None,
) -> SceneRecord:
    """Load, composite and resize a planned scene's images into a SceneRecord."""
    scene, id_views, ood_views = _select_views(planned, plan)
    views = id_views + ood_views
    images, masks, Ks, poses = [], [], [], []
    for view in views:
        rgb, foreground = prepare_image(view.load(), view.where, view.size, out_size, background)
        if mask_source == "alpha":
            if foreground is None:
                raise DataError(
                    f"{view.where}: image has no alpha channel but the dataset's first image has "
                    "one; pass --no-masks to import without object masks"
                )
            masks.append(foreground.astype(np.uint8))
        elif mask_source == "background":
            masks.append(differs_from_background(rgb, background).astype(np.uint8))
        images.append(rgb)
        Ks.append(scale_intrinsics(view.K, view.size, out_size))
        poses.append(view.c2w)
    ood = torch.zeros(len(views), dtype=torch.bool)
    ood[len(id_views) :] = True
    info = {key: value for key, value in scene.info.items() if key != "source"}
    info["source"] = scene.info.get("source", "")
    info["source_scene"] = scene.scene_id
    return SceneRecord(
        images=torch.from_numpy(np.stack(images)),
        K=torch.from_numpy(np.stack(Ks).astype(np.float32)),
        c2w=torch.from_numpy(np.stack(poses).astype(np.float32)),
        view_is_ood=ood,
        object_mask=torch.from_numpy(np.stack(masks)) if mask_source else None,
        objects=[{"shape": "unknown", "mask_source": mask_source}] if mask_source else [],
        scene_id=planned.scene_id,
        info=info,
    )


BACKGROUND_MASK_THRESHOLD = 0.06
"""A pixel belongs to the object when some channel differs from the background by more than this
(colours in [0, 1]): above JPEG-like noise and the anti-aliased fringe, below any real object."""


def differs_from_background(rgb: np.ndarray, background: tuple[float, float, float]) -> np.ndarray:
    """``[H, W]`` bool: the pixels of ``rgb [H, W, 3]`` uint8 that are not the background."""
    difference = np.abs(rgb.astype(np.float32) / 255.0 - np.asarray(background, np.float32))
    return difference.max(axis=-1) > BACKGROUND_MASK_THRESHOLD


def _read_source(
    format: str, src: Path, options: ImportOptions, notes: list[str]
) -> tuple[list[Any], dict[str, Any]]:
    """The source's scenes (loaded, or lazy references for GQN) and facts for dataset.json."""
    facts: dict[str, Any] = {}
    if format == "blender":
        scenes: list[Any] = read_blender(src, notes)
    elif format == "nerfstudio":
        scenes = read_nerfstudio(src, options.holdout_every, notes)
    elif format == "srn":
        scenes = read_srn(src)
        facts["category"] = scenes[0].info.get("category") if scenes else None
    elif format == "gqn":
        fov = options.gqn_fov_degrees
        if not isinstance(fov, int | float) or not 0 < fov < 180:
            raise ConfigError(f"gqn_fov_degrees must be in (0, 180), got {fov!r}")
        # Scanning stops early per split when --max-scenes is given (GQN sets are large).
        name, scenes = scan_gqn(
            src, options.gqn_dataset, options.gqn_fov_degrees, options.max_scenes
        )
        facts["gqn_dataset"] = name
        facts["gqn_fov_degrees"] = options.gqn_fov_degrees
        if name is None:
            notes.append(
                "GQN dataset not recognised from the path: image and sequence size are "
                "read from the data and bounds use the automatic layout"
            )
    else:
        raise ConfigError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if not scenes:
        raise DataError(f"{src}: no scenes found")
    return scenes, facts


def _layout(format: str, facts: dict[str, Any]) -> str:
    if format == "gqn" and facts.get("gqn_dataset") in GQN_DATASETS:
        return GQN_DATASETS[facts["gqn_dataset"]].layout
    return "object-centric" if format in ("blender", "srn") else "auto"


def _known_bounds(format: str, scenes: Sequence[Any], facts: dict[str, Any]) -> Bounds | None:
    if format == "blender" and looks_like_nerf_synthetic(scenes):
        return NERF_SYNTHETIC_BOUNDS
    return None


def _scene_bounds(
    format: str, facts: dict[str, Any], K: np.ndarray, c2w: np.ndarray, size: tuple[int, int]
) -> Bounds:
    bounds = estimate_bounds(K, c2w, size, _layout(format, facts))
    if format == "srn" and facts.get("category") in KNOWN_NEAR_FAR:
        near, far = KNOWN_NEAR_FAR[facts["category"]]
        centre = 0.5 * (bounds.box_min + bounds.box_max)
        half = 0.5 * (far - near)
        bounds = Bounds(centre - half, centre + half, near, far, "known near/far (pixelNeRF)")
    return bounds


def _output_size(
    scenes: Sequence[Any], plans: dict[str, _SplitPlan], options: ImportOptions
) -> tuple[int, int]:
    if options.image_size is not None:  # checked by _check_options
        height, width = options.image_size
        return int(height), int(width)
    first_plan = next(iter(plans.values()))
    first_view = _select_views(first_plan.scenes[0], first_plan)[1][0]
    size = first_view.size
    for scene in scenes:
        if not isinstance(scene, SourceScene):
            break  # lazily read formats are checked as each image is decoded
        for view in scene.all_views():
            if view.size != size:
                raise DataError(
                    f"{view.where}: image size mismatch: {view.size[0]}x{view.size[1]} (HxW) but "
                    f"{first_view.where} is {size[0]}x{size[1]}; pass --image-size H W to resize all"
                )
    return size


def _auto_scenes_per_shard(
    plans: dict[str, _SplitPlan], size: tuple[int, int], with_mask: bool
) -> int:
    views = max(plan.id_views + plan.ood_views for plan in plans.values())
    scene_bytes = views * size[0] * size[1] * (3 + (1 if with_mask else 0)) + views * 100
    return max(1, min(1024, _SHARD_TARGET_BYTES // scene_bytes))


def _prepare_out(out: Path, fingerprint: dict[str, Any], overwrite: bool) -> None:
    """Create ``out`` or resume into it; refuse a finished or differently configured import.

    Only a directory that is empty or holds a nerfvae dataset/import is ever written into, and
    ``overwrite`` deletes only the files an import writes there.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory; choose another --out")
    record = out / IMPORT_FILENAME
    holds_import = record.is_file() or (out / META_FILENAME).is_file()
    if out.is_dir() and any(out.iterdir()) and not holds_import:
        raise DataError(
            f"{out}: directory is not empty and holds no nerfvae import; choose another --out"
        )
    if overwrite and holds_import:
        for split in SPLIT_ORDER:
            for shard in (out / split).glob("shard-*.safetensors"):
                shard.unlink()
        for path in (out / META_FILENAME, record):
            path.unlink(missing_ok=True)
    if (out / META_FILENAME).exists():
        raise DataError(
            f"{out / META_FILENAME}: {out} already holds a finished dataset; pass "
            "--overwrite to replace it"
        )
    resume_with_settings(
        record,
        fingerprint,
        mismatch=f"an unfinished import with other options is in {out}; "
        "re-run it with the same options or pass --overwrite",
        remedy="pass --overwrite to start over",
    )


def _check_options(options: ImportOptions) -> None:
    """ConfigError naming the option for values that would otherwise fail deep inside the import
    (an index error, an out-of-memory resize) or only after every shard is written (near/far and
    the scene box, checked when dataset.json is finalised)."""
    if options.image_size is not None:
        height, width = options.image_size
        try:  # the one check of image sizes, so --image-size cannot exceed what a reader accepts
            check_image_size(height, width, "image_size")
        except DataError as error:
            raise ConfigError(str(error)) from None
    for name in ("views", "max_scenes"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    for name in ("scenes_per_shard", "holdout_every"):
        if getattr(options, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(options, name)}")
    try:  # the dataset's own checks, so an import never writes shards it would then refuse
        check_ray_range(options.near, options.far, "--near/--far")
        if options.scene_bounds is not None:
            if len(options.scene_bounds) != 6:
                raise DataError(
                    "--scene-bounds: need six numbers XMIN YMIN ZMIN XMAX YMAX ZMAX, got "
                    f"{len(options.scene_bounds)}"
                )
            check_scene_box(options.scene_bounds[:3], options.scene_bounds[3:], "--scene-bounds")
    except DataError as error:
        raise ConfigError(str(error)) from None


def import_dataset(
    format: str,
    src: str | Path,
    out: str | Path,
    options: ImportOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> ImportSummary:
    """Import ``src`` (in ``format``: blender, nerfstudio, srn or gqn) into a nerfvae dataset.

    Returns the written :class:`~nerfvae.data.storage.DatasetMeta` with the bounds used. Raises
    DataError naming the file on bad input, ConfigError on bad options.
    """
    from tqdm import tqdm

    options = options or ImportOptions()
    src, out = Path(src), Path(out)
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if options.split_by not in ("auto", "views", "scenes"):
        raise ConfigError(f"split_by must be auto, views or scenes, got {options.split_by!r}")
    _check_options(options)
    background = parse_colour(options.background)
    notes: list[str] = []
    scenes, facts = _read_source(format, src, options, notes)
    split_by = options.split_by
    if split_by == "auto":
        split_by = "views" if format in ("blender", "nerfstudio") and len(scenes) == 1 else "scenes"
    if split_by == "views" and format not in ("blender", "nerfstudio"):
        raise ConfigError(f"--split-by views needs per-view splits; {format} splits whole scenes")
    plans = _plan(scenes, split_by, options, notes, facts)
    if "train" not in plans:
        raise DataError(
            f"{src}: no training scenes (found only {', '.join(plans) or 'none'}); a dataset needs "
            "a train split"
        )
    out_size = _output_size(scenes, plans, options)
    first_plan = next(iter(plans.values()))
    first_view = _select_views(first_plan.scenes[0], first_plan)[1][0]
    has_alpha = (
        prepare_image(
            first_view.load(), first_view.where, first_view.size, first_view.size, background
        )[1]
        is not None
    )
    object_centric = format in ("blender", "srn")
    mask_source = None
    if options.masks:
        mask_source = "alpha" if has_alpha else "background" if object_centric else None
    # the background shows behind open scenes: objects, and any images composited from alpha
    open_background = background if object_centric or has_alpha else None
    with_mask = mask_source is not None
    per_shard = options.scenes_per_shard or _auto_scenes_per_shard(plans, out_size, with_mask)

    fingerprint = {
        "format": format,
        "source": str(src.resolve()),
        "options": asdict(options),
        "split_by": split_by,
    }
    _prepare_out(out, fingerprint, overwrite)

    known = _known_bounds(format, scenes, facts)
    meta = DatasetMeta(
        name=options.name or src.resolve().name,
        image_height=out_size[0],
        image_width=out_size[1],
        scene_bounds=((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),  # replaced in finalize
        near=0.0,
        far=1.0,
        splits={s: SplitMeta(id_views=p.id_views, ood_views=p.ood_views) for s, p in plans.items()},
        has_depth=False,
        has_object_mask=with_mask,
        background=open_background,
        mask_source=mask_source,
    )
    writer = DatasetWriter(out, meta)
    bounds: Bounds | None = None
    up_sum = np.zeros(3)
    all_c2w: list[np.ndarray] = []
    total = sum(len(plan.scenes) for plan in plans.values())
    bar = tqdm(total=total, unit="scene", desc=f"import {format}", disable=not progress)
    for split, plan in plans.items():
        for shard_index, first in enumerate(range(0, len(plan.scenes), per_shard)):
            chunk = plan.scenes[first : first + per_shard]
            if writer.shard_done(split, shard_index):  # finished by an earlier, interrupted run
                reader = ShardReader(writer.shard_path(split, shard_index))
                done = [reader.read_scene(i, validate=False) for i in range(reader.num_scenes)]
                cameras = [(record.K, record.c2w) for record in done]
                bar.update(len(chunk))
            else:
                records = []
                for planned in chunk:
                    records.append(_materialize(planned, plan, out_size, background, mask_source))
                    bar.update(1)
                writer.write_shard(split, shard_index, first, records)
                cameras = [(record.K, record.c2w) for record in records]
            for K_tensor, c2w_tensor in cameras:
                K, c2w = K_tensor.double().numpy(), c2w_tensor.double().numpy()
                scene_bounds = known or _scene_bounds(format, facts, K, c2w, out_size)
                bounds = scene_bounds if bounds is None else bounds.union(scene_bounds)
                up_sum -= c2w[:, :3, 1].sum(axis=0)
                if format == "gqn":
                    all_c2w.append(c2w)
    bar.close()
    assert bounds is not None
    if options.scene_bounds is not None:
        bounds = Bounds(
            np.asarray(options.scene_bounds[:3], np.float64),
            np.asarray(options.scene_bounds[3:], np.float64),
            bounds.near,
            bounds.far,
            "override",
        )
    if options.near is not None:
        bounds.near = float(options.near)
    if options.far is not None:
        bounds.far = float(options.far)
    axis = int(np.abs(up_sum).argmax())
    world_up = ("+" if up_sum[axis] >= 0 else "-") + "xyz"[axis]
    generator_info: dict[str, Any] = {
        "importer": "nerfvae data import",
        "format": format,
        "source": str(src.resolve()),
        "split_by": split_by,
        "camera_convention": CONVENTIONS[format],
        "bounds_from": bounds.how,
        "options": fingerprint["options"],
        "notes": notes,
        **facts,
    }
    if format == "gqn" and all_c2w:
        miss = axis_miss_distance(np.concatenate(all_c2w))
        generator_info["optical_axis_miss_from_z_axis"] = {
            "median": float(np.median(miss)),
            "p95": float(np.percentile(miss, 95)),
        }
    camera_distributions = {
        "id": "source views" if split_by == "scenes" else "the source's training views",
        "ood": "none"
        if split_by == "scenes"
        else (
            "held-out views of the same scene from the source's val/test view split (same "
            "camera distribution as the source defines it, not out-of-distribution cameras)"
        ),
    }
    writer.meta.scene_bounds = (
        tuple(float(v) for v in bounds.box_min),  # type: ignore[assignment]
        tuple(float(v) for v in bounds.box_max),
    )
    writer.meta.near, writer.meta.far = float(bounds.near), float(bounds.far)
    baselines = trivial_baselines(out, writer.scan_shards())  # reads the shards just written
    meta = writer.finalize(
        world_up=world_up,
        generator=generator_info,
        camera_distributions=camera_distributions,
        baselines=baselines,
    )
    for note in notes:
        log(f"note: {note}")
    lo, hi = meta.scene_bounds
    log(
        f"scene box ({lo[0]:.3g}, {lo[1]:.3g}, {lo[2]:.3g}) .. ({hi[0]:.3g}, {hi[1]:.3g}, "
        f"{hi[2]:.3g}), near {meta.near:.3g}, far {meta.far:.3g} ({bounds.how}); world up {world_up}"
    )
    if "optical_axis_miss_from_z_axis" in generator_info:
        miss = generator_info["optical_axis_miss_from_z_axis"]
        log(
            f"GQN yaw check: optical axes pass the vertical axis through the origin at median "
            f"{miss['median']:.3g}, 95th percentile {miss['p95']:.3g} (ring-camera data: ~0)"
        )
    counts = ", ".join(
        f"{split} {s.num_scenes} scenes x ({s.id_views} ID + {s.ood_views} OOD)"
        for split, s in meta.splits.items()
    )
    log(
        f"wrote {out}: {counts}, {meta.image_height}x{meta.image_width}, "
        f"{'with' if meta.has_object_mask else 'no'} object masks, no depth"
    )
    return ImportSummary(out, meta, bounds, notes)
