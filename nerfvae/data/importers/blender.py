"""NeRF-synthetic (Blender) and nerfstudio / instant-ngp ``transforms.json`` readers.

**NeRF-synthetic** (Mildenhall et al. 2020): a scene directory holds ``transforms_train.json``,
``transforms_val.json`` and ``transforms_test.json``, each ``{"camera_angle_x": ..., "frames":
[{"file_path": "./train/r_0", "transform_matrix": 4x4}, ...]}`` with RGBA PNGs (the extension is
usually left out of ``file_path``). ``camera_angle_x`` is the full horizontal field of view in
radians; the principal point is the image centre. ``transform_matrix`` is an OpenGL/Blender
camera-to-world (camera looks down its −z, +y up in the image), so it is converted with
:func:`nerfvae.geometry.opengl_to_opencv` (flip the camera's y and z axes). World +z is up.
Exporters in the wild (instant-ngp, the BlenderNeRF add-on) also write the nerfstudio intrinsics
below into ``transforms_<split>.json``, at the top level or per frame; they are read the same way.

**nerfstudio / instant-ngp**: one ``transforms.json`` with pinhole intrinsics ``fl_x``, ``fl_y``,
``cx``, ``cy``, ``w``, ``h`` (or instant-ngp's ``camera_angle_x``/``camera_angle_y``) at the top
level, any of which a frame may override; ``transform_matrix`` is again OpenGL camera-to-world.
nerfstudio casts rays through ``pixel index + 0.5``, so its ``cx, cy`` are already in nerfvae's
pixel-centre-at-+0.5 convention and are used unchanged. Lens distortion (``k1..k4, p1, p2``) is not
modelled: a note is printed and the images are used as they are. Optional ``train_filenames``,
``val_filenames``, ``test_filenames`` lists give the view split; without them every
``holdout_every``-th frame (0, N, 2N, ...) is held out as a test view, as mip-NeRF 360 does.

A root holding many scenes is read as ``ROOT/<scene>/transforms*.json``, one scene per directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerfvae.data.importers.common import (
    SourceScene,
    SourceView,
    checked_intrinsics,
    checked_pose,
    decode_image,
    focal_from_angle,
    image_file_size,
    intrinsics,
    number_matrix,
)
from nerfvae.data.storage import check_image_size
from nerfvae.errors import DataError, read_json_file
from nerfvae.geometry import opengl_to_opencv

BLENDER_SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y")


def _frame_image_and_pose(path: Path, index: int, frame: Any) -> tuple[Path, str, np.ndarray]:
    """Frame ``index`` of the transforms file ``path``: its image file, the place to name in
    errors (file, frame and image) and its OpenCV camera-to-world."""
    where = f"{path} frame {index}"
    if not isinstance(frame, dict) or "transform_matrix" not in frame:
        raise DataError(f"{where}: no transform_matrix")
    image_path = _resolve_image(path.parent, frame.get("file_path"), where)
    where = f"{where} ({image_path.name})"
    return image_path, where, _opencv_pose(frame["transform_matrix"], where)


def _read_json(path: Path) -> dict[str, Any]:
    data = read_json_file(path, DataError)
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise DataError(f"{path}: expected a JSON object with a 'frames' list")
    return data


def _resolve(path: Path, where: str) -> Path:
    """``path`` made absolute with symlinks resolved; DataError naming ``where`` for a name the
    system refuses (NUL byte, too long) or a symlink loop."""
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError) as error:
        raise DataError(f"{where}: cannot resolve {str(path)[:200]!r} ({error})"[:400]) from None


def _is_file(path: Path, where: str) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError) as error:
        raise DataError(f"{where}: cannot read {str(path)[:200]!r} ({error})"[:400]) from None


def _resolve_image(base: Path, file_path: Any, where: str) -> Path:
    """The image file a frame's ``file_path`` names; NeRF-synthetic leaves out the extension, and
    transforms files written on Windows separate directories with backslashes."""
    if not isinstance(file_path, str) or not file_path:
        raise DataError(f"{where}: missing or empty file_path")
    names = [file_path]
    if "\\" in file_path:  # a literal backslash in a POSIX name is tried first, then as "/"
        names.append(file_path.replace("\\", "/"))
    paths = [_resolve(base / name, where) for name in names]
    for path in paths:
        if _is_file(path, where):
            return path
        if not path.suffix or path.suffix not in IMAGE_SUFFIXES:
            for suffix in IMAGE_SUFFIXES:
                candidate = path.with_name(path.name + suffix)
                if _is_file(candidate, where):
                    return candidate
    raise DataError(f"{where}: image file {str(paths[0])[:300]} is missing")


def _opencv_pose(matrix: Any, where: str) -> np.ndarray:
    c2w_gl = number_matrix(matrix, where, "transform_matrix")
    if c2w_gl.shape == (3, 4):  # some exports drop the homogeneous row
        c2w_gl = np.concatenate([c2w_gl, [[0.0, 0.0, 0.0, 1.0]]])
    checked_pose(c2w_gl, where)
    return opengl_to_opencv(torch.from_numpy(c2w_gl)).numpy()


def _loader(path: Path, where: str):
    return lambda: decode_image(path, where)


def _read_blender_file(path: Path, notes: list[str]) -> list[SourceView]:
    """The views of one NeRF-synthetic ``transforms_<split>.json``; its intrinsics may also be
    instant-ngp's ``fl_x, fl_y, cx, cy, w, h`` and may be set per frame (see
    :func:`_frame_intrinsics`)."""
    data = _read_json(path)
    views = []
    for index, frame in enumerate(data["frames"]):
        image_path, where, c2w = _frame_image_and_pose(path, index, frame)
        K, size = _frame_intrinsics(path, data, frame, image_path, where, notes)
        views.append(
            SourceView(K, c2w, size, str(image_path), _loader(image_path, str(image_path)))
        )
    return views


def _blender_scene_dirs(src: Path, pattern: str) -> list[Path]:
    try:
        if not src.is_dir():
            raise DataError(f"{src}: not a directory")
        if any(src.glob(pattern)):
            return [src]
        scenes = sorted(p for p in src.iterdir() if p.is_dir() and any(p.glob(pattern)))
    except (OSError, ValueError) as error:
        raise DataError(f"{src}: cannot list the directory ({error})") from None
    if not scenes:
        hint = ""
        if pattern != "transforms.json" and _is_file(src / "transforms.json", str(src)):
            # instant-ngp / nerfstudio keep every frame in one file; that reader splits it
            hint = "; it holds a single transforms.json: import it with --format nerfstudio"
        raise DataError(
            f"{src}: no {pattern} here or in its subdirectories (expected a scene directory or a "
            f"root of scene directories){hint}"
        )
    return scenes


def read_blender(src: str | Path, notes: list[str] | None = None) -> list[SourceScene]:
    """NeRF-synthetic scenes under ``src`` (one scene directory, or a root of them). A missing
    ``transforms_val.json`` / ``transforms_test.json`` is no split, with a note in ``notes``."""
    notes = [] if notes is None else notes
    src = Path(src)
    scenes = []
    for scene_dir in _blender_scene_dirs(src, "transforms_*.json"):
        groups = {}
        for split in BLENDER_SPLITS:
            path = scene_dir / f"transforms_{split}.json"
            if not path.exists() and split != "train":
                notes.append(f"{path} is missing: the scene has no {split} views")
            if path.exists() or split == "train":
                views = _read_blender_file(path, notes)
                if views:
                    groups[split] = views
                elif split == "train":
                    raise DataError(f"{path}: has no frames")
                else:  # an empty val/test file is no split, said as for a missing one
                    notes.append(f"{path} has no frames: the scene has no {split} views")
        scenes.append(
            SourceScene(
                scene_dir.name, groups, None, {"source": str(scene_dir), "format": "blender"}
            )
        )
    return scenes


def looks_like_nerf_synthetic(scenes: list[SourceScene]) -> bool:
    """Whether cameras sit where NeRF-synthetic's do (about 4.03 from the origin, looking at it).

    Such scenes get that dataset's known bounds: near 2, far 6 and the box ±1.5.
    """
    for scene in scenes:
        c2w = np.stack([view.c2w for view in scene.all_views()])
        distance = np.linalg.norm(c2w[:, :3, 3], axis=-1)
        if not ((distance > 3.5) & (distance < 4.5)).all():
            return False
        # The optical axis passes near the origin: |o + t f| minimal at t = -o.f.
        centres, forward = c2w[:, :3, 3], c2w[:, :3, 2]
        along = -(centres * forward).sum(-1, keepdims=True)
        miss = np.linalg.norm(centres + along * forward, axis=-1)
        if not (miss < 0.5).all():
            return False
    return True


def _intrinsic_value(value: Any, where: str, key: str) -> float:
    """One intrinsics key of a transforms file as a float: a finite number, and for
    ``camera_angle_x|y`` a field of view in (0, pi)."""
    if key.startswith("camera_angle_"):
        focal_from_angle(value, 1, where, key)  # the one check of angles; raises if out of range
    elif not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise DataError(f"{where}: {key} must be a finite number, got {str(value)[:60]!r}")
    return float(value)


def _frame_intrinsics(
    path: Path,
    top: dict[str, Any],
    frame: dict[str, Any],
    image_path: Path,
    where: str,
    notes: list[str],
) -> tuple[np.ndarray, tuple[int, int]]:
    """K and image size ``(H, W)`` of one frame of the transforms file ``path``.

    Both transforms formats are read here: NeRF-synthetic's ``camera_angle_x`` and instant-ngp's /
    nerfstudio's ``fl_x, fl_y, cx, cy, w, h`` (exporters write either, or both, to
    ``transforms_*.json`` too), at the top level (``top``) or overridden per frame. A frame's
    value wins over the file's; per axis a focal length ``fl_*`` wins over an angle
    ``camera_angle_*`` of the same level (instant-ngp's order); ``fl_y`` defaults to ``fl_x`` and
    the principal point to the image centre. Pixel intrinsics declared for a ``w, h`` other than
    the image's (a downsampled copy of the images) are scaled to the image when the aspect ratio
    agrees (a note says so); another aspect ratio is an error. Errors name the file
    for a top-level value and the frame for a per-frame one.
    """
    keys = (*_INTRINSIC_KEYS, *_DISTORTION_KEYS)
    levels = [  # (values, where to name them), the frame's first
        ({key: _intrinsic_value(source[key], place, key) for key in keys if key in source}, place)
        for source, place in ((frame, where), (top, str(path)))
    ]
    values = {**levels[1][0], **levels[0][0]}
    actual = image_file_size(image_path, str(image_path))
    height, width = actual
    scale_x = scale_y = 1.0  # pixel intrinsics declared for another image size -> this one
    if "w" in values or "h" in values:
        place = where if "w" in levels[0][0] or "h" in levels[0][0] else str(path)
        declared_w, declared_h = values.get("w", float(width)), values.get("h", float(height))
        if not (declared_w.is_integer() and declared_h.is_integer()):
            raise DataError(f"{place}: w and h must be whole numbers of pixels")
        declared = check_image_size(int(declared_h), int(declared_w), place)
        if actual != declared:
            # A downsampled copy of a dataset keeps the original's file (as nerfstudio's
            # images_2 ... do): scale the pixel intrinsics with the image, as long as both axes
            # shrank by the same factor up to rounding; anything else is a wrong file.
            scale_x, scale_y = width / declared[1], height / declared[0]
            if (
                abs(declared[1] * scale_y - width) > 1.0
                or abs(declared[0] * scale_x - height) > 1.0
            ):
                raise DataError(
                    f"{image_path}: image is {height}x{width} (HxW) but {path.name} declares "
                    f"w={declared[1]}, h={declared[0]} for it (not the same aspect ratio)"
                )
            note = (
                f"{path.name} declares {declared[0]}x{declared[1]} (HxW) images but they are "
                f"{height}x{width}: its pixel intrinsics (fl_x, fl_y, cx, cy) are scaled to them"
            )
            if note not in notes:
                notes.append(note)

    def focal(axis: str, pixels: int, scale: float) -> float | None:
        """The focal length along ``axis`` (``x`` or ``y``): the frame's, else the file's."""
        for level, place in levels:
            if f"fl_{axis}" in level:
                return level[f"fl_{axis}"] * scale
            if f"camera_angle_{axis}" in level:
                key = f"camera_angle_{axis}"
                return focal_from_angle(level[key], pixels, place, key)
        return None

    fx = focal("x", width, scale_x)
    if fx is None:
        raise DataError(f"{where}: no focal length (fl_x or camera_angle_x)")
    fy = focal("y", height, scale_y)
    fy = fx if fy is None else fy
    cx = values["cx"] * scale_x if "cx" in values else 0.5 * width
    cy = values["cy"] * scale_y if "cy" in values else 0.5 * height
    if any(abs(values.get(key, 0.0)) > 0 for key in _DISTORTION_KEYS):
        note = "lens distortion (k1..k4, p1, p2) is ignored: images are used as pinhole images"
        if note not in notes:
            notes.append(note)
    K = checked_intrinsics(intrinsics(fx, fy, cx, cy), where, (height, width))
    return K, (height, width)


def _read_nerfstudio_file(
    path: Path, holdout_every: int, notes: list[str]
) -> dict[str, list[SourceView]]:
    data = _read_json(path)
    model = data.get("camera_model", "OPENCV")
    model = model.upper() if isinstance(model, str) else model
    if model not in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        raise DataError(
            f"{path}: camera_model {str(model)[:40]!r} is not a pinhole model; not supported"
        )
    named = {}
    for split in BLENDER_SPLITS:
        names = data.get(f"{split}_filenames", [])
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise DataError(f"{path}: {split}_filenames must be a list of file names")
        where = f"{path} {split}_filenames"
        named[split] = {str(_resolve_image(path.parent, name, where)) for name in names}
    has_lists = any(named.values())
    groups: dict[str, list[SourceView]] = {split: [] for split in BLENDER_SPLITS}
    unlisted = 0
    for index, frame in enumerate(data["frames"]):
        image_path, where, c2w = _frame_image_and_pose(path, index, frame)
        K, size = _frame_intrinsics(path, data, frame, image_path, where, notes)
        view = SourceView(K, c2w, size, str(image_path), _loader(image_path, str(image_path)))
        if has_lists:
            split = next((s for s in BLENDER_SPLITS if str(image_path) in named[s]), None)
            if split is None:  # a frame in no list is in no split
                unlisted += 1
                continue
        else:
            split = "test" if holdout_every > 0 and index % holdout_every == 0 else "train"
        groups[split].append(view)
    if unlisted:
        notes.append(
            f"{path}: {unlisted} of {len(data['frames'])} frames are in none of "
            "train/val/test_filenames and are left out"
        )
    groups = {split: views for split, views in groups.items() if views}
    if "train" not in groups:
        raise DataError(f"{path}: no training frames")
    return groups


def read_nerfstudio(
    src: str | Path, holdout_every: int = 8, notes: list[str] | None = None
) -> list[SourceScene]:
    """nerfstudio / instant-ngp scenes: ``src/transforms.json`` or ``src/<scene>/transforms.json``.

    ``src`` may also name a ``transforms.json`` file directly.
    """
    notes = [] if notes is None else notes
    src = Path(src)
    if _is_file(src, str(src)):
        paths = [src]
    else:
        paths = [scene / "transforms.json" for scene in _blender_scene_dirs(src, "transforms.json")]
    scenes = []
    for path in paths:
        groups = _read_nerfstudio_file(path, holdout_every, notes)
        scenes.append(
            SourceScene(
                path.parent.name, groups, None, {"source": str(path), "format": "nerfstudio"}
            )
        )
    return scenes
