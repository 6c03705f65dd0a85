"""Volume rendering: sample along rays, query a field callback, composite colour, depth, opacity.

Imports only torch, :mod:`nerfvae.geometry` and :mod:`nerfvae.errors`.
"""

from nerfvae.rendering.compositing import (
    CompositeResult,
    composite,
    compositing_weights,
    sample_intervals,
)
from nerfvae.rendering.density_grid import (
    DensityGrid,
    DensityGridConfig,
    bake_density_grid,
    grid_shape,
)
from nerfvae.rendering.renderer import (
    DensityFn,
    FieldFn,
    RaySamples,
    RaySamplingConfig,
    RenderOutput,
    interlevel_loss,
    render_in_chunks,
    render_rays,
    render_with_proposal,
    scene_chunk,
)
from nerfvae.rendering.sampling import (
    fine_samples,
    importance_samples,
    sample_pdf,
    stratified_samples,
)

__all__ = [
    "CompositeResult",
    "DensityFn",
    "DensityGrid",
    "DensityGridConfig",
    "FieldFn",
    "RaySamples",
    "RaySamplingConfig",
    "RenderOutput",
    "bake_density_grid",
    "composite",
    "compositing_weights",
    "fine_samples",
    "grid_shape",
    "importance_samples",
    "interlevel_loss",
    "render_in_chunks",
    "render_rays",
    "render_with_proposal",
    "sample_intervals",
    "sample_pdf",
    "scene_chunk",
    "stratified_samples",
]
