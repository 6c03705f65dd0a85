"""The nerfvae multi-scene dataset format: ``dataset.json`` plus safetensors shards.

Layout of a dataset directory::

    DIR/
      dataset.json                    # DatasetMeta: version, image size, bounds, splits, shards ...
      train/shard-00000.safetensors   # a fixed number of scenes per shard (the last may hold fewer)
      train/shard-00001.safetensors
      val/shard-00000.safetensors
      test/shard-00000.safetensors

Inside a shard, scene ``j`` (0-based within the shard; its index in the split is
``first_scene + j``) is stored as separate tensors so that one scene, or one field of one scene,
is read without touching the rest (safetensors memory-maps the file and reads tensors lazily):

* ``scene{j:04d}/images`` — ``[V, H, W, 3]`` uint8, sRGB colour;
* ``scene{j:04d}/depth`` — ``[V, H, W]`` float32, metric distance along the pixel-centre ray from
  the camera centre (the ``t`` of :func:`nerfvae.geometry.image_rays`, not camera z); 0 where the
  ray hits nothing;
* ``scene{j:04d}/object_mask`` — ``[V, H, W]`` uint8, 0 = background (floor/walls), k = object k
  (1-based, in the order of the scene's ``objects`` list);
* ``scene{j:04d}/K`` — ``[V, 3, 3]`` float32, OpenCV intrinsics (pixel centre at +0.5);
* ``scene{j:04d}/c2w`` — ``[V, 4, 4]`` float32, OpenCV camera-to-world (x right, y down, z fwd);
* ``scene{j:04d}/view_is_ood`` — ``[V]`` bool, False for in-distribution (ID) views, which come
  first, True for out-of-distribution (OOD) views.

``depth`` and ``object_mask`` are optional for a whole dataset (``DatasetMeta.has_depth`` /
``has_object_mask``; imported real data often has neither). The safetensors header metadata has one
entry, ``"nerfvae"``, a JSON string ``{"format": "nerfvae-shard", "format_version": 1, "split": ...,
"first_scene": ..., "num_scenes": ..., "scenes": [per-scene info dicts]}``; each info dict has at
least ``scene_id`` and ``objects`` (a list of JSON objects: shape, position, size, colour, ...).

Every scene of a split has the same number of ID views and of OOD views (ID views first), and every
image of a dataset has the same size, so batches stack without padding.

Writing (used by the built-in generator and by the importers in :mod:`nerfvae.data.importers`)::

    meta = DatasetMeta(
        name="my-data", image_height=64, image_width=64,
        scene_bounds=((-1, -1, -1), (1, 1, 1)), near=0.1, far=6.0,
        splits={"train": SplitMeta(id_views=10), "test": SplitMeta(id_views=10, ood_views=5)},
    )
    writer = DatasetWriter(root, meta)
    writer.write_shard("train", 0, 0, [SceneRecord(...), ...])  # split, shard, first scene
    # (atomic: written to a temporary name, then renamed)
    writer.finalize()                                         # scans shards, writes dataset.json

Reading::

    meta = read_meta(root)        # validates dataset.json (version, fields, shard files)
    scene = ShardReader(root / meta.splits["train"].shards[0].file, meta, "train").read_scene(0)
    # or nerfvae.data.loader.MultiSceneDataset(root, "train").load_scene(index)

All problems with the files raise :class:`nerfvae.errors.DataError` naming the file and the problem.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nerfvae.errors import DataError, check_colour, read_json_file
from nerfvae.errors import short_repr as _short
from nerfvae.geometry import check_cameras
from nerfvae.geometry.cameras import MAX_COORDINATE

MAX_DISTANCE = 4 * MAX_COORDINATE
"""Largest ``far`` accepted: across the largest scene box from its farthest camera."""

FORMAT_VERSION = 1
META_FILENAME = "dataset.json"
SHARD_FORMAT = "nerfvae-shard"
HEADER_KEY = "nerfvae"
SPLITS = ("train", "val", "test")
FIELDS = ("images", "depth", "object_mask", "K", "c2w", "view_is_ood")


@dataclass
class SceneRecord:
    """One scene: all its views with ground truth and cameras (ID views first, then OOD views).

    Attributes:
        images: ``[V, H, W, 3]`` uint8 sRGB.
        K: ``[V, 3, 3]`` float32 OpenCV intrinsics.
        c2w: ``[V, 4, 4]`` float32 OpenCV camera-to-world.
        view_is_ood: ``[V]`` bool; all False entries come before all True entries.
        depth: ``[V, H, W]`` float32 distance along the unit pixel-centre ray, or None.
        object_mask: ``[V, H, W]`` uint8, 0 = background, k = ``objects[k-1]``, or None.
        objects: JSON-serialisable list of per-object dicts (shape, position, size, colour, ...).
        scene_id: a name unique within the dataset, e.g. ``"train-000042"``.
        info: further JSON-serialisable per-scene facts (room, lighting, ...).
    """

    images: torch.Tensor
    K: torch.Tensor
    c2w: torch.Tensor
    view_is_ood: torch.Tensor
    depth: torch.Tensor | None = None
    object_mask: torch.Tensor | None = None
    objects: list[dict[str, Any]] = field(default_factory=list)
    scene_id: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_views(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_id_views(self) -> int:
        return int((~self.view_is_ood).sum())

    @property
    def num_ood_views(self) -> int:
        return int(self.view_is_ood.sum())


@dataclass
class ShardMeta:
    """One shard file of a split: its path relative to the dataset root, scene count and size."""

    file: str
    first_scene: int
    num_scenes: int
    num_bytes: int


@dataclass
class SplitMeta:
    """A split: scene count, ID/OOD views per scene and its shards (filled by ``finalize``)."""

    id_views: int
    ood_views: int = 0
    num_scenes: int = 0
    shards: list[ShardMeta] = field(default_factory=list)

    @property
    def views_per_scene(self) -> int:
        return self.id_views + self.ood_views


@dataclass
class DatasetMeta:
    """Contents of ``dataset.json``.

    Attributes:
        name: dataset name (e.g. ``"rooms-default"``).
        image_height, image_width: size of every image.
        scene_bounds: ``((xmin, ymin, zmin), (xmax, ymax, zmax))``, an axis-aligned world box
            containing everything that should be rendered (for the built-in rooms: the room
            interior). Cameras may lie inside it.
        near, far: ray distances bounding every surface seen from any camera.
        splits: ``{"train": SplitMeta, "val": ..., "test": ...}``.
        world_up: the world's up axis, ``"+z"`` for the built-in rooms.
        has_depth, has_object_mask: whether shards hold ``depth`` / ``object_mask``.
        camera_distributions: how ID / OOD cameras were drawn (free-form JSON; ranges).
        generator: how the data was made (preset, seed, renderer settings; free-form JSON).
        baselines: trivial-predictor PSNRs on the val and test splits (free-form JSON).
        background: the colour ``(r, g, b)`` in [0, 1] seen behind open scenes (objects
            composited on white, say), which a model must render where rays leave the scene box;
            None for closed scenes where every ray ends on a surface (the built-in rooms, GQN).
        mask_source: how the object masks were made: ``"generator"`` (the renderer's object ids),
            ``"alpha"`` (the source images' alpha > 0.5), ``"background"`` (pixels that differ
            from the known background colour), or None when there are none.
        format_version: :data:`FORMAT_VERSION` of the writer.
    """

    name: str
    image_height: int
    image_width: int
    scene_bounds: tuple[tuple[float, float, float], tuple[float, float, float]]
    near: float
    far: float
    splits: dict[str, SplitMeta]
    world_up: str = "+z"
    has_depth: bool = True
    has_object_mask: bool = True
    camera_distributions: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    background: tuple[float, float, float] | None = None
    mask_source: str | None = None
    format_version: int = FORMAT_VERSION

    def split(self, name: str) -> SplitMeta:
        if name not in self.splits:
            raise DataError(f"dataset has no split {name!r} (it has {sorted(self.splits)})")
        return self.splits[name]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any], where: str = META_FILENAME) -> DatasetMeta:
        """Parse ``dataset.json`` contents, raising DataError naming ``where`` and the field on any
        problem: a missing field, a value of the wrong type, NaN/inf, out of range."""
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise DataError(
                f"{where}: format_version is {_short(version)} but this nerfvae reads version "
                f"{FORMAT_VERSION}; regenerate or convert the dataset"
            )
        splits_data = _field(data, "splits", dict, where)
        splits = {
            str(name): _read_split(split, f"{where}: splits.{str(name)[:40]}")
            for name, split in splits_data.items()
        }
        bounds = _field(data, "scene_bounds", list, where)
        if len(bounds) != 2:
            raise DataError(
                f"{where}: scene_bounds must be [[xmin, ymin, zmin], [xmax, ymax, zmax]]"
            )
        corners = tuple(
            tuple(_number(v, f"{where}: scene_bounds value") for v in _sequence(corner, 3, where))
            for corner in bounds
        )
        meta = DatasetMeta(
            name=_field(data, "name", str, where),
            image_height=_integer(
                _field(data, "image_height", int, where), f"{where}: image_height"
            ),
            image_width=_integer(_field(data, "image_width", int, where), f"{where}: image_width"),
            scene_bounds=corners,  # type: ignore[arg-type]
            near=_number(_field(data, "near", float, where), f"{where}: near"),
            far=_number(_field(data, "far", float, where), f"{where}: far"),
            splits=splits,
            world_up=_field(data, "world_up", str, where),
            has_depth=_field(data, "has_depth", bool, where, True),
            has_object_mask=_field(data, "has_object_mask", bool, where, True),
            camera_distributions=_field(data, "camera_distributions", dict, where, {}),
            generator=_field(data, "generator", dict, where, {}),
            baselines=_field(data, "baselines", dict, where, {}),
            background=_read_background(data, where),
            mask_source=_read_mask_source(data, where),
            format_version=FORMAT_VERSION,
        )
        _check_meta(meta, where)
        return meta


_REQUIRED = object()
_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer",
               float: "a number", bool: "true or false"}  # fmt: skip


def _field(data: dict[str, Any], key: str, kind: type, where: str, default: Any = _REQUIRED) -> Any:
    """``data[key]`` checked to be of JSON type ``kind`` (float accepts integers; int and float
    refuse booleans), or ``default`` when absent; DataError naming ``where`` and ``key``."""
    if key not in data:
        if default is _REQUIRED:
            raise DataError(f"{where}: field {key!r} is missing")
        return default
    value = data[key]
    accepted = (int, float) if kind is float else kind
    if not isinstance(value, accepted) or (kind in (int, float) and isinstance(value, bool)):
        raise DataError(f"{where}: {key} must be {_TYPE_NAMES[kind]}, got {_short(value)}")
    return value


def _integer(value: Any, what: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise DataError(f"{what} must be an integer >= {minimum}, got {_short(value)}")
    return value


def _number(value: Any, what: str) -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(float(value))
    ):
        raise DataError(f"{what} must be a finite number, got {_short(value)}")
    return float(value)


def _sequence(value: Any, length: int, where: str) -> list[Any]:
    if not isinstance(value, list) or len(value) != length:
        raise DataError(f"{where}: scene_bounds must be [[xmin, ymin, zmin], [xmax, ymax, zmax]]")
    return value


def _read_split(data: Any, where: str) -> SplitMeta:
    if not isinstance(data, dict):
        raise DataError(f"{where} must be an object")
    shards = []
    for index, shard in enumerate(_field(data, "shards", list, where)):
        at = f"{where}.shards[{index}]"
        if not isinstance(shard, dict) or set(shard) != {
            f.name for f in dataclasses.fields(ShardMeta)
        }:
            raise DataError(f"{at} must be an object with file, first_scene, num_scenes, num_bytes")
        shards.append(
            ShardMeta(
                file=_shard_file_name(shard["file"], at),
                first_scene=_integer(shard["first_scene"], f"{at}.first_scene"),
                num_scenes=_integer(shard["num_scenes"], f"{at}.num_scenes", 1),
                num_bytes=_integer(shard["num_bytes"], f"{at}.num_bytes"),
            )
        )
    return SplitMeta(
        id_views=_integer(_field(data, "id_views", int, where), f"{where}.id_views", 1),
        ood_views=_integer(_field(data, "ood_views", int, where, 0), f"{where}.ood_views"),
        num_scenes=_integer(_field(data, "num_scenes", int, where), f"{where}.num_scenes"),
        shards=shards,
    )


def _shard_file_name(value: Any, where: str) -> str:
    """A shard's ``file``: a relative path inside the dataset directory (no ``..``, no NUL)."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 1024
        or "\0" in value
        or Path(value).is_absolute()
        or ".." in Path(value).parts
        or not value.endswith(".safetensors")
    ):
        raise DataError(
            f"{where}.file must be a .safetensors path inside the dataset directory, "
            f"got {_short(value)}"
        )
    return value


