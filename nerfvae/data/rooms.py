"""Random rooms (GQN-style) and their cameras: pure numpy/torch, no renderer.

World convention: **z up**, metres. The room's floor is the square ``|x|, |y| <= half_width`` at
``z = 0``; four walls of height ``wall_height`` stand at ``x = ±half_width`` and
``y = ±half_width``; there is no ceiling (the environment light comes in from above). Objects stand
on the floor inside a central disc. Cameras are OpenCV (x right, y down, z forward) with the image
"up" along world +z.

Everything here is drawn from a ``numpy.random.Generator`` so a scene is a pure function of its seed.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from nerfvae.geometry import intrinsics_matrix, look_at

SHAPES = ("sphere", "cube", "cylinder")
MATERIALS = ("matte", "plastic", "metal")
MAX_OBJECTS = 5
TEXTURE_SIZE = 32
TEXTURE_PATTERNS = ("plain", "checker", "stripes", "tiles", "noise")

# Object colours (linear RGB) as in CLEVR-like palettes; the name goes into the scene's JSON.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.70, 0.06, 0.05),
    "green": (0.08, 0.50, 0.10),
    "blue": (0.06, 0.14, 0.70),
    "yellow": (0.80, 0.65, 0.05),
    "cyan": (0.05, 0.55, 0.60),
    "magenta": (0.60, 0.06, 0.50),
    "orange": (0.85, 0.30, 0.03),
    "white": (0.80, 0.80, 0.80),
}


@dataclass(frozen=True)
class RoomLayout:
    """Fixed geometry of every room and the ranges objects are drawn from (metres, degrees)."""

    half_width: float = 3.0
    wall_height: float = 2.5
    placement_radius: float = 1.2
    """Object centres lie in the disc of this radius around the room centre."""
    gap: float = 0.08
    """Minimum clearance between the footprints (bounding circles) of two objects."""
    sphere_radius: tuple[float, float] = (0.25, 0.45)
    cube_half_size: tuple[float, float] = (0.22, 0.38)
    cylinder_radius: tuple[float, float] = (0.18, 0.35)
    cylinder_half_height: tuple[float, float] = (0.22, 0.45)
    objects_per_scene: tuple[int, int] = (2, 5)

    @property
    def scene_bounds(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """The room interior: everything rendered lies in this box (z up)."""
        w = self.half_width
        return (-w, -w, 0.0), (w, w, self.wall_height)

    @property
    def far(self) -> float:
        """No surface is farther than the room's diagonal from a camera inside the room."""
        return math.sqrt((2 * self.half_width) ** 2 * 2 + self.wall_height**2)


@dataclass(frozen=True)
class CameraDistribution:
    """How cameras are drawn: on a sphere of ``radius`` around ``target`` (plus a random offset in
    the floor plane), at ``elevation`` degrees above horizontal, uniform azimuth, square pixels
    with a vertical field of view ``fov_y`` degrees and the principal point at the image centre."""

    radius: tuple[float, float]
    elevation_deg: tuple[float, float]
    fov_y_deg: tuple[float, float]
    target_offset: float
    """Maximum distance (floor plane) of the look-at point from the base target."""
    target: tuple[float, float, float] = (0.0, 0.0, 0.35)


ID_CAMERAS = CameraDistribution(
    radius=(2.0, 2.4), elevation_deg=(20.0, 35.0), fov_y_deg=(55.0, 55.0), target_offset=0.0
)
OOD_CAMERAS = CameraDistribution(
    radius=(1.3, 1.7), elevation_deg=(45.0, 60.0), fov_y_deg=(70.0, 78.0), target_offset=0.5
)

OBJECTS_LAYOUT = RoomLayout(
    half_width=1.0, wall_height=1.2, placement_radius=0.45, objects_per_scene=(1, 3)
)
"""Object-centric scenes (``--preset objects``): one to three of the rooms' objects on an
invisible ground near the origin, before a white background, inside the box
``(-1, -1, 0) .. (1, 1, 1.2)``; no floor or walls are rendered."""
OBJECT_ID_CAMERAS = CameraDistribution(
    radius=(2.6, 3.0), elevation_deg=(15.0, 40.0), fov_y_deg=(40.0, 40.0), target_offset=0.0,
    target=(0.0, 0.0, 0.3),
)  # fmt: skip
"""Cameras on a sphere around the objects (the usual object-dataset setup, as SRN)."""
OBJECT_OOD_CAMERAS = CameraDistribution(
    radius=(1.9, 2.2), elevation_deg=(55.0, 75.0), fov_y_deg=(50.0, 50.0), target_offset=0.2,
    target=(0.0, 0.0, 0.3),
)  # fmt: skip
"""Closer, from high above, wider: views no training camera resembles."""
OPEN_LIGHT_HEIGHT = 3.0
"""Height of an object scene's key light: above every object camera (they reach z = 2.45)."""


