"""Ground-truth surfaces of the built-in rooms and the Chamfer distance of a mesh to them.

A scene's ``objects`` list (see :mod:`nerfvae.data.rooms`) gives each object's exact shape:
spheres (``radius``), cubes rotated about z (``half_size``, ``rotation_z_deg``) and upright capped
cylinders (``radius``, ``half_height``, ``rotation_z_deg``), centred at ``position`` (z up, metres).
Points are drawn uniformly by area on those surfaces, so Chamfer distances weigh every square
centimetre of surface alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nerfvae.data.rooms import shape_signed_distance
from nerfvae.errors import DataError

SHAPE_FIELDS = {
    "sphere": ("radius",),
    "cube": ("half_size",),
    "cylinder": ("radius", "half_height"),
}


def _check_object(obj: dict[str, Any], index: int) -> None:
    shape = obj.get("shape")
    if shape not in SHAPE_FIELDS:
        raise DataError(
            f"object {index}: unknown shape {shape!r} (known: {', '.join(SHAPE_FIELDS)})"
        )
    for name in ("position", *SHAPE_FIELDS[shape]):
        if name not in obj:
            raise DataError(f"object {index} ({shape}) has no {name!r}")


def _rotate_z(local: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate ``[N, 3]`` object-frame offsets into the world (about +z by ``degrees``), the
    inverse of the object-frame map in :func:`nerfvae.data.rooms.shape_signed_distance`."""
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    x, y = local[:, 0], local[:, 1]
    return np.stack([cos * x - sin * y, sin * x + cos * y, local[:, 2]], axis=-1)


def object_surface_area(obj: dict[str, Any]) -> float:
    """Exact surface area (m²) of one object."""
    if obj["shape"] == "sphere":
        return 4 * math.pi * float(obj["radius"]) ** 2
    if obj["shape"] == "cube":
        return 6 * (2 * float(obj["half_size"])) ** 2
    radius, half_height = float(obj["radius"]), float(obj["half_height"])
    return 2 * math.pi * radius * 2 * half_height + 2 * math.pi * radius**2


