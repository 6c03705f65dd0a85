"""A picture of an exported mesh without a 3D viewer or GPU: matplotlib's 3D polygons, each
triangle in the mean colour of its vertices, shaded by a fixed light (Agg backend, CPU only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mesh_preview(
    mesh,
    path: str | Path,
    elevation_deg: float = 35.0,
    azimuth_deg: float = -60.0,
    size_pixels: int = 640,
    max_faces: int = 60000,
    box: tuple[np.ndarray, np.ndarray] | None = None,
    title: str | None = None,
    reference_points: np.ndarray | None = None,
) -> Path:
    """Draw ``mesh`` (a ``trimesh.Trimesh`` with vertex colours) seen from ``elevation_deg`` above
    the horizon and ``azimuth_deg`` around +z (z up) into a square PNG. Keeps every face up to
    ``max_faces`` (a random subset beyond, so huge meshes stay quick); ``box`` (min, max) fixes the
    axes' extent (default: the mesh bounds); ``reference_points [N, 3]`` (e.g. points on the
    ground-truth objects) are drawn as small red dots on top."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces)
    if len(faces) > max_faces:
        faces = faces[np.random.default_rng(0).choice(len(faces), max_faces, replace=False)]
    triangles = vertices[faces]  # [F, 3, 3]
    colours = np.asarray(mesh.visual.vertex_colors, dtype=np.float64)[faces, :3].mean(1) / 255
    # Lambert shading from a light above and behind the viewer, plus ambient light, so shapes
    # read as 3D even where the colour is flat.
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    elevation, azimuth = np.radians(elevation_deg), np.radians(azimuth_deg)
    towards_viewer = np.array(
        [
            np.cos(elevation) * np.cos(azimuth),
            np.cos(elevation) * np.sin(azimuth),
            np.sin(elevation),
        ]
    )
    light = towards_viewer + np.array([0.0, 0.0, 1.0])
    light /= np.linalg.norm(light)
    shade = 0.45 + 0.55 * np.abs(normals @ light)
    face_colours = np.clip(colours * shade[:, None], 0, 1)

    lo, hi = box if box is not None else (vertices.min(0), vertices.max(0))
    figure = plt.figure(figsize=(size_pixels / 100, size_pixels / 100), dpi=100)
    axes = figure.add_subplot(projection="3d")
    # Edges in the face colour cover the hairline seams antialiasing leaves between triangles.
    axes.add_collection3d(
        Poly3DCollection(
            triangles,
            facecolors=face_colours,
            edgecolors=face_colours,
            linewidths=0.5,
            antialiased=False,
        )
    )
    if reference_points is not None and len(reference_points):
        # drawn after (over) the mesh, like an X-ray, so hidden ground truth still shows
        axes.computed_zorder = False
        axes.scatter(*np.asarray(reference_points).T, s=0.5, c="red", depthshade=False, zorder=10)
    axes.set_xlim(lo[0], hi[0])
    axes.set_ylim(lo[1], hi[1])
    axes.set_zlim(lo[2], hi[2])
    axes.set_box_aspect(tuple(np.maximum(np.asarray(hi) - np.asarray(lo), 1e-6)))
    axes.view_init(elev=elevation_deg, azim=azimuth_deg)
    axes.set_xlabel("x (m)")
    axes.set_ylabel("y (m)")
    axes.set_zlabel("z (m)")
    if title:
        axes.set_title(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