@dataclass
class ObjectSpec:
    """One object standing on the floor. ``position`` is the centre of its bounding box."""

    shape: str
    position: tuple[float, float, float]
    rotation_z_deg: float
    colour_name: str
    colour_rgb: tuple[float, float, float]
    material: str
    roughness: float
    radius: float | None = None
    """Sphere or cylinder radius."""
    half_size: float | None = None
    """Cube half edge length."""
    half_height: float | None = None
    """Cylinder half height."""

    @property
    def footprint_radius(self) -> float:
        """Radius of the object's bounding circle in the floor plane."""
        if self.shape == "cube":
            return math.sqrt(2.0) * float(self.half_size)  # type: ignore[arg-type]
        return float(self.radius)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        data = {key: value for key, value in asdict(self).items() if value is not None}
        if self.shape == "sphere":
            extent = [2 * self.radius] * 3  # type: ignore[operator]
        elif self.shape == "cube":
            extent = [2 * self.half_size] * 3  # type: ignore[operator]
        else:
            extent = [2 * self.radius, 2 * self.radius, 2 * self.half_height]  # type: ignore[operator]
        data["size"] = [round(value, 6) for value in extent]
        return data


@dataclass
class Surface:
    """A textured surface: pattern name, two linear-RGB colours and the texture repeat count."""

    pattern: str
    colour_a: tuple[float, float, float]
    colour_b: tuple[float, float, float]
    repeats: float
    texture: np.ndarray = field(repr=False)
    """``[TEXTURE_SIZE, TEXTURE_SIZE, 3]`` float32 linear RGB reflectance."""

    def to_json(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "colour_a": list(self.colour_a),
            "colour_b": list(self.colour_b),
            "repeats": self.repeats,
        }


@dataclass
class Lighting:
    """A constant sky (the environment light) seen through the open top of the room, plus a
    rectangular area light just under the top: small and bright (sun-like, hard shadows) to large
    and dim (soft shadows), anywhere over the room."""

    sky_rgb: tuple[float, float, float]
    """Radiance of the sky (linear RGB)."""
    area_centre: tuple[float, float, float]
    area_half_size: float
    area_rgb: tuple[float, float, float]
    """Radiance of the area light (linear RGB)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Room:
    """A full scene description: surfaces, lighting and objects (1-based ids in list order)."""

    layout: RoomLayout
    floor: Surface
    walls: Surface
    lighting: Lighting
    objects: list[ObjectSpec]

    def info(self) -> dict[str, Any]:
        """Per-scene JSON facts besides the object list."""
        return {
            "floor": self.floor.to_json(),
            "walls": self.walls.to_json(),
            "lighting": self.lighting.to_json(),
        }

    def objects_json(self) -> list[dict[str, Any]]:
        return [{"id": index + 1, **obj.to_json()} for index, obj in enumerate(self.objects)]


def _round3(values: Any) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in values)


def _random_surface_colours(
    rng: np.random.Generator,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Two linear-RGB colours: a random base (any hue, varied brightness) and a contrasting second."""
    hue = rng.uniform(0.0, 1.0)
    saturation = rng.uniform(0.15, 0.85)
    value = rng.uniform(0.2, 0.95)
    base = colorsys.hsv_to_rgb(hue, saturation, value)
    hue_b = (hue + rng.uniform(-0.08, 0.08)) % 1.0
    value_b = (
        value * rng.uniform(0.45, 0.75) if value > 0.5 else min(1.0, value * rng.uniform(1.5, 2.2))
    )
    second = colorsys.hsv_to_rgb(hue_b, saturation * rng.uniform(0.7, 1.1), value_b)
    # sRGB-ish perceptual colours -> linear reflectance, so the picked brightness is what we see
    return _round3(np.clip(base, 0, 1) ** 2.2), _round3(np.clip(second, 0, 1) ** 2.2)  # type: ignore[return-value]