MAX_IMAGE_SIDE = 16384
"""Largest image side (pixels) nerfvae reads or writes."""
MAX_IMAGE_PIXELS = 8192 * 8192
"""Largest image (pixels) nerfvae reads or writes; image headers are checked before decoding."""


def check_image_size(height: Any, width: Any, where: str) -> tuple[int, int]:
    """``(height, width)`` as ints if both are integers in ``1..MAX_IMAGE_SIDE`` and the image is at
    most :data:`MAX_IMAGE_PIXELS`; DataError naming ``where`` otherwise. The one check of image
    sizes: dataset.json, source-format headers and declared sizes all go through it."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (height, width)):
        raise DataError(f"{where}: image size must be integers, got {_short((height, width))}")
    if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE) or (
        height * width > MAX_IMAGE_PIXELS
    ):
        raise DataError(
            f"{where}: image size {height}x{width} (HxW) is out of range (sides 1..{MAX_IMAGE_SIDE}, "
            f"at most {MAX_IMAGE_PIXELS} pixels)"
        )
    return height, width


NAMED_COLOURS = {
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "grey": (0.5, 0.5, 0.5),
    "gray": (0.5, 0.5, 0.5),
}
MASK_SOURCES = ("generator", "alpha", "background")


def parse_colour(text: str) -> tuple[float, float, float]:
    """``white``/``black``/``grey``, ``#rrggbb`` or ``r,g,b`` in [0, 1] → RGB floats in [0, 1];
    raises DataError for anything else."""
    value = text.strip().lower()
    if value in NAMED_COLOURS:
        return NAMED_COLOURS[value]
    try:
        if value.startswith("#") and len(value) == 7:
            return tuple(int(value[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]
        parts = [float(part) for part in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or not all(0.0 <= part <= 1.0 for part in parts):
        raise DataError(
            f"colour {text!r}: expected white, black, grey, #rrggbb or r,g,b with values in [0, 1]"
        )
    return parts[0], parts[1], parts[2]


def _read_background(data: dict[str, Any], where: str) -> tuple[float, float, float] | None:
    """``background`` of dataset.json; a dataset written before the field existed takes the
    colour its import composited on (``generator.options.background``), else None."""
    if "background" in data:
        value = data["background"]
        return None if value is None else check_colour(value, f"{where}: background")
    options = data.get("generator", {})
    options = options.get("options", {}) if isinstance(options, dict) else {}
    imported = options.get("background") if isinstance(options, dict) else None
    if isinstance(imported, str):
        try:
            return parse_colour(imported)
        except DataError as error:
            raise DataError(f"{where}: generator.options.background: {error}") from None
    return None


def _read_mask_source(data: dict[str, Any], where: str) -> str | None:
    if "mask_source" in data:
        value = data["mask_source"]
        if value is not None and value not in MASK_SOURCES:
            raise DataError(
                f"{where}: mask_source must be null or one of {', '.join(MASK_SOURCES)}, "
                f"got {value!r}"
            )
        return value
    if not data.get("has_object_mask", True):
        return None
    # written before the field existed: the generator's ids, or an import's alpha channel
    generator = data.get("generator", {})
    return "alpha" if isinstance(generator, dict) and "importer" in generator else "generator"


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except TypeError:  # a string or null in a JSON file
        return False


def check_scene_box(lo: Sequence[Any], hi: Sequence[Any], where: str) -> None:
    """DataError naming ``where`` unless ``lo``, ``hi`` are three finite coordinates each with
    ``lo < hi``, within :data:`MAX_COORDINATE`. The one check of a scene box: dataset.json's and
    an import's ``--scene-bounds`` both go through it."""
    if (
        len(lo) != 3
        or len(hi) != 3
        or not all(_finite(v) for v in (*lo, *hi))
        or not all(a < b for a, b in zip(lo, hi))
        or max(abs(v) for v in (*lo, *hi)) > MAX_COORDINATE
    ):
        raise DataError(
            f"{where}: scene_bounds must be (min xyz, max xyz) of finite numbers with min < max "
            f"(within {MAX_COORDINATE:g}), got {_short([list(lo), list(hi)])}"
        )


