"""ShapeNet-SRN (Sitzmann et al. 2019) in pixelNeRF's layout.

pixelNeRF's ``srn_cars.zip`` / ``srn_chairs.zip`` unpack to::

    srn_cars/cars_train/<instance>/{intrinsics.txt, rgb/000000.png ..., pose/000000.txt ...}
    srn_cars/cars_val/<instance>/...
    srn_cars/cars_test/<instance>/...
    srn_chairs/chairs_train/chairs_2.0_train/<instance>/...    (one extra level for chairs)

Each directory ending in ``_train``, ``_val`` or ``_test`` is that split of instances (50 views per
training instance, 251 per test instance on an Archimedean spiral, 128×128 on a white background).
``src`` may be the dataset root (``srn_cars``), pixelNeRF's prefix (``srn_cars/cars``, to which it
appends ``_train`` etc.), or a single directory of instances (no split given).

``intrinsics.txt``: first line ``f cx cy _``, last line ``H W`` (lines in between are unused).
``pose/*.txt``: 16 numbers, a row-major 4×4 camera-to-world.

**Camera convention.** SRN builds rays as ``((u - cx)/f, (v - cy)/f, 1)`` rotated by the pose,
i.e. its poses are OpenCV camera-to-world (x right, y down, z forward). pixelNeRF's
``SRNDataset`` multiplies every pose on the right by ``diag(1, -1, -1, 1)``: that flips the
camera's y and z axes, turning the OpenCV pose into the OpenGL one its renderer expects (pixelNeRF
casts rays along −z with y up). Since nerfvae is OpenCV, the SRN pose is used **as stored**, with
no flip. ``cx, cy`` (64 for 128-pixel images) are the image centre in continuous pixel coordinates,
matching nerfvae's pixel-centre-at-+0.5 convention.

Near/far: pixelNeRF uses 0.8/1.8 for cars and 1.25/2.75 for chairs; the importer uses these for
those categories and otherwise estimates them from the cameras.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfvae.data.importers.common import (
    SourceScene,
    SourceView,
    checked_intrinsics,
    checked_pose,
    decode_image,
    intrinsics,
)
from nerfvae.data.storage import check_image_size
from nerfvae.errors import DataError

SRN_SPLITS = ("train", "val", "test")
# pixelNeRF's z_near / z_far per category.
KNOWN_NEAR_FAR = {"cars": (0.8, 1.8), "chairs": (1.25, 2.75)}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _is_instance(path: Path) -> bool:
    return (path / "intrinsics.txt").is_file() or (path / "rgb").is_dir()


def _instances(split_dir: Path) -> list[Path]:
    """Instance directories of a split directory, descending through one wrapper level."""
    try:
        return _find_instances(split_dir)
    except OSError as error:
        raise DataError(f"{error.filename or split_dir}: cannot read directory ({error})") from None


def _find_instances(split_dir: Path) -> list[Path]:
    found = sorted(path for path in split_dir.iterdir() if path.is_dir() and _is_instance(path))
    if not found:
        subdirs = [path for path in split_dir.iterdir() if path.is_dir()]
        if len(subdirs) == 1:  # chairs_train/chairs_2.0_train/<instance>
            found = sorted(p for p in subdirs[0].iterdir() if p.is_dir() and _is_instance(p))
    return found


def find_splits(src: str | Path) -> dict[str | None, list[Path]]:
    """``{split: [instance dirs]}`` (split None when ``src`` is one directory of instances)."""
    src = Path(src)
    try:
        return _find_splits(src)
    except OSError as error:
        raise DataError(f"{error.filename or src}: cannot read directory ({error})") from None


def _find_splits(src: Path) -> dict[str | None, list[Path]]:
    if not src.is_dir():
        prefixed = {s: src.parent / f"{src.name}_{s}" for s in SRN_SPLITS}
        if not any(path.is_dir() for path in prefixed.values()):
            raise DataError(f"{src}: not a directory (nor a prefix of {src.name}_train etc.)")
        split_dirs = {s: path for s, path in prefixed.items() if path.is_dir()}
    else:
        split_dirs = {}
        for path in sorted(src.iterdir()):
            for split in SRN_SPLITS:
                if path.is_dir() and path.name.endswith(f"_{split}"):
                    split_dirs[split] = path
    if split_dirs:
        splits: dict[str | None, list[Path]] = {s: _instances(d) for s, d in split_dirs.items()}
        for split, found in splits.items():
            if not found:
                raise DataError(f"{split_dirs[split]}: no SRN instances (directories with rgb/)")
        return splits
    found = _instances(src)
    if not found:
        raise DataError(
            f"{src}: no SRN instances (<instance>/rgb, pose, intrinsics.txt) and no "
            "*_train/*_val/*_test split directories"
        )
    return {None: found}


def read_intrinsics(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """``K [3, 3]`` and ``(H, W)`` from an SRN ``intrinsics.txt``.

    ``f cx cy ...`` is the first line and ``H W`` the last (pixelNeRF's reading), except that
    SRN's own reader allows one more line after ``H W``: a single integer, ``world2cam_poses``;
    that flag set (poses stored world-to-camera) is refused rather than read as camera-to-world.
    """
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
        if len(lines) < 2:
            raise ValueError(f"found {len(lines)} line(s)")
        focal, cx, cy = (float(value) for value in lines[0][:3])
        if len(lines) >= 5 and len(lines[-1]) == 1:  # SRN's optional world2cam_poses flag
            if int(lines[-1][0]) != 0:
                raise DataError(
                    f"{path}: world2cam_poses flag is {lines[-1][0]} (poses stored "
                    "world-to-camera); only SRN's camera-to-world poses are supported"
                )
            lines = lines[:-1]
        height, width = (float(value) for value in lines[-1][:2])
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except (OSError, ValueError, IndexError) as error:
        raise DataError(
            f"{path}: expected 'f cx cy ...' on the first line and 'H W' on the last "
            f"({str(error)[:200]})"
        ) from None
    if not (height.is_integer() and width.is_integer()):
        raise DataError(f"{path}: image size {height}x{width} must be whole numbers of pixels")
    size = check_image_size(int(height), int(width), str(path))
    return checked_intrinsics(intrinsics(focal, focal, cx, cy), str(path), size), size


def read_pose(path: Path) -> np.ndarray:
    """OpenCV camera-to-world ``[4, 4]`` from an SRN ``pose/*.txt``: 16 numbers (a row-major 4x4),
    or 12 (a 3x4 whose last row ``[0, 0, 0, 1]`` some exporters leave out)."""
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except FileNotFoundError:
        raise DataError(f"{path}: pose file is missing") from None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: pose must be 16 numbers ({str(error)[:200]})") from None
    if values.size == 12:
        values = np.concatenate([values, [0.0, 0.0, 0.0, 1.0]])
    if values.size != 16:
        raise DataError(
            f"{path}: pose must be 16 numbers (a 4x4 matrix) or 12 (3x4), found {values.size}"
        )
    return checked_pose(values.reshape(4, 4), str(path))


def read_instance(instance: Path, split: str | None, category: str) -> SourceScene:
    K, size = read_intrinsics(instance / "intrinsics.txt")
    rgb_dir, pose_dir = instance / "rgb", instance / "pose"
    try:
        if not rgb_dir.is_dir():
            raise DataError(f"{rgb_dir}: directory is missing")
        # Hidden files are no views: macOS archives add "._000000.png" resource forks.
        images = sorted(
            p
            for p in rgb_dir.iterdir()
            if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        poses = sorted(
            p
            for p in (pose_dir.glob("*.txt") if pose_dir.is_dir() else [])
            if not p.name.startswith(".")
        )
    except OSError as error:
        raise DataError(f"{instance}: cannot read the instance directory ({error})") from None
    if not images:
        raise DataError(f"{rgb_dir}: no images")
    pose_by_stem = {path.stem: path for path in poses}
    image_stems = {path.stem for path in images}
    views = []
    for image in images:
        if image.stem not in pose_by_stem:
            raise DataError(f"{image}: has no pose file {pose_dir / (image.stem + '.txt')}")
        c2w = read_pose(pose_by_stem[image.stem])
        views.append(SourceView(K, c2w, size, str(image), _loader(image)))
    extra = sorted(stem for stem in pose_by_stem if stem not in image_stems)
    if extra:
        raise DataError(f"{pose_dir / (extra[0] + '.txt')}: pose has no image in {rgb_dir}")
    info = {"source": str(instance), "format": "srn", "category": category}
    return SourceScene(instance.name, {"all": views}, split, info)


def _loader(path: Path):
    return lambda: decode_image(path, str(path))


def category_name(src: str | Path, splits: dict[str | None, list[Path]]) -> str:
    """``cars`` for ``srn_cars``, ``cars_train`` or ``srn_cars/cars`` (used for known near/far)."""
    for instances in splits.values():
        for part in reversed(instances[0].parts[:-1]):
            name = part.lower()
            for known in KNOWN_NEAR_FAR:
                if known in name:
                    return known
    return Path(src).name.removeprefix("srn_").split("_")[0]


def read_srn(src: str | Path) -> list[SourceScene]:
    """All SRN instances under ``src`` with their pixelNeRF split."""
    splits = find_splits(src)
    category = category_name(src, splits)
    return [
        read_instance(instance, split, category)
        for split, instances in splits.items()
        for instance in instances
    ]
