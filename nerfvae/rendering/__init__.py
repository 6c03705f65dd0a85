"""Volume rendering: sample along rays, query a field callback, composite colour, depth, opacity.

Imports only torch, :mod:`nerfvae.geometry` and :mod:`nerfvae.errors`.
"""

from nerfvae.rendering.compositing import CompositeResult, composite, sample_intervals
from nerfvae.rendering.renderer import (
    FieldFn,
    RaySamplingConfig,
    RenderOutput,
    render_in_chunks,
    render_rays,
)
from nerfvae.rendering.sampling import (
    fine_samples,
    importance_samples,
    sample_pdf,
    stratified_samples,
)

__all__ = [
    "CompositeResult",
    "FieldFn",
    "RaySamplingConfig",
    "RenderOutput",
    "composite",
    "fine_samples",
    "importance_samples",
    "render_in_chunks",
    "render_rays",
    "sample_intervals",
    "sample_pdf",
    "stratified_samples",
]
