"""Shared pieces of the standard-format readers: lazy source views, image loading, bounds.

A reader turns a directory in some published format into :class:`SourceScene` objects whose
cameras are already in nerfvae's convention (OpenCV camera-to-world, ``K`` with the pixel centre
at +0.5) but whose images are loaded only when the importer writes them, so a dataset larger than
memory streams through. Everything that goes wrong raises :class:`~nerfvae.errors.DataError`
naming the file.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerfvae.data.storage import check_image_size
from nerfvae.errors import DataError, NerfVAEError
from nerfvae.geometry import check_intrinsics, check_pose, optical_axes_point


@dataclass
class SourceView:
    """One posed image of a source dataset, with its pixels loaded on demand.

    Attributes:
        K: ``[3, 3]`` float64 OpenCV intrinsics for an image of ``size`` (pixel centre at +0.5).
        c2w: ``[4, 4]`` float64 OpenCV camera-to-world.
        size: ``(H, W)`` the image must have (declared by the format or read from its header).
        where: file (and record) that holds the image, for error messages.
        load: returns the image as ``[H, W, 3]`` or ``[H, W, 4]`` uint8 (RGB or RGBA).
    """

    K: np.ndarray
    c2w: np.ndarray
    size: tuple[int, int]
    where: str
    load: Callable[[], np.ndarray]


@dataclass
class SourceScene:
    """A scene of a source dataset: its views, grouped as the format groups them.

    Attributes:
        scene_id: name unique within the source (directory name, record index, ...).
        view_groups: ``{"train": [...], "val": [...], "test": [...]}`` for formats that split the
            views of one scene (NeRF-synthetic), else ``{"all": [...]}``.
        split: the nerfvae split the format puts the whole scene in (SRN instance split, GQN
            train/test), or None when the format does not say.
        info: JSON-serialisable facts kept in the shard header (source path, category, ...).
    """

    scene_id: str
    view_groups: dict[str, list[SourceView]]
    split: str | None = None
    info: dict = field(default_factory=dict)

    def all_views(self) -> list[SourceView]:
        return [view for group in self.view_groups.values() for view in group]


_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def _open_image(data: bytes | Path, where: str):
    """PIL's image for ``data`` after checking the size in its header (nothing decoded yet)."""
    import warnings

    from PIL import Image

    # PIL's own decompression-bomb check would raise from open(); ours (lower) runs right after,
    # on the header alone, and names the file.
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        check_image_size(image.height, image.width, where)
    except DataError:
        image.close()
        raise
    return image


def _image_error(error: Exception, where: str, action: str) -> DataError:
    if isinstance(error, FileNotFoundError):
        return DataError(f"{where}: image file is missing")
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return DataError(f"{where}: cannot {action} image ({reason[:200]})")


def decode_image(data: bytes | Path, where: str) -> np.ndarray:
    """Decode PNG/JPEG bytes or a file into ``[H, W, 3|4]`` uint8 (grey → RGB, palettes expanded).

    The size in the header is checked (:func:`~nerfvae.data.storage.check_image_size`) before any
    pixel is decoded; 16-bit images are scaled to 8 bits (``round(v * 255 / 65535)``), not
    clipped. Anything that cannot be decoded raises DataError naming ``where``."""
    try:
        with _open_image(data, where) as image:
            image.load()
            if image.mode in _SIXTEEN_BIT_MODES:  # 16-bit grey (PIL has no 16-bit RGB mode)
                grey = np.asarray(image).astype(np.float64).clip(0, 65535)
                pixels = np.repeat(
                    (grey * (255.0 / 65535.0) + 0.5).astype(np.uint8)[..., None], 3, axis=-1
                )
            elif image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                pixels = np.asarray(image.convert("RGBA"))
            elif image.mode == "F":
                raise DataError(f"{where}: floating-point images are not supported")
            else:
                pixels = np.asarray(image.convert("RGB"))
    except NerfVAEError:
        raise
    except Exception as error:  # PIL's decoders raise many types on corrupt data
        raise _image_error(error, where, "decode") from None
    return np.ascontiguousarray(pixels)


def image_file_size(path: Path, where: str) -> tuple[int, int]:
    """``(H, W)`` of an image file, reading only its header (checked to be a sane size)."""
    try:
        with _open_image(path, where) as image:
            width, height = image.size
    except NerfVAEError:
        raise
    except Exception as error:  # PIL raises many types on corrupt headers
        raise _image_error(error, where, "read") from None
    return height, width