def check_ray_range(near: float | None, far: float | None, where: str) -> None:
    """DataError naming ``where`` unless ``0 <= near < far <= MAX_DISTANCE``; either may be
    ``None`` (not given yet: an import computes it), and is then not compared. The one check of
    near/far: dataset.json's and an import's ``--near/--far`` both go through it."""
    given = [v for v in (near, far) if v is not None]
    in_range = all(_finite(v) and 0 <= v <= MAX_DISTANCE for v in given)
    if not in_range or (len(given) == 2 and not near < far):
        raise DataError(
            f"{where}: need 0 <= near < far <= {MAX_DISTANCE:g}, got near {near}, far {far}"
        )


def _check_meta(meta: DatasetMeta, where: str) -> None:
    check_image_size(meta.image_height, meta.image_width, where)
    check_scene_box(*meta.scene_bounds, where)
    check_ray_range(meta.near, meta.far, where)
    if meta.world_up not in ("+x", "-x", "+y", "-y", "+z", "-z"):
        raise DataError(
            f"{where}: world_up must be one of +x -x +y -y +z -z, got {meta.world_up!r}"
        )
    for name, split in meta.splits.items():
        if split.id_views < 1 or split.ood_views < 0:
            raise DataError(f"{where}: split {name!r} needs id_views >= 1 and ood_views >= 0")
        expected_first = 0
        for shard in split.shards:
            if shard.first_scene != expected_first:
                raise DataError(
                    f"{where}: split {name!r}: shards are not contiguous at {shard.file}"
                )
            expected_first += shard.num_scenes
        if expected_first != split.num_scenes:
            raise DataError(
                f"{where}: split {name!r} declares {split.num_scenes} scenes but its shards hold "
                f"{expected_first}"
            )


