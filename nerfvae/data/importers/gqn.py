"""DeepMind GQN datasets (Eslami et al. 2018, ``gqn-datasets``) read from their TFRecords.

Layout (as in the Cloud Storage bucket ``gqn-dataset``)::

    <root>/<dataset>/train/001-of-400.tfrecord ...
    <root>/<dataset>/test/01-of-40.tfrecord ...

Each record is a ``tf.train.Example`` holding one scene: ``frames``, a bytes list of
``sequence_size`` JPEG images, and ``cameras``, a float list of ``sequence_size × 5`` numbers
``(x, y, z, yaw, pitch)`` per view (positions in scene units, angles in radians — DeepMind's reader
feeds them to sin/cos directly). Per dataset (from DeepMind's ``data_reader.py``):

=========================================  ==========  =============  ===========  ==========
dataset                                    image size  sequence size  train files  test files
=========================================  ==========  =============  ===========  ==========
rooms_ring_camera                          64          10             2160         240
rooms_free_camera_no_object_rotations      64          10             2160         240
rooms_free_camera_with_object_rotations    128         10             2034         226
jaco                                       64          11             3600         400
shepard_metzler_5_parts                    64          15             900          100
shepard_metzler_7_parts                    64          15             900          100
mazes                                      84          300            1080         120
=========================================  ==========  =============  ===========  ==========

**Camera mapping** (the datasets were rendered with MuJoCo, whose world is z-up; DeepMind publishes
no formula, so this is our documented reading of the 5-vector). World **+z is up**. ``yaw`` turns
the camera about the vertical axis, counter-clockwise seen from above, with yaw 0 looking along
+x; ``pitch`` tilts it up (positive) or down. The viewing direction is therefore::

    forward = (cos(pitch) cos(yaw), cos(pitch) sin(yaw), sin(pitch))

and the OpenCV camera axes are ``x = right = (sin(yaw), -cos(yaw), 0)`` (horizontal: no roll),
``z = forward`` and ``y = down = forward × right = (sin(pitch) cos(yaw), sin(pitch) sin(yaw),
-cos(pitch))``; the camera centre is ``(x, y, z)``. The field of view is not published either
(deepmind/gqn-datasets issue 15 asks for it); the default is 50° across the (square) image, the
value used by the widely used ``tf-gqn`` re-implementation, and can be changed. The principal
point is the image centre. In ``rooms_ring_camera`` every camera faces the room centre, which
gives a check of the yaw convention on real data: the importer prints how far each optical axis
passes from the vertical axis through the origin.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfvae.data.importers import common
from nerfvae.data.importers.common import SourceScene, SourceView, decode_image, intrinsics
from nerfvae.data.importers.tfrecord import (
    ProtoError,
    RecordLocation,
    parse_example,
    read_record,
    scan_tfrecord,
)
from nerfvae.errors import DataError

DEFAULT_FOV_DEGREES = 50.0
CAMERA_PARAMETERS = 5


@dataclass(frozen=True)
class GQNDatasetInfo:
    """Facts about one GQN dataset (DeepMind's ``data_reader.py``) plus its camera layout."""

    image_size: int
    sequence_size: int
    train_files: int
    test_files: int
    layout: str
    """``inside-out`` (cameras inside a room or maze) or ``object-centric``; used for bounds."""


GQN_DATASETS = {
    "rooms_ring_camera": GQNDatasetInfo(64, 10, 2160, 240, "inside-out"),
    "rooms_free_camera_no_object_rotations": GQNDatasetInfo(64, 10, 2160, 240, "inside-out"),
    "rooms_free_camera_with_object_rotations": GQNDatasetInfo(128, 10, 2034, 226, "inside-out"),
    "jaco": GQNDatasetInfo(64, 11, 3600, 400, "inside-out"),
    "shepard_metzler_5_parts": GQNDatasetInfo(64, 15, 900, 100, "object-centric"),
    "shepard_metzler_7_parts": GQNDatasetInfo(64, 15, 900, 100, "object-centric"),
    "mazes": GQNDatasetInfo(84, 300, 1080, 120, "inside-out"),
}


def gqn_cameras_to_c2w(cameras: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world ``[..., 4, 4]`` from GQN camera vectors ``[..., 5]``.

    ``(x, y, z, yaw, pitch)``; world +z up, yaw counter-clockwise about +z from +x, pitch up
    positive (see the module docstring).
    """
    cameras = np.asarray(cameras, dtype=np.float64)
    position, yaw, pitch = cameras[..., :3], cameras[..., 3], cameras[..., 4]
    cos_yaw, sin_yaw = np.cos(yaw), np.sin(yaw)
    cos_pitch, sin_pitch = np.cos(pitch), np.sin(pitch)
    forward = np.stack([cos_pitch * cos_yaw, cos_pitch * sin_yaw, sin_pitch], axis=-1)
    right = np.stack([sin_yaw, -cos_yaw, np.zeros_like(yaw)], axis=-1)
    down = np.stack([sin_pitch * cos_yaw, sin_pitch * sin_yaw, -cos_pitch], axis=-1)
    c2w = np.zeros((*cameras.shape[:-1], 4, 4), dtype=np.float64)
    c2w[..., :3, 0] = right
    c2w[..., :3, 1] = down
    c2w[..., :3, 2] = forward
    c2w[..., :3, 3] = position
    c2w[..., 3, 3] = 1.0
    return c2w


def gqn_intrinsics(image_size: int, fov_degrees: float = DEFAULT_FOV_DEGREES) -> np.ndarray:
    """``K [3, 3]`` of a square GQN image with full field of view ``fov_degrees``."""
    focal = 0.5 * image_size / math.tan(0.5 * math.radians(fov_degrees))
    return intrinsics(focal, focal, 0.5 * image_size, 0.5 * image_size)


def find_record_files(src: str | Path) -> tuple[str | None, dict[str | None, list[Path]]]:
    """The dataset name (or None) and ``{split: [tfrecord files]}`` under ``src``.

    ``src`` may be ``<root>/<dataset>`` (with ``train/`` and ``test/``), one split directory, a
    directory of ``.tfrecord`` files, or a single file.
    """
    src = Path(src)
    if src.is_file():
        return _dataset_name(src.parent), {None: [src]}
    if not src.is_dir():
        raise DataError(f"{src}: no such file or directory")
    splits = {}
    for split in ("train", "test"):
        files = sorted((src / split).glob("*.tfrecord")) if (src / split).is_dir() else []
        if files:
            splits[split] = files
    if splits:
        return _dataset_name(src), splits  # type: ignore[return-value]
    files = sorted(src.glob("*.tfrecord"))
    if not files:
        raise DataError(f"{src}: no .tfrecord files here or in train/ and test/")
    if src.name in ("train", "test"):
        return _dataset_name(src.parent), {src.name: files}
    return _dataset_name(src), {None: files}


def _dataset_name(directory: Path) -> str | None:
    for candidate in (directory, directory.parent):
        if candidate.name in GQN_DATASETS:
            return candidate.name
    return None


@dataclass
class GQNSceneRef:
    """A scene not yet read: one record of one file."""

    location: RecordLocation
    split: str | None
    image_size: int | None
    sequence_size: int | None
    fov_degrees: float

    @property
    def scene_id(self) -> str:
        return f"{self.location.path.stem}-{self.location.index:05d}"

    def load(self) -> SourceScene:
        return read_gqn_record(
            self.location, self.split, self.image_size, self.sequence_size, self.fov_degrees
        )


def read_gqn_record(
    location: RecordLocation,
    split: str | None,
    image_size: int | None,
    sequence_size: int | None,
    fov_degrees: float,
) -> SourceScene:
    """Parse one record into a scene (images stay undecoded until loaded)."""
    where = f"{location.path}: record {location.index}"
    data = read_record(location)
    try:
        features = parse_example(data)
    except ProtoError as error:
        raise DataError(f"{where}: malformed tf.train.Example ({error})") from None
    frames, cameras = features.get("frames"), features.get("cameras")
    if not isinstance(frames, list) or not frames:
        raise DataError(f"{where}: no 'frames' bytes feature")
    if not isinstance(cameras, np.ndarray) or cameras.dtype != np.float32:
        raise DataError(f"{where}: no 'cameras' float feature")
    views_count = len(frames)
    if sequence_size is not None and views_count != sequence_size:
        raise DataError(f"{where}: {views_count} frames, expected {sequence_size} for this dataset")
    if cameras.size != views_count * CAMERA_PARAMETERS:
        raise DataError(
            f"{where}: {cameras.size} camera numbers for {views_count} frames "
            f"(expected {CAMERA_PARAMETERS} per frame)"
        )
    cameras = cameras.reshape(views_count, CAMERA_PARAMETERS)
    if not np.isfinite(cameras).all():
        raise DataError(f"{where}: camera parameters contain NaN or inf")
    c2w = gqn_cameras_to_c2w(cameras)
    for index in range(views_count):
        common.checked_pose(c2w[index], f"{where} frame {index} camera")
    if image_size is None:
        height, width = decode_image(frames[0], f"{where} frame 0").shape[:2]
        if height != width:
            raise DataError(f"{where}: frames are {height}x{width}; GQN frames are square")
        image_size = height
    K = common.checked_intrinsics(
        gqn_intrinsics(image_size, fov_degrees), where, (image_size, image_size)
    )
    views = [
        SourceView(
            K,
            c2w[index],
            (image_size, image_size),
            f"{where} frame {index}",
            _loader(frames[index], f"{where} frame {index}"),
        )
        for index in range(views_count)
    ]
    info = {"source": str(location.path), "record": location.index, "format": "gqn"}
    scene_id = f"{location.path.stem}-{location.index:05d}"
    return SourceScene(scene_id, {"all": views}, split, info)


def _loader(jpeg: bytes, where: str):
    return lambda: decode_image(jpeg, where)


def scan_gqn(
    src: str | Path,
    dataset: str | None = None,
    fov_degrees: float = DEFAULT_FOV_DEGREES,
    max_scenes_per_split: int | None = None,
) -> tuple[str | None, list[GQNSceneRef]]:
    """Locate every scene (record) under ``src`` without decoding any; returns (dataset, refs).

    Only record headers are read (lengths, with their CRCs), so this is fast even for the full
    datasets; ``max_scenes_per_split`` stops scanning a split early.
    """
    found_name, files = find_record_files(src)
    name = dataset or found_name
    if name is not None and name not in GQN_DATASETS:
        raise DataError(f"unknown GQN dataset {name!r}; known: {', '.join(GQN_DATASETS)}")
    info = GQN_DATASETS.get(name) if name else None
    refs: list[GQNSceneRef] = []
    for split, paths in files.items():
        count = 0
        for path in paths:
            for location in scan_tfrecord(path):
                if max_scenes_per_split is not None and count >= max_scenes_per_split:
                    break
                refs.append(
                    GQNSceneRef(
                        location,
                        split,
                        info.image_size if info else None,
                        info.sequence_size if info else None,
                        fov_degrees,
                    )
                )
                count += 1
    if not refs:
        raise DataError(f"{src}: the TFRecord files hold no records")
    return name, refs


def iter_gqn(src: str | Path, **options) -> Iterator[SourceScene]:
    """Every scene under ``src``, read in file order (see :func:`scan_gqn` for options)."""
    for ref in scan_gqn(src, **options)[1]:
        yield ref.load()


def axis_miss_distance(c2w: np.ndarray) -> np.ndarray:
    """Horizontal distance ``[...]`` at which each camera's optical axis passes the z axis.

    For ``rooms_ring_camera`` (cameras facing the room centre) this is ~0 under the right yaw
    convention; a wrong sign or offset gives distances comparable to the ring radius.
    """
    centre = c2w[..., :2, 3]
    forward = c2w[..., :2, 2]
    norm = np.linalg.norm(forward, axis=-1, keepdims=True).clip(min=1e-9)
    direction = forward / norm
    # Signed: a camera facing away from the axis has a closest approach behind it.
    along = -(centre * direction).sum(-1)
    closest = centre + along[..., None] * direction
    return np.where(along > 0, np.linalg.norm(closest, axis=-1), np.linalg.norm(centre, axis=-1))