def prepare_image(
    pixels: np.ndarray,
    where: str,
    expected_size: tuple[int, int],
    out_size: tuple[int, int],
    background: tuple[float, float, float],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Composite RGBA over ``background`` and resize with an area (box) filter.

    Args:
        pixels: ``[H, W, 3|4]`` uint8 as decoded.
        expected_size: ``(H, W)`` the format declared for this view; a different decoded size is an
            error (the intrinsics would not match the pixels).
        out_size: ``(H', W')`` to write.

    Returns:
        ``rgb [H', W', 3]`` uint8 and, for RGBA input, ``foreground [H', W']`` bool
        (area-averaged alpha > 0.5), else None.
    """
    from PIL import Image

    height, width = pixels.shape[:2]
    if (height, width) != tuple(expected_size):
        raise DataError(
            f"{where}: image is {height}x{width} (HxW) but the cameras describe "
            f"{expected_size[0]}x{expected_size[1]}"
        )
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise DataError(f"{where}: expected an RGB or RGBA image, got shape {pixels.shape}")
    alpha = None
    if pixels.shape[2] == 4:
        # Compositing before the box filter equals filtering premultiplied colour, then compositing.
        alpha = pixels[..., 3:4].astype(np.float32) / 255.0
        colour = pixels[..., :3].astype(np.float32) / 255.0
        composite = colour * alpha + np.asarray(background, np.float32) * (1.0 - alpha)
        rgb = (composite * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    else:
        rgb = pixels
    out_height, out_width = out_size
    if (out_height, out_width) != (height, width):
        rgb = np.asarray(Image.fromarray(rgb).resize((out_width, out_height), Image.Resampling.BOX))
        if alpha is not None:
            alpha_image = Image.fromarray(alpha[..., 0], mode="F")
            alpha = np.asarray(alpha_image.resize((out_width, out_height), Image.Resampling.BOX))[
                ..., None
            ]
    foreground = None if alpha is None else alpha[..., 0] > 0.5
    return np.ascontiguousarray(rgb), foreground


def scale_intrinsics(
    K: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> np.ndarray:
    """Intrinsics ``[..., 3, 3]`` for the same camera after resizing ``(H, W)`` → ``(H', W')``.

    With the pixel centre at +0.5, continuous pixel coordinates scale exactly: ``u' = u W'/W``.
    """
    sx = to_size[1] / from_size[1]
    sy = to_size[0] / from_size[0]
    scaled = np.array(K, dtype=np.float64, copy=True)
    scaled[..., 0, :] *= sx
    scaled[..., 1, :] *= sy
    return scaled


def checked_pose(c2w: np.ndarray, where: str) -> np.ndarray:
    """One view's camera-to-world as a ``[4, 4]`` float64 array, checked to be rigid by
    :func:`nerfvae.geometry.check_pose`; raises DataError naming ``where`` otherwise."""
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.shape != (4, 4):
        raise DataError(f"{where}: camera pose must be a 4x4 matrix, got shape {c2w.shape}")
    try:
        check_pose(torch.from_numpy(c2w))
    except ValueError as error:
        raise DataError(f"{where}: {error}") from None
    return c2w


def checked_intrinsics(
    K: np.ndarray, where: str, image_size: tuple[int, int] | None = None
) -> np.ndarray:
    """One view's intrinsics as a ``[3, 3]`` float64 array, checked by
    :func:`nerfvae.geometry.check_intrinsics` (with the image size when given: principal point
    and focal length in range); raises DataError naming ``where`` otherwise."""
    K = np.asarray(K, dtype=np.float64)
    try:
        check_intrinsics(torch.from_numpy(K), image_size)
    except ValueError as error:
        raise DataError(f"{where}: {error}") from None
    return K


def focal_from_angle(angle: Any, size: int, where: str, key: str) -> float:
    """Focal length (pixels) across ``size`` pixels for the full field of view ``angle`` (radians,
    the ``camera_angle_x|y`` of transforms files), which must be a number in (0, pi)."""
    if (
        not isinstance(angle, int | float)
        or isinstance(angle, bool)
        or not 1e-6 < angle < math.pi - 1e-6
    ):
        raise DataError(f"{where}: {key} must be a field of view in (0, pi) radians, got {angle!r}")
    return 0.5 * size / math.tan(0.5 * angle)


def number_matrix(value: Any, where: str, what: str) -> np.ndarray:
    """``value`` (nested JSON lists) as a float64 array if it holds only numbers (finiteness is
    left to the check of what it describes, e.g. :func:`checked_pose`)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError, RecursionError):
        array = np.asarray(None)
    if array.dtype.kind not in "iuf":
        raise DataError(f"{where}: {what} must be an array of numbers")
    return array.astype(np.float64)


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """``[3, 3]`` float64 OpenCV intrinsics."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Scene bounds and near/far from cameras
# ---------------------------------------------------------------------------------------------


@dataclass
class Bounds:
    """An axis-aligned scene box and ray distances bounding every surface seen by the cameras."""

    box_min: np.ndarray
    box_max: np.ndarray
    near: float
    far: float
    how: str
    """How they were found (``known``, ``object-centric``, ``inside-out``, ``override``)."""

    def union(self, other: Bounds) -> Bounds:
        how = self.how if self.how == other.how else "mixed"
        return Bounds(
            np.minimum(self.box_min, other.box_min),
            np.maximum(self.box_max, other.box_max),
            min(self.near, other.near),
            max(self.far, other.far),
            how,
        )


def _half_fov(K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Smallest half field of view ``[V]`` (radians) of each camera, over the four image edges."""
    height, width = size
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    edges = np.stack([cx / fx, (width - cx) / fx, cy / fy, (height - cy) / fy], axis=-1)
    return np.arctan(edges.clip(min=0.0)).min(axis=-1)