def read_meta(root: str | Path, check_files: bool = True) -> DatasetMeta:
    """Read and validate ``root/dataset.json``.

    With ``check_files`` also checks that every shard file exists and has the recorded size (a
    cheap test for missing or truncated shards). Raises DataError naming the file at fault.
    """
    root = Path(root)
    path = root / META_FILENAME
    if not path.is_file():
        hint = ""
        if (root / "generation.json").is_file():
            hint = " (generation has not finished: re-run `nerfvae data generate` to resume)"
        raise DataError(f"{path}: not found; {root} is not a nerfvae dataset{hint}")
    data = read_json_file(path, DataError)
    meta = DatasetMeta.from_json(data, where=str(path))
    if check_files:
        for split in meta.splits.values():
            for shard in split.shards:
                _check_shard_file(root / shard.file, shard.num_bytes)
    return meta


def _check_shard_file(path: Path, num_bytes: int) -> None:
    try:
        if not path.is_file():
            raise DataError(f"{path}: shard file is missing or not a regular file")
        size = path.stat().st_size
    except OSError as error:
        raise DataError(f"{path}: cannot read shard file ({error})") from None
    if size != num_bytes:
        raise DataError(
            f"{path}: shard is {size} bytes but dataset.json records {num_bytes} "
            "(truncated or replaced; regenerate it)"
        )