def _pattern_mask(pattern: str, rng: np.random.Generator) -> np.ndarray:
    """``[T, T]`` weight in [0, 1] of the second colour for a texture pattern."""
    size = TEXTURE_SIZE
    coords = (np.arange(size) + 0.5) / size
    v, u = np.meshgrid(coords, coords, indexing="ij")
    if pattern == "plain":
        return np.zeros((size, size))
    if pattern == "checker":
        cells = int(rng.choice([2, 4]))
        return ((np.floor(u * cells) + np.floor(v * cells)) % 2).astype(np.float64)
    if pattern == "stripes":
        cells = int(rng.choice([2, 4]))
        along = u if rng.uniform() < 0.5 else v
        return (np.floor(along * cells * 2) % 2).astype(np.float64)
    if pattern == "tiles":
        cells = int(rng.choice([2, 4]))
        border = 0.12
        fu, fv = (u * cells) % 1.0, (v * cells) % 1.0
        return ((fu < border) | (fv < border)).astype(np.float64)
    if pattern == "noise":
        # smooth value noise: bilinear upsampling of a coarse random grid that wraps around
        coarse = rng.uniform(0.0, 1.0, size=(4, 4))
        x = u * 4 - 0.5
        y = v * 4 - 0.5
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        fx, fy = x - x0, y - y0
        c = lambda yy, xx: coarse[yy % 4, xx % 4]
        top = c(y0, x0) * (1 - fx) + c(y0, x0 + 1) * fx
        bottom = c(y0 + 1, x0) * (1 - fx) + c(y0 + 1, x0 + 1) * fx
        return top * (1 - fy) + bottom * fy
    raise ValueError(f"unknown texture pattern {pattern!r}")


def _random_surface(rng: np.random.Generator, repeats: tuple[float, float]) -> Surface:
    pattern = str(rng.choice(TEXTURE_PATTERNS))
    colour_a, colour_b = _random_surface_colours(rng)
    weight = _pattern_mask(pattern, rng)[..., None]
    texture = (1 - weight) * np.array(colour_a) + weight * np.array(colour_b)
    return Surface(
        pattern=pattern,
        colour_a=colour_a,
        colour_b=colour_b,
        repeats=round(float(rng.uniform(*repeats)), 3),
        texture=texture.astype(np.float32),
    )


def _random_object(rng: np.random.Generator, layout: RoomLayout) -> ObjectSpec:
    shape = str(rng.choice(SHAPES))
    colour_name = str(rng.choice(list(PALETTE)))
    material = str(rng.choice(MATERIALS))
    roughness = {"matte": (0.9, 1.0), "plastic": (0.15, 0.35), "metal": (0.2, 0.4)}[material]
    common = dict(
        shape=shape,
        rotation_z_deg=round(float(rng.uniform(0.0, 360.0)), 3),
        colour_name=colour_name,
        colour_rgb=PALETTE[colour_name],
        material=material,
        roughness=round(float(rng.uniform(*roughness)), 3),
    )
    if shape == "sphere":
        radius = round(float(rng.uniform(*layout.sphere_radius)), 4)
        return ObjectSpec(position=(0.0, 0.0, radius), radius=radius, **common)  # type: ignore[arg-type]
    if shape == "cube":
        half = round(float(rng.uniform(*layout.cube_half_size)), 4)
        return ObjectSpec(position=(0.0, 0.0, half), half_size=half, **common)  # type: ignore[arg-type]
    radius = round(float(rng.uniform(*layout.cylinder_radius)), 4)
    half_height = round(float(rng.uniform(*layout.cylinder_half_height)), 4)
    return ObjectSpec(
        position=(0.0, 0.0, half_height),
        radius=radius,
        half_height=half_height,
        **common,  # type: ignore[arg-type]
    )


def _place_objects(
    rng: np.random.Generator, layout: RoomLayout, objects: list[ObjectSpec]
) -> list[ObjectSpec]:
    """Rejection-sample floor positions so bounding circles keep ``gap`` apart (no touching)."""
    placed: list[ObjectSpec] = []
    for obj in objects:
        for _attempt in range(200):
            angle = rng.uniform(0.0, 2 * math.pi)
            # sqrt for uniform density over the disc
            distance = layout.placement_radius * math.sqrt(rng.uniform(0.0, 1.0))
            x, y = distance * math.cos(angle), distance * math.sin(angle)
            clear = all(
                math.hypot(x - other.position[0], y - other.position[1])
                >= obj.footprint_radius + other.footprint_radius + layout.gap
                for other in placed
            )
            if clear:
                obj.position = (round(x, 4), round(y, 4), obj.position[2])
                placed.append(obj)
                break
        # an object that does not fit after 200 tries is dropped (rare; at least 2 always fit)
    return placed