def _sample_one(obj: dict[str, Any], count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` points ``[count, 3]`` uniformly by area on one object's surface (world)."""
    if obj["shape"] == "sphere":
        directions = rng.normal(size=(count, 3))
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        local = float(obj["radius"]) * directions
    elif obj["shape"] == "cube":
        half = float(obj["half_size"])
        # six equal faces: pick axis and side, then a uniform point on that face
        local = rng.uniform(-half, half, size=(count, 3))
        axis = rng.integers(0, 3, size=count)
        side = rng.choice([-half, half], size=count)
        local[np.arange(count), axis] = side
    else:
        radius, half_height = float(obj["radius"]), float(obj["half_height"])
        side_area = 2 * math.pi * radius * 2 * half_height
        cap_area = math.pi * radius**2
        on_side = rng.uniform(size=count) < side_area / (side_area + 2 * cap_area)
        angle = rng.uniform(0, 2 * math.pi, size=count)
        # sqrt: uniform density over the cap disc
        distance = np.where(on_side, radius, radius * np.sqrt(rng.uniform(size=count)))
        height = np.where(
            on_side,
            rng.uniform(-half_height, half_height, size=count),
            rng.choice([-half_height, half_height], size=count),
        )
        local = np.stack([distance * np.cos(angle), distance * np.sin(angle), height], axis=-1)
    rotated = _rotate_z(local, float(obj.get("rotation_z_deg", 0.0)))
    return rotated + np.asarray(obj["position"], dtype=np.float64)


def sample_object_surfaces(
    objects: list[dict[str, Any]], count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` points ``[count, 3]`` uniformly by area over the union of the objects' surfaces
    (each object gets a multinomial share in proportion to its area)."""
    if not objects:
        raise DataError("the scene lists no objects, so there is no ground-truth surface")
    for index, obj in enumerate(objects):
        _check_object(obj, index)
    areas = np.array([object_surface_area(obj) for obj in objects])
    counts = rng.multinomial(count, areas / areas.sum())
    return np.concatenate(
        [_sample_one(obj, int(n), rng) for obj, n in zip(objects, counts) if n > 0]
    )


def object_signed_distance(objects: list[dict[str, Any]], points: np.ndarray) -> np.ndarray:
    """Signed distance ``[N]`` of ``points [N, 3]`` to the nearest object surface (negative
    inside an object): the minimum over objects of the generator's exact per-shape distance
    (:func:`nerfvae.data.rooms.shape_signed_distance`)."""
    for index, obj in enumerate(objects):
        _check_object(obj, index)
    return np.min(np.stack([shape_signed_distance(obj, points) for obj in objects]), axis=0)


def objects_region(
    objects: list[dict[str, Any]], margin: float = 0.25, floor_clearance: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned box ``(min [3], max [3])`` around all objects, widened by ``margin`` in x,
    y and above, starting ``floor_clearance`` above the lowest object base so the floor on which
    the objects stand (and their never-seen bottoms) stay out of the comparison."""
    low, high = [], []
    for index, obj in enumerate(objects):
        _check_object(obj, index)
        centre = np.asarray(obj["position"], dtype=np.float64)
        if obj["shape"] == "sphere":
            half = np.full(3, float(obj["radius"]))
        elif obj["shape"] == "cube":
            half = np.full(3, math.sqrt(2.0) * float(obj["half_size"]))
            half[2] = float(obj["half_size"])
        else:
            radius = float(obj["radius"])
            half = np.array([radius, radius, float(obj["half_height"])])
        low.append(centre - half)
        high.append(centre + half)
    box_min, box_max = np.min(low, axis=0), np.max(high, axis=0)
    box_min = box_min - np.array([margin, margin, 0.0])
    box_min[2] += floor_clearance
    return box_min, box_max + margin


def inside_box(points: np.ndarray, box_min: np.ndarray, box_max: np.ndarray) -> np.ndarray:
    """Mask ``[N]`` of ``points [N, 3]`` inside the closed box."""
    return np.all((points >= box_min) & (points <= box_max), axis=-1)


def chamfer_distance(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Symmetric Chamfer distance between point sets ``[N, 3]`` and ``[M, 3]`` (metres).

    ``accuracy`` is the mean distance from each predicted point to its nearest reference point,
    ``completeness`` the mean distance from each reference point to the prediction, and
    ``chamfer`` their average (so two samplings of the same surface score near 0 and a surface
    offset by d scores near d)."""
    from scipy.spatial import cKDTree

    if len(predicted) == 0 or len(reference) == 0:
        return {"accuracy": math.inf, "completeness": math.inf, "chamfer": math.inf}
    accuracy = float(cKDTree(reference).query(predicted)[0].mean())
    completeness = float(cKDTree(predicted).query(reference)[0].mean())
    return {
        "accuracy": accuracy,
        "completeness": completeness,
        "chamfer": 0.5 * (accuracy + completeness),
    }


def mesh_object_chamfer(
    mesh,
    objects: list[dict[str, Any]],
    points: int = 20000,
    seed: int = 0,
    margin: float = 0.25,
    floor_clearance: float = 0.05,
    mesh_oversampling: int = 10,
) -> dict[str, float]:
    """Chamfer distance (metres) of a mesh to the scene's objects, both sides cropped to
    :func:`objects_region` (floor, walls and object bottoms stay out).

    ``accuracy``: mean exact distance from points on the mesh to the nearest object surface
    (:func:`object_signed_distance`, no sampling error); ``completeness``: mean distance from
    ``points`` points on the objects to the nearest of ``mesh_oversampling`` times as many points
    on the mesh (so the sampling adds well under a millimetre for room-sized objects);
    ``chamfer``: their average. Also reports how many points survived the crop."""
    rng = np.random.default_rng(seed)
    box_min, box_max = objects_region(objects, margin, floor_clearance)
    reference = sample_object_surfaces(objects, points, rng)
    reference = reference[inside_box(reference, box_min, box_max)]
    predicted = sample_mesh_surface(mesh, points * mesh_oversampling, seed)
    predicted = predicted[inside_box(predicted, box_min, box_max)]
    if len(predicted) == 0 or len(reference) == 0:
        result = {"accuracy": math.inf, "completeness": math.inf, "chamfer": math.inf}
    else:
        from scipy.spatial import cKDTree

        accuracy = float(np.abs(object_signed_distance(objects, predicted)).mean())
        completeness = float(cKDTree(predicted).query(reference)[0].mean())
        result = {
            "accuracy": accuracy,
            "completeness": completeness,
            "chamfer": 0.5 * (accuracy + completeness),
        }
    result["mesh_points"] = len(predicted)
    result["reference_points"] = len(reference)
    return result


def sample_mesh_surface(mesh, count: int, seed: int = 0) -> np.ndarray:
    """``count`` points ``[count, 3]`` uniformly by area on a triangle mesh."""
    rng = np.random.default_rng(seed)
    triangles = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces)]  # [F, 3, 3]
    if len(triangles) == 0:
        return np.zeros((0, 3))
    areas = 0.5 * np.linalg.norm(
        np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=-1
    )
    chosen = rng.choice(len(triangles), size=count, p=areas / areas.sum())
    # uniform barycentric coordinates: fold the unit square onto the triangle
    u, v = rng.uniform(size=(2, count))
    flip = u + v > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    corner = triangles[chosen]
    return (
        corner[:, 0]
        + u[:, None] * (corner[:, 1] - corner[:, 0])
        + v[:, None] * (corner[:, 2] - corner[:, 0])
    )