def _scene_key(local_index: int, name: str) -> str:
    return f"scene{local_index:04d}/{name}"


def validate_scene(
    record: SceneRecord,
    where: str,
    image_size: tuple[int, int] | None = None,
    views: tuple[int, int] | None = None,
    require_depth: bool = False,
    require_object_mask: bool = False,
) -> None:
    """Check shapes, dtypes, finiteness and cameras of a scene; raise DataError naming ``where``.

    Args:
        image_size: expected ``(H, W)``, or None to accept any.
        views: expected ``(id_views, ood_views)``, or None to accept any.
    """

    def fail(problem: str) -> DataError:
        return DataError(f"{where}: {problem}")

    images = record.images
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise fail(f"images must be a uint8 tensor [V, H, W, 3], got {_describe(images)}")
    V, H, W, channels = images.shape
    if channels != 3 or V < 1:
        raise fail(f"images must be [V>=1, H, W, 3], got {tuple(images.shape)}")
    if image_size is not None and (H, W) != tuple(image_size):
        raise fail(
            f"images are {H}x{W} but the dataset's image size is {image_size[0]}x{image_size[1]}"
        )
    expected = {
        "K": ((V, 3, 3), torch.float32),
        "c2w": ((V, 4, 4), torch.float32),
        "view_is_ood": ((V,), torch.bool),
        "depth": ((V, H, W), torch.float32),
        "object_mask": ((V, H, W), torch.uint8),
    }
    for name, (shape, dtype) in expected.items():
        value = getattr(record, name)
        if value is None:
            if (name == "depth" and require_depth) or (
                name == "object_mask" and require_object_mask
            ):
                raise fail(f"{name} is missing")
            continue
        if (
            not isinstance(value, torch.Tensor)
            or value.dtype != dtype
            or tuple(value.shape) != shape
        ):
            raise fail(f"{name} must be {dtype} {list(shape)}, got {_describe(value)}")
    if record.depth is not None and not bool(torch.isfinite(record.depth).all()):
        raise fail("depth contains NaN or inf")
    if record.depth is not None and bool((record.depth < 0).any()):
        raise fail("depth contains negative values")
    try:
        check_cameras(record.K, record.c2w, image_size=(H, W))  # also NaN or inf in K and c2w
    except ValueError as error:
        raise fail(str(error)) from None
    if record.object_mask is not None and record.object_mask.numel():
        highest = int(record.object_mask.max())
        if highest > len(record.objects):
            raise fail(
                f"object_mask holds object id {highest} but the scene lists "
                f"{len(record.objects)} objects"
            )
    ood = record.view_is_ood
    num_id = int((~ood).sum())
    if bool(ood[:num_id].any()) or not bool(ood[num_id:].all()):
        raise fail("view_is_ood must list all ID views (False) before all OOD views (True)")
    if views is not None and (num_id, V - num_id) != tuple(views):
        raise fail(
            f"scene has {num_id} ID + {V - num_id} OOD views, expected {views[0]} + {views[1]}"
        )


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {list(value.shape)}"
    return type(value).__name__


