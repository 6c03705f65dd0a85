"""Geometry out of a trained model: marching-cubes meshes with vertex colours (PLY/OBJ) and
their Chamfer distance to the built-in rooms' ground-truth objects."""

from nerfvae.export.mesh import (
    DensityGrid,
    MeshExtractionConfig,
    density_grid,
    extract_mesh,
    field_colours,
    grid_axes,
    marching_cubes,
    write_mesh,
)
from nerfvae.export.preview import write_mesh_preview
from nerfvae.export.surfaces import (
    chamfer_distance,
    inside_box,
    mesh_object_chamfer,
    object_signed_distance,
    object_surface_area,
    objects_region,
    sample_mesh_surface,
    sample_object_surfaces,
)

__all__ = [
    "DensityGrid",
    "MeshExtractionConfig",
    "chamfer_distance",
    "density_grid",
    "extract_mesh",
    "field_colours",
    "grid_axes",
    "inside_box",
    "marching_cubes",
    "mesh_object_chamfer",
    "object_signed_distance",
    "object_surface_area",
    "objects_region",
    "sample_mesh_surface",
    "sample_object_surfaces",
    "write_mesh",
    "write_mesh_preview",
]