def estimate_bounds(
    K: np.ndarray, c2w: np.ndarray, size: tuple[int, int], layout: str = "auto"
) -> Bounds:
    """Scene box and near/far of one scene from its cameras alone.

    Args:
        K: ``[V, 3, 3]``; c2w: ``[V, 4, 4]`` OpenCV; size: ``(H, W)`` of the images.
        layout: ``object-centric`` (cameras around a common subject they all look at, as in
            NeRF-synthetic, SRN, Shepard-Metzler), ``inside-out`` (cameras inside the scene, as in
            GQN rooms and mazes) or ``auto`` (object-centric when the common look-at point is in
            view of every camera, else inside-out).

    Object-centric: the subject is the sphere around the common look-at point ``p`` that every
    camera sees whole, enlarged by 10 %: ``r = 1.1 min_i |o_i - p| sin(half-fov_i)``; the box is
    ``p ± r`` and ``near, far = min_i d_i - r√3, max_i d_i + r√3`` (the box corners' distances).
    Inside-out: the box of camera centres grown on every side by its largest extent (so walls a
    room-radius beyond the cameras are inside); near is 1 % of that extent, far the farthest box
    corner from any camera.
    """
    centres = c2w[:, :3, 3]
    point, well_posed = optical_axes_point(c2w)
    look_at_point = point if well_posed else None
    if layout == "auto":
        layout = "inside-out"
        if look_at_point is not None:
            relative = (look_at_point[None] - centres)[:, :, None]
            camera_frame = (np.transpose(c2w[:, :3, :3], (0, 2, 1)) @ relative)[:, :, 0]
            in_front = camera_frame[:, 2] > 0
            if in_front.all():
                angle = np.arctan2(np.linalg.norm(camera_frame[:, :2], axis=-1), camera_frame[:, 2])
                if (angle < _half_fov(K, size)).all():
                    layout = "object-centric"
    if layout == "object-centric" and look_at_point is not None:
        distances = np.linalg.norm(centres - look_at_point[None], axis=-1)
        radius = 1.1 * float((distances * np.sin(_half_fov(K, size))).min())
        radius = max(radius, 1e-6)
        reach = radius * math.sqrt(3.0)
        near = max(float(distances.min()) - reach, 0.01 * float(distances.min()))
        far = float(distances.max()) + reach
        return Bounds(look_at_point - radius, look_at_point + radius, near, far, "object-centric")
    low, high = centres.min(axis=0), centres.max(axis=0)
    extent = float((high - low).max())
    if extent < 1e-6:
        extent = 1.0  # a single camera position: a unit margin, as good a guess as any
    box_min, box_max = low - extent, high + extent
    corners = np.stack(np.meshgrid(*zip(box_min, box_max), indexing="ij"), -1).reshape(-1, 3)
    far = float(np.linalg.norm(corners[None] - centres[:, None], axis=-1).max())
    return Bounds(box_min, box_max, 0.01 * extent, far, "inside-out")
