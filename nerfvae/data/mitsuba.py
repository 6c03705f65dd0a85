"""Rendering rooms with Mitsuba 3: colour, depth along the ray and object-id masks.

Speed matters (tens of thousands of views), and Mitsuba's JIT variant (``llvm_ad_rgb``) compiles
a kernel for every new scene *structure* and bakes constants it was loaded with into the kernel.
So :class:`RoomRenderer` loads **one** scene of fixed structure — floor, four walls, the sky over
the open top, an area light and ``MAX_OBJECTS`` object slots each holding a sphere, a cube mesh
and a capped-cylinder mesh — and changes a room by updating parameters (``mi.traverse``): unused
shapes are shrunk and parked below the floor, where no camera ray reaches them. After the first
render every view reuses the compiled kernels.

Two passes per view, both with a box reconstruction filter so no pixel borrows from its neighbours:

* colour: direct illumination (``direct`` integrator, 4 light samples per camera sample) with
  ``spp`` multi-jittered samples spread over the pixel's area (colour is the pixel's area average);
* ground truth: the ``aov`` integrator (world position, hit flag) with a stratified sampler at 1
  sample per pixel and no jitter, i.e. exactly one ray through the pixel centre
  ``(col + 0.5, row + 0.5)`` — the ray :func:`nerfvae.geometry.image_rays` generates. Depth is the
  distance from the camera centre to the hit position (metric distance along the unit ray), so
  Mitsuba's near-clip offset of its own ``depth`` AOV never enters. The object id of a pixel is
  the object whose surface the hit position lies on (analytic signed distances,
  :func:`nerfvae.data.rooms.object_ids_at`): Mitsuba's ``shape_index`` AOV numbers shapes in an
  order that is not the scene's. ``tests/test_data_convention.py`` checks depth and mask against
  analytic ray casting with an off-centre principal point.

Camera mapping from OpenCV ``c2w``: Mitsuba cameras look down +z with +x left and +y up, so
``to_world = c2w @ diag(-1, -1, 1, 1)``; the field of view comes from the focal length, and the
principal point offset is ``-(cx - W/2) / W``, ``-(cy - H/2) / H`` (film fractions, Mitsuba's x and
y point the other way).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from typing import Any

import numpy as np
import torch

from nerfvae.data.rooms import MAX_OBJECTS, TEXTURE_SIZE, ObjectSpec, Room, object_ids_at

LLVM_LIBRARY = "/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1"
_HIDDEN_Z = -100.0
_HIDDEN_SCALE = 1e-3
_MITSUBA_STATE: dict[str, Any] = {}


def load_mitsuba(threads: int | None = None, quiet: bool = False) -> Any:
    """Import Mitsuba with the fastest working variant and return the module.

    Uses ``llvm_ad_rgb`` when LLVM 19 is present (``DRJIT_LIBLLVM_PATH`` must be set before Dr.Jit
    starts its LLVM backend; LLVM 15 crashes it), else ``scalar_rgb`` with a one-line notice.
    ``threads`` limits Mitsuba's render threads (None: Dr.Jit's default, all cores).
    """
    if "mi" not in _MITSUBA_STATE and "mitsuba" in sys.modules:
        # Mitsuba's variant is process-wide: respect one another part of the program chose
        mi = sys.modules["mitsuba"]
        current = mi.variant()
        if current is not None and current.endswith("_rgb") and "spectral" not in current:
            mi.set_log_level(mi.LogLevel.Warn)
            _MITSUBA_STATE["mi"] = mi
    if "mi" not in _MITSUBA_STATE:
        variant = "scalar_rgb"
        if os.environ.get("NERFVAE_MITSUBA_VARIANT"):
            variant = os.environ["NERFVAE_MITSUBA_VARIANT"]
        elif os.environ.get("DRJIT_LIBLLVM_PATH") or os.path.exists(LLVM_LIBRARY):
            os.environ.setdefault("DRJIT_LIBLLVM_PATH", LLVM_LIBRARY)
            variant = "llvm_ad_rgb"
        elif not quiet:
            print(
                f"nerfvae: {LLVM_LIBRARY} not found (Debian package libllvm19); Mitsuba uses the "
                "slower scalar_rgb variant",
                file=sys.stderr,
            )
        try:
            import mitsuba as mi
        except ImportError as error:
            raise ImportError(
                "rendering the built-in dataset needs Mitsuba 3: pip install 'nerfvae[data]'"
            ) from error
        try:
            mi.set_variant(variant)
        except Exception as error:
            if variant == "scalar_rgb":
                raise
            if not quiet:
                print(
                    f"nerfvae: Mitsuba variant {variant} unavailable ({error}); using scalar_rgb",
                    file=sys.stderr,
                )
            mi.set_variant("scalar_rgb")
        mi.set_log_level(mi.LogLevel.Warn)
        _MITSUBA_STATE["mi"] = mi
    mi = _MITSUBA_STATE["mi"]
    if threads is not None:
        import drjit as dr

        dr.set_thread_count(threads)
    return mi


def mitsuba_camera(K: np.ndarray, c2w: np.ndarray, height: int, width: int) -> dict[str, Any]:
    """Mitsuba perspective-sensor parameters for an OpenCV camera (square pixels, fx == fy).

    Returns ``to_world`` (4x4 nested list), ``fov_y_deg``, ``fov_x_deg`` and the principal point
    offsets ``ppo_x``, ``ppo_y``.
    """
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    if abs(fx - fy) > 1e-4 * fx:
        raise ValueError("Mitsuba's perspective camera needs square pixels (fx == fy)")
    to_world = np.asarray(c2w, dtype=np.float64) @ np.diag([-1.0, -1.0, 1.0, 1.0])
    return {
        "to_world": to_world.tolist(),
        "fov_y_deg": math.degrees(2.0 * math.atan(0.5 * height / fy)),
        "fov_x_deg": math.degrees(2.0 * math.atan(0.5 * width / fx)),
        "ppo_x": -(cx - width / 2.0) / width,
        "ppo_y": -(cy - height / 2.0) / height,
    }


def linear_to_srgb_uint8(linear: np.ndarray) -> np.ndarray:
    """Linear radiance ``[..., 3]`` -> sRGB uint8 (clipped; the standard sRGB transfer curve)."""
    x = np.clip(linear, 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)
    return np.round(srgb * 255.0).astype(np.uint8)


def srgb_to_linear(colour: tuple[float, float, float]) -> tuple[float, float, float]:
    """An sRGB colour in [0, 1] as linear radiance (the inverse of the sRGB transfer curve)."""
    c = np.clip(np.asarray(colour, dtype=np.float64), 0.0, 1.0)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return tuple(float(v) for v in linear)  # type: ignore[return-value]


def unit_cube_mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cube [-1, 1]^3 as ``vertices [24, 3]``, flat ``normals [24, 3]``, ``faces [12, 3]``.

    Faces wind counter-clockwise seen from outside, so geometric normals point outwards.
    """
    vertices, normals, faces = [], [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            normal = np.zeros(3)
            normal[axis] = sign
            u = np.zeros(3)
            u[(axis + 1) % 3] = 1.0
            v = np.cross(normal, u)  # u x v = normal
            base = len(vertices)
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                vertices.append(normal + du * u + dv * v)
                normals.append(normal)
            faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return np.array(vertices), np.array(normals), np.array(faces)


def unit_cylinder_mesh(segments: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capped cylinder of radius 1, ``z`` in [-1, 1]: ``vertices``, ``normals``, ``faces``.

    Smooth normals on the side, flat caps, outward winding. With 48 segments the facets lie within
    ``0.0022 * radius`` of the true cylinder.
    """
    angle = 2 * np.pi * np.arange(segments) / segments
    ring = np.stack([np.cos(angle), np.sin(angle), np.zeros(segments)], axis=-1)
    up = np.array([0.0, 0.0, 1.0])
    index = np.arange(segments)
    following = (index + 1) % segments
    # side: bottom ring [0, n), top ring [n, 2n)
    vertices = [ring - up, ring + up]
    normals = [ring, ring]
    faces = [
        np.stack([index, following, segments + following], axis=-1),
        np.stack([index, segments + following, segments + index], axis=-1),
    ]
    # caps: centre + ring each, flat normals
    for sign in (1.0, -1.0):
        base = sum(len(block) for block in vertices)
        vertices += [(sign * up)[None], ring + sign * up]
        normals += [np.tile(sign * up, (segments + 1, 1))]
        centre, rim = base, base + 1
        if sign > 0:
            faces.append(np.stack([np.full(segments, centre), rim + index, rim + following], -1))
        else:
            faces.append(np.stack([np.full(segments, centre), rim + following, rim + index], -1))
    return np.concatenate(vertices), np.concatenate(normals), np.concatenate(faces)


def write_ply(path: str, vertices: np.ndarray, normals: np.ndarray, faces: np.ndarray) -> None:
    """Write a binary little-endian PLY triangle mesh with per-vertex normals."""
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        f"element face {len(faces)}\n"
        "property list uchar int vertex_indices\nend_header\n"
    )
    vertex_data = np.concatenate([vertices, normals], axis=-1).astype("<f4")
    face_data = np.zeros(len(faces), dtype=[("count", "u1"), ("indices", "<i4", (3,))])
    face_data["count"] = 3
    face_data["indices"] = faces
    with open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(vertex_data.tobytes())
        handle.write(face_data.tobytes())


OPEN_SKY_HEIGHT = 6.0
"""Height of an open scene's overhead light: above the top of every camera's view."""
SEAM_OVERLAP = 1e-4  # relative overlap of room surfaces at their edges (see set_room)


class RoomRenderer:
    """A fixed-structure Mitsuba scene that renders any :class:`~nerfvae.data.rooms.Room`.

    Args:
        height, width: image size.
        spp: colour samples per pixel.
        threads: Mitsuba render threads (None: all cores).
        background: None renders the closed room. A linear RGB colour renders only the room's
            objects (an open scene, ``--preset objects``): floor and walls are hidden, the sky
            becomes a large light high overhead out of every camera's view, and each pixel is
            composited over ``background`` by the fraction of its samples that hit nothing.
    """

    def __init__(
        self,
        height: int,
        width: int,
        spp: int,
        threads: int | None = None,
        background: tuple[float, float, float] | None = None,
    ):
        self.mi = mi = load_mitsuba(threads)
        self.height, self.width, self.spp = height, width, spp
        self.background = background
        self.variant = mi.variant()
        # optimize=False: no merging of shapes that share a BSDF (walls, slots stay addressable)
        self._unit_meshes = {"cube": unit_cube_mesh(), "cylinder": unit_cylinder_mesh()}
        with tempfile.TemporaryDirectory(prefix="nerfvae-meshes-") as mesh_dir:
            self.scene = mi.load_dict(self._scene_dict(mesh_dir), optimize=False)
        self.params = mi.traverse(self.scene)
        self.aov_integrator = mi.load_dict({"type": "aov", "aovs": "pos:position,dd:depth"})
        sensors = {sensor.id(): sensor for sensor in self.scene.sensors()}
        self.sensor_rgb, self.sensor_aov = sensors["sensor_rgb"], sensors["sensor_aov"]
        self.room_objects: list[ObjectSpec] = []

    # ----------------------------------------------------------------------------- scene
    def _scene_dict(self, mesh_dir: str) -> dict[str, Any]:
        mi = self.mi
        T = mi.ScalarTransform4f
        flat = np.full((TEXTURE_SIZE, TEXTURE_SIZE, 3), 0.5, dtype=np.float32)

        def film() -> dict[str, Any]:
            return {
                "type": "hdrfilm",
                "width": self.width,
                "height": self.height,
                "rfilter": {"type": "box"},
                # alpha (the covered fraction of a pixel) composites an open scene's background
                "pixel_format": "rgb" if self.background is None else "rgba",
                "component_format": "float32",
            }

        def sensor(sampler: dict[str, Any]) -> dict[str, Any]:
            return {
                "type": "perspective",
                "fov": 50.0,
                "fov_axis": "x",
                "near_clip": 0.01,
                "far_clip": 1000.0,
                "to_world": T().look_at(origin=[3, 0, 1], target=[0, 0, 0], up=[0, 0, 1]),
                "sampler": sampler,
                "film": film(),
            }

        def textured(name: str) -> dict[str, Any]:
            return {
                "type": "diffuse",
                "id": name,
                "reflectance": {
                    "type": "bitmap",
                    "bitmap": mi.Bitmap(flat),
                    "raw": True,
                    "filter_type": "nearest",
                    "wrap_mode": "repeat",
                },
            }

        scene: dict[str, Any] = {
            "type": "scene",
            "integrator": {"type": "direct", "emitter_samples": 4, "bsdf_samples": 1},
            "sensor_rgb": sensor({"type": "multijitter", "sample_count": self.spp}),
            "sensor_aov": sensor({"type": "stratified", "sample_count": 1, "jitter": False}),
            # the environment: a constant sky, of which only the room's open top is visible from
            # inside, so it is an emitting rectangle filling the opening; sampled by area it is
            # far less noisy than a constant environment map seen through the opening
            "sky": {
                "type": "rectangle",
                "to_world": T().translate([0, 0, 2.5]).rotate([1, 0, 0], 180).scale(3.0),
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": 0.5}},
                "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.0}},
            },
            "area_light": {
                "type": "rectangle",
                "to_world": T().translate([0, 0, 2.5]).rotate([1, 0, 0], 180).scale(0.5),
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": 1.0}},
                "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.0}},
            },
            "floor_bsdf": textured("floor_bsdf"),
            "wall_bsdf": textured("wall_bsdf"),
            "floor": {
                "type": "rectangle",
                "to_world": T().scale([3, 3, 1]),
                "bsdf": {"type": "ref", "id": "floor_bsdf"},
            },
        }
        for index in range(4):
            scene[f"wall_{index}"] = {
                "type": "rectangle",
                "to_world": T().translate([0, 0, -50 - index]),
                "bsdf": {"type": "ref", "id": "wall_bsdf"},
            }
        hidden = T().translate([0, 0, _HIDDEN_Z]).scale(_HIDDEN_SCALE)
        for slot in range(MAX_OBJECTS):
            # distinct initial colours: Mitsuba merges identical BSDFs (and then their meshes)
            # one principled BSDF per slot covers matte, plastic and metal by its parameters: one
            # fixed structure keeps Mitsuba's compiled kernels valid from scene to scene. Distinct
            # initial colours: Mitsuba would merge identical BSDFs.
            scene[f"slot_{slot}_bsdf"] = {
                "type": "principled",
                "id": f"slot_{slot}_bsdf",
                "base_color": {"type": "rgb", "value": [0.5, 0.5, 0.1 * (slot + 1)]},
                "metallic": 0.0,
                "roughness": 0.5,
                "specular": 0.5,
            }
            ref = {"type": "ref", "id": f"slot_{slot}_bsdf"}
            scene[f"slot_{slot}_sphere"] = {"type": "sphere", "to_world": hidden, "bsdf": ref}
            # cubes and capped cylinders are triangle meshes whose vertices set_room moves
            # (Mitsuba's analytic cylinder has no caps and, moved through mi.traverse, showed
            # speckled self-shadowing)
            for kind, (vertices, normals, faces) in self._unit_meshes.items():
                filename = os.path.join(mesh_dir, f"slot_{slot}_{kind}.ply")
                write_ply(filename, vertices, normals, faces)
                scene[f"slot_{slot}_{kind}"] = {"type": "ply", "filename": filename, "bsdf": ref}
        return scene

    def set_room(self, room: Room) -> None:
        """Update the loaded scene to show ``room`` (surfaces, lights, objects)."""
        mi, params, layout = self.mi, self.params, room.layout
        T = mi.ScalarTransform4f
        w, h = layout.half_width, layout.wall_height
        # Floor, walls and sky overlap by SEAM_OVERLAP at their shared edges: meeting exactly, a
        # rare ray slipped through the seam and saw nothing (depth 0; 1 pixel in 10,000 views).
        ws, hs = w * (1.0 + SEAM_OVERLAP), h / 2 * (1.0 + SEAM_OVERLAP)
        params["floor.to_world"] = T().scale([ws, ws, 1.0])
        for surface in (room.floor, room.walls):
            if surface.texture.shape != (TEXTURE_SIZE, TEXTURE_SIZE, 3):
                raise ValueError(f"textures must be [{TEXTURE_SIZE}, {TEXTURE_SIZE}, 3]")
        params["floor_bsdf.reflectance.data"] = mi.TensorXf(room.floor.texture)
        params["floor_bsdf.reflectance.to_uv"] = mi.ScalarTransform3f().scale(
            [room.floor.repeats, room.floor.repeats]
        )
        params["wall_bsdf.reflectance.data"] = mi.TensorXf(room.walls.texture)
        # u runs along the wall (width 2w), v up it (height h): same texel size both ways
        params["wall_bsdf.reflectance.to_uv"] = mi.ScalarTransform3f().scale(
            [room.walls.repeats, room.walls.repeats * h / (2 * w)]
        )
        for index, angle in enumerate((0.0, 90.0, 180.0, 270.0)):
            # a unit rectangle (normal +z) stood up facing the room centre, on the wall at angle
            params[f"wall_{index}.to_world"] = (
                T()
                .rotate([0, 0, 1], angle)
                .translate([w, 0.0, h / 2])
                .rotate([0, 1, 0], -90.0)
                .rotate([0, 0, 1], 90.0)
                .scale([ws, hs, 1.0])
            )
        light = room.lighting
        params["sky.to_world"] = (
            T().translate([0, 0, h]).rotate([1, 0, 0], 180.0).scale([ws, ws, 1.0])
        )
        if self.background is not None:
            # open scene: no floor or walls, and the sky far above every camera's field of view
            hidden = T().translate([0, 0, _HIDDEN_Z]).scale(_HIDDEN_SCALE)
            params["floor.to_world"] = hidden
            for index in range(4):
                params[f"wall_{index}.to_world"] = hidden
            params["sky.to_world"] = (
                T().translate([0, 0, OPEN_SKY_HEIGHT]).rotate([1, 0, 0], 180.0).scale(12.0)
            )
        params["sky.emitter.radiance.value"] = mi.Color3f(list(light.sky_rgb))
        params["area_light.to_world"] = (
            T()
            .translate(list(light.area_centre))
            .rotate([1, 0, 0], 180.0)
            .scale([light.area_half_size, light.area_half_size, 1.0])
        )
        params["area_light.emitter.radiance.value"] = mi.Color3f(list(light.area_rgb))
        for slot in range(MAX_OBJECTS):
            self._set_slot(slot, room.objects[slot] if slot < len(room.objects) else None)
        self.room_objects = list(room.objects)
        params.update()

    def _set_slot(self, slot: int, obj: ObjectSpec | None) -> None:
        mi, params = self.mi, self.params
        T = mi.ScalarTransform4f
        sphere = T().translate([0, 0, _HIDDEN_Z]).scale(_HIDDEN_SCALE)
        meshes = {
            kind: (vertices * _HIDDEN_SCALE + np.array([0.0, 0.0, _HIDDEN_Z]), normals)
            for kind, (vertices, normals, _faces) in self._unit_meshes.items()
        }
        if obj is not None:
            centre = np.array(obj.position, dtype=np.float64)
            theta = math.radians(obj.rotation_z_deg)
            cos, sin = math.cos(theta), math.sin(theta)
            rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
            if obj.shape == "sphere":
                sphere = T().translate(centre.tolist()).rotate([0, 0, 1], obj.rotation_z_deg)
                sphere = sphere.scale(obj.radius)
            else:
                if obj.shape == "cube":
                    scale = np.full(3, obj.half_size)
                else:
                    scale = np.array([obj.radius, obj.radius, obj.half_height])
                vertices, normals, _faces = self._unit_meshes[obj.shape]
                # scaling keeps these unit normals' directions: cube faces are axis-aligned and
                # cylinder side normals are horizontal
                meshes[obj.shape] = (
                    (vertices * scale) @ rotation.T + centre,
                    normals @ rotation.T,
                )
            prefix = f"slot_{slot}_bsdf"
            params[f"{prefix}.base_color.value"] = mi.Color3f(list(obj.colour_rgb))
            params[f"{prefix}.metallic.value"] = 1.0 if obj.material == "metal" else 0.0
            params[f"{prefix}.roughness.value"] = obj.roughness
            params[f"{prefix}.specular"] = 0.0 if obj.material == "matte" else 0.5
        params[f"slot_{slot}_sphere.to_world"] = sphere
        for kind, (vertices, normals) in meshes.items():
            for name, values in (("vertex_positions", vertices), ("vertex_normals", normals)):
                key = f"slot_{slot}_{kind}.{name}"
                # the buffer's own type: mi.Float in JIT variants, a dynamic array in scalar ones
                params[key] = type(params[key])(values.astype(np.float32).ravel())

    # ---------------------------------------------------------------------------- cameras
    def _set_camera(self, K: np.ndarray, c2w: np.ndarray) -> None:
        camera = mitsuba_camera(K, c2w, self.height, self.width)
        to_world = self.mi.ScalarTransform4f(camera["to_world"])
        for name in ("sensor_rgb", "sensor_aov"):
            self.params[f"{name}.to_world"] = to_world
            self.params[f"{name}.x_fov"] = camera["fov_x_deg"]
            self.params[f"{name}.principal_point_offset_x"] = camera["ppo_x"]
            self.params[f"{name}.principal_point_offset_y"] = camera["ppo_y"]
        self.params.update()

    def render_view(
        self, K: np.ndarray | torch.Tensor, c2w: np.ndarray | torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render one view of the current room.

        Args:
            K: ``[3, 3]`` OpenCV intrinsics (square pixels). c2w: ``[4, 4]`` OpenCV camera-to-world.

        Returns:
            ``rgb [H, W, 3]`` uint8 sRGB, ``depth [H, W]`` float32 (distance along the pixel-centre
            ray from the camera centre; 0 where nothing is hit), ``object_mask [H, W]`` uint8.
        """
        K = np.asarray(K, dtype=np.float64)
        c2w = np.asarray(c2w, dtype=np.float64)
        self._set_camera(K, c2w)
        mi = self.mi
        # a fixed sampler seed: Mitsuba bakes the multijitter seed into its kernel, so a new seed
        # per view would recompile (~5x slower); noise still differs as the paths differ
        linear = np.array(mi.render(self.scene, sensor=self.sensor_rgb, seed=0))
        aov = np.array(
            mi.render(self.scene, sensor=self.sensor_aov, integrator=self.aov_integrator, seed=0)
        )
        position, hit = aov[..., 0:3], aov[..., 3] > 0
        depth = np.linalg.norm(position.astype(np.float64) - c2w[:3, 3], axis=-1)
        depth = np.where(hit, depth, 0.0).astype(np.float32)
        object_mask = object_ids_at(self.room_objects, position, hit)
        colour = linear[..., :3]
        if self.background is not None:
            # samples that miss everything carry no radiance: add the background in their share
            uncovered = 1.0 - np.clip(linear[..., 3:4], 0.0, 1.0)
            colour = colour + uncovered * np.asarray(self.background, dtype=colour.dtype)
        return linear_to_srgb_uint8(colour), depth, object_mask