class DatasetWriter:
    """Writes shards into ``root`` and, when done, ``dataset.json``.

    ``meta.splits`` declares the splits with their ``id_views`` / ``ood_views``; scene counts and
    shard lists are filled in by :meth:`finalize` from the shard files on disk, so an interrupted
    writer can simply be re-run and skip the shards for which :meth:`shard_done` is True.
    """

    def __init__(self, root: str | Path, meta: DatasetMeta):
        self.root = Path(root)
        self.meta = meta
        self.root.mkdir(parents=True, exist_ok=True)

    def shard_path(self, split: str, shard_index: int) -> Path:
        return self.root / split / f"shard-{shard_index:05d}.safetensors"

    def shard_done(self, split: str, shard_index: int) -> bool:
        """Whether the shard file exists and its header and size are intact."""
        path = self.shard_path(split, shard_index)
        if not path.is_file():
            return False
        try:
            _read_shard_header(path)
        except DataError:
            return False
        return True

    def write_shard(
        self, split: str, shard_index: int, first_scene: int, scenes: Sequence[SceneRecord]
    ) -> Path:
        """Validate and write ``scenes`` (indices ``first_scene ...`` of ``split``) atomically.

        The file is written under a temporary name in the same directory and renamed into place,
        so a killed writer never leaves a shard that looks finished.
        """
        from safetensors.torch import save_file

        split_meta = self.meta.split(split)
        tensors: dict[str, torch.Tensor] = {}
        infos = []
        for local, record in enumerate(scenes):
            where = f"{self.shard_path(split, shard_index)} scene {first_scene + local}"
            validate_scene(
                record,
                where,
                image_size=(self.meta.image_height, self.meta.image_width),
                views=(split_meta.id_views, split_meta.ood_views),
                require_depth=self.meta.has_depth,
                require_object_mask=self.meta.has_object_mask,
            )
            for name in FIELDS:
                value = getattr(record, name)
                if name == "depth" and not self.meta.has_depth:
                    continue
                if name == "object_mask" and not self.meta.has_object_mask:
                    continue
                tensors[_scene_key(local, name)] = value.contiguous()
            infos.append({**record.info, "scene_id": record.scene_id, "objects": record.objects})
            try:
                json.dumps(infos[-1])
            except (TypeError, ValueError) as error:
                raise DataError(
                    f"{where}: objects/info are not JSON-serialisable ({error})"
                ) from None
        header = {
            "format": SHARD_FORMAT,
            "format_version": FORMAT_VERSION,
            "split": split,
            "first_scene": first_scene,
            "num_scenes": len(scenes),
            "scenes": infos,
        }
        # One metadata entry only: safetensors stores the metadata as a hash map whose order varies
        # between processes, and shards must be byte-identical for a given seed.
        metadata = {HEADER_KEY: json.dumps(header, sort_keys=True)}
        path = self.shard_path(split, shard_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        save_file(tensors, str(temporary), metadata=metadata)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
        return path

    def scan_shards(self) -> DatasetMeta:
        """Fill ``meta.splits`` (shard lists, scene counts) from the shard files on disk."""
        for split, split_meta in self.meta.splits.items():
            shards = []
            for path in sorted((self.root / split).glob("shard-*.safetensors")):
                header = _read_shard_header(path)
                shards.append(
                    ShardMeta(
                        file=str(path.relative_to(self.root)),
                        first_scene=int(header["first_scene"]),
                        num_scenes=int(header["num_scenes"]),
                        num_bytes=path.stat().st_size,
                    )
                )
            split_meta.shards = shards
            split_meta.num_scenes = sum(shard.num_scenes for shard in shards)
        _check_meta(self.meta, str(self.root / META_FILENAME))
        return self.meta

    def finalize(self, **updates: Any) -> DatasetMeta:
        """Scan the shards on disk, apply ``updates`` (DatasetMeta fields, e.g. ``baselines=``)
        and write dataset.json atomically; dataset.json is the marker of a finished dataset."""
        for name, value in updates.items():
            setattr(self.meta, name, value)
        self.scan_shards()
        write_json_atomic(self.root / META_FILENAME, self.meta.to_json())
        return self.meta


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` via a temporary file and rename, so readers never see half a file."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)


def _read_shard_header(path: Path) -> dict[str, Any]:
    """Read and check a shard's header metadata (cheap: reads only the safetensors header)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except FileNotFoundError:
        raise DataError(f"{path}: shard file is missing") from None
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise DataError(f"{path}: not a readable safetensors shard (truncated? {error})") from None
    try:
        text = metadata[HEADER_KEY]
    except KeyError:
        raise DataError(f"{path}: not a nerfvae shard (no {HEADER_KEY!r} header)") from None
    try:
        header = json.loads(text)
    except RecursionError:
        raise DataError(f"{path}: shard header is nested too deeply") from None
    except ValueError as error:
        raise DataError(f"{path}: not a nerfvae shard (malformed header: {error})") from None
    where = f"{path}: shard header"
    if not isinstance(header, dict):
        raise DataError(f"{where} must be a JSON object")
    kind, version = header.get("format"), header.get("format_version")
    if kind != SHARD_FORMAT:
        raise DataError(f"{path}: not a nerfvae shard (header format {_short(kind)})")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise DataError(
            f"{path}: shard format_version {_short(version)}, expected {FORMAT_VERSION}"
        )
    _integer(_field(header, "first_scene", int, where), f"{where} first_scene")
    _integer(_field(header, "num_scenes", int, where), f"{where} num_scenes")
    for index, info in enumerate(_field(header, "scenes", list, where)):
        at = f"{where} scenes[{index}]"
        if not isinstance(info, dict):
            raise DataError(f"{at} must be an object")
        objects = _field(info, "objects", list, at, [])
        if not all(isinstance(item, dict) for item in objects):
            raise DataError(f"{at}: objects must be a list of objects")
    return header


class ShardReader:
    """Lazy reader of one shard: opens the memory-mapped file once, reads scenes on demand."""

    def __init__(self, path: str | Path, meta: DatasetMeta | None = None, split: str | None = None):
        from safetensors import safe_open

        self.path = Path(path)
        self.meta = meta
        self.split = split
        header = _read_shard_header(self.path)
        self.first_scene = int(header["first_scene"])
        self.num_scenes = int(header["num_scenes"])
        self.scene_infos: list[dict[str, Any]] = header["scenes"]
        if len(self.scene_infos) != self.num_scenes:
            raise DataError(
                f"{self.path}: header lists {len(self.scene_infos)} scenes, "
                f"expected {self.num_scenes}"
            )
        self._handle = safe_open(str(self.path), framework="pt")
        self._keys = set(self._handle.keys())

    def _tensor(self, local: int, name: str, where: str) -> torch.Tensor | None:
        key = _scene_key(local, name)
        if key not in self._keys:
            return None
        try:
            return self._handle.get_tensor(key)
        except Exception as error:
            raise DataError(f"{where}: cannot read {name} ({error})") from None

    def read_scene(self, local: int, validate: bool = True) -> SceneRecord:
        """Read scene ``local`` (0-based within this shard) and, by default, validate it."""
        if not 0 <= local < self.num_scenes:
            raise IndexError(f"{self.path}: scene {local} out of range 0..{self.num_scenes - 1}")
        where = f"{self.path} scene {self.first_scene + local}"
        values = {name: self._tensor(local, name, where) for name in FIELDS}
        for name in ("images", "K", "c2w", "view_is_ood"):
            if values[name] is None:
                raise DataError(f"{where}: {name} is missing")
        info = dict(self.scene_infos[local])  # a dict with an objects list: see _read_shard_header
        record = SceneRecord(
            images=values["images"],
            K=values["K"],
            c2w=values["c2w"],
            view_is_ood=values["view_is_ood"],
            depth=values["depth"],
            object_mask=values["object_mask"],
            objects=info.pop("objects", []),
            scene_id=str(info.pop("scene_id", "")),
            info=info,
        )
        if validate:
            meta = self.meta
            split = (
                meta.split(self.split) if (meta is not None and self.split is not None) else None
            )
            validate_scene(
                record,
                where,
                image_size=(meta.image_height, meta.image_width) if meta is not None else None,
                views=(split.id_views, split.ood_views) if split is not None else None,
                require_depth=bool(meta and meta.has_depth),
                require_object_mask=bool(meta and meta.has_object_mask),
            )
        return record


def read_shard_scenes(
    path: str | Path, meta: DatasetMeta | None = None, split: str | None = None
) -> list[SceneRecord]:
    """Read and validate every scene of one shard."""
    reader = ShardReader(path, meta, split)
    return [reader.read_scene(local) for local in range(reader.num_scenes)]