def random_room(rng: np.random.Generator, layout: RoomLayout = RoomLayout()) -> Room:
    """Draw a room: floor/wall textures, lighting and 2–5 non-intersecting objects."""
    floor = _random_surface(rng, repeats=(1.0, 3.0))
    walls = _random_surface(rng, repeats=(1.0, 2.0))
    sky_level = rng.uniform(0.2, 0.9)
    sky_tint = rng.uniform(0.85, 1.15, size=3)
    half_size = float(rng.uniform(0.15, 0.9))
    # about the same power whatever the size: radiance ~ 1 / area
    area_level = rng.uniform(1.0, 3.5) / (half_size**2)
    area_tint = rng.uniform(0.85, 1.15, size=3)
    area_xy = rng.uniform(-0.8 * layout.half_width, 0.8 * layout.half_width, size=2)
    lighting = Lighting(
        sky_rgb=_round3(sky_level * sky_tint),  # type: ignore[arg-type]
        area_centre=(
            round(float(area_xy[0]), 3),
            round(float(area_xy[1]), 3),
            round(layout.wall_height - 0.05, 3),
        ),
        area_half_size=round(half_size, 3),
        area_rgb=_round3(area_level * area_tint),  # type: ignore[arg-type]
    )
    count = int(rng.integers(layout.objects_per_scene[0], layout.objects_per_scene[1] + 1))
    objects = [_random_object(rng, layout) for _ in range(count)]
    # place the biggest first: they are the hardest to fit
    objects.sort(key=lambda obj: -obj.footprint_radius)
    objects = _place_objects(rng, layout, objects)
    return Room(layout=layout, floor=floor, walls=walls, lighting=lighting, objects=objects)


def random_objects_scene(rng: np.random.Generator, layout: RoomLayout = OBJECTS_LAYOUT) -> Room:
    """Draw an object-centric scene: 1–3 of the rooms' objects, non-intersecting, near the origin,
    lit by a large dim overhead light and a smaller area light; the room's floor and walls are
    drawn too (so a scene stays a :class:`Room`) but an open-scene renderer does not show them."""
    room = random_room(rng, layout)
    # overhead lighting suited to objects in the open: a bright sky above, a key light up to 1
    # box-width off-centre, above the highest camera (out of every view)
    half_size = float(rng.uniform(0.2, 0.6))
    area_xy = rng.uniform(-layout.half_width, layout.half_width, size=2)
    room.lighting = Lighting(
        sky_rgb=_round3(rng.uniform(0.8, 1.1) * rng.uniform(0.9, 1.1, size=3)),  # type: ignore[arg-type]
        area_centre=(round(float(area_xy[0]), 3), round(float(area_xy[1]), 3), OPEN_LIGHT_HEIGHT),
        area_half_size=round(half_size, 3),
        area_rgb=_round3(rng.uniform(2.5, 5.0) / half_size**2 * np.ones(3)),  # type: ignore[arg-type]
    )
    return room


def sample_cameras(
    rng: np.random.Generator,
    distribution: CameraDistribution,
    count: int,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``count`` cameras: ``K [count, 3, 3]`` and OpenCV ``c2w [count, 4, 4]`` (float32).

    Azimuths are spread over the full circle (a random rotation of evenly spaced angles plus
    jitter), so the views of a scene see it from all around.
    """
    offset = rng.uniform(0.0, 2 * math.pi)
    jitter = rng.uniform(-0.35, 0.35, size=count) * (2 * math.pi / max(count, 1))
    azimuth = offset + np.arange(count) * (2 * math.pi / max(count, 1)) + jitter
    radius = rng.uniform(*distribution.radius, size=count)
    elevation = np.radians(rng.uniform(*distribution.elevation_deg, size=count))
    fov_y = np.radians(rng.uniform(*distribution.fov_y_deg, size=count))
    offset_angle = rng.uniform(0.0, 2 * math.pi, size=count)
    offset_distance = distribution.target_offset * np.sqrt(rng.uniform(0.0, 1.0, size=count))
    target = np.tile(np.array(distribution.target, dtype=np.float64), (count, 1))
    target[:, 0] += offset_distance * np.cos(offset_angle)
    target[:, 1] += offset_distance * np.sin(offset_angle)
    eye = target + np.stack(
        [
            radius * np.cos(elevation) * np.cos(azimuth),
            radius * np.cos(elevation) * np.sin(azimuth),
            radius * np.sin(elevation),
        ],
        axis=-1,
    )
    c2w = look_at(torch.from_numpy(eye), torch.from_numpy(target)).float()
    focal = 0.5 * height / np.tan(0.5 * fov_y)
    K = intrinsics_matrix(
        torch.from_numpy(focal).float(),
        torch.from_numpy(focal).float(),
        torch.full((count,), width / 2.0),
        torch.full((count,), height / 2.0),
    )
    return K, c2w


def camera_distributions_json(
    id_cameras: CameraDistribution, ood_cameras: CameraDistribution
) -> dict[str, Any]:
    """The camera ranges as written into dataset.json."""

    def describe(distribution: CameraDistribution) -> dict[str, Any]:
        return {
            "radius": list(distribution.radius),
            "elevation_deg": list(distribution.elevation_deg),
            "fov_y_deg": list(distribution.fov_y_deg),
            "azimuth_deg": [0.0, 360.0],
            "target": list(distribution.target),
            "target_offset_max": distribution.target_offset,
            "principal_point": "image centre",
        }

    return {
        "description": (
            "camera centre = target + radius * (cos(el) cos(az), cos(el) sin(az), sin(el)), "
            "looking at the target (offset in the floor plane by at most target_offset_max) "
            "with world +z up in the image; square pixels; azimuths evenly spread with jitter"
        ),
        "id": describe(id_cameras),
        "ood": describe(ood_cameras),
    }


def shape_signed_distance(description: Mapping[str, Any], points: np.ndarray) -> np.ndarray:
    """Signed distance ``[...]`` (float64, negative inside) of ``points [..., 3]`` to the surface of
    one object, exact for each shape.

    Args:
        description: the object as the dataset's ``objects`` list stores it
            (:meth:`ObjectSpec.to_json`): ``shape`` and its sizes (sphere ``radius``, cube
            ``half_size``, capped cylinder ``radius`` and ``half_height``), centred at ``position``
            and turned by ``rotation_z_deg`` (default 0) about +z.
        points: ``[..., 3]`` world points.

    The one definition of the objects' surfaces: the generator labels rendered hit points with it
    (:func:`object_ids_at`) and mesh export measures meshes against it
    (:func:`nerfvae.export.surfaces.object_signed_distance`).
    """
    centre = np.asarray(description["position"], dtype=np.float64)
    theta = math.radians(float(description.get("rotation_z_deg", 0.0)))
    offset = points.astype(np.float64) - centre
    # rotate into the object's frame (inverse rotation about z)
    local_x = math.cos(theta) * offset[..., 0] + math.sin(theta) * offset[..., 1]
    local_y = -math.sin(theta) * offset[..., 0] + math.cos(theta) * offset[..., 1]
    local_z = offset[..., 2]
    shape = description["shape"]
    if shape == "sphere":
        return np.sqrt(local_x**2 + local_y**2 + local_z**2) - float(description["radius"])
    if shape == "cube":
        half_size = float(description["half_size"])
        excess = np.stack([np.abs(local_x), np.abs(local_y), np.abs(local_z)]) - half_size
    else:
        radial = np.sqrt(local_x**2 + local_y**2) - float(description["radius"])
        vertical = np.abs(local_z) - float(description["half_height"])
        excess = np.stack([radial, vertical])
    outside = np.linalg.norm(np.maximum(excess, 0.0), axis=0)
    return outside + np.minimum(excess.max(axis=0), 0.0)


def object_signed_distances(objects: list[ObjectSpec], points: np.ndarray) -> np.ndarray:
    """Signed distance of ``points [..., 3]`` to each object's surface: ``[len(objects), ...]``
    (:func:`shape_signed_distance`). Used to label the rendered hit points with object ids: a hit
    lies on exactly one surface.
    """
    if not objects:
        return np.zeros((0, *points.shape[:-1]))
    return np.stack([shape_signed_distance(obj.to_json(), points) for obj in objects])


def object_ids_at(
    objects: list[ObjectSpec], points: np.ndarray, hit: np.ndarray, tolerance: float = 2e-3
) -> np.ndarray:
    """Object id (1-based, 0 = floor/walls/nothing) of surface points ``[..., 3]`` where ``hit``."""
    ids = np.zeros(points.shape[:-1], dtype=np.uint8)
    if not objects:
        return ids
    distance = np.abs(object_signed_distances(objects, points))
    nearest = distance.argmin(axis=0)
    on_surface = np.take_along_axis(distance, nearest[None], axis=0)[0] < tolerance
    return np.where(hit & on_surface, nearest + 1, 0).astype(np.uint8)
