"""``nerfvae data import``: convert NeRF-synthetic, nerfstudio, ShapeNet-SRN or GQN data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

DESCRIPTION = "import a dataset in a standard format (blender, nerfstudio, srn, gqn)"


@dataclass
class DataImportConfig:
    """Convert a dataset in a standard format into nerfvae's format (dataset.json + shards), with
    cameras mapped to nerfvae's OpenCV convention. Scene bounds and near/far are taken from the
    format where it gives them, else computed from the cameras, and printed. Re-running the same
    command resumes an interrupted import. See docs/formats.md."""

    src: Annotated[tyro.conf.Positional[Path], tyro.conf.arg(metavar="SRC")]
    """Source: a scene directory or a root of them (blender, nerfstudio), an SRN root such as
    srn_cars, or a GQN dataset directory such as gqn/rooms_ring_camera (with train/, test/)."""
    format: Literal["blender", "nerfstudio", "srn", "gqn"]
    """Source format: blender (NeRF-synthetic transforms_*.json), nerfstudio (transforms.json with
    fl_x/fl_y/cx/cy, also instant-ngp), srn (pixelNeRF's ShapeNet-SRN layout), gqn (DeepMind GQN
    TFRecords)."""
    out: Path
    """Output dataset directory (created; must be empty or an unfinished import of the same
    command)."""
    image_size: tuple[int, int] | None = None
    """Resize every image to HEIGHT WIDTH (area filter; intrinsics are rescaled). Default: keep the
    source size, which must then be the same for all images."""
    background: str = "white"
    """Colour composited under transparent pixels: white, black, grey, #rrggbb or r,g,b in [0, 1]."""
    split_by: Literal["auto", "views", "scenes"] = "auto"
    """views: every scene in every split, the source's held-out views (test/val) stored as the
    scene's OOD views after its training views; scenes: whole scenes per split (the format's split,
    else split-fractions). auto: views for one blender/nerfstudio scene, scenes otherwise."""
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Train, val, test fractions for scenes the format does not assign to a split."""
    holdout_every: int = 8
    """nerfstudio without train/val/test_filenames: every N-th frame is a held-out test view."""
    views: int | None = None
    """ID views per scene (the first N). Default: the smallest view count in each split."""
    max_scenes: int | None = None
    """Import at most this many scenes per split (handy for the large GQN sets)."""
    val_scenes: int = 0
    """If the source has no val split (GQN): move this many training scenes to val."""
    scenes_per_shard: int = 0
    """Scenes per shard file; 0 chooses about 64 MiB per shard."""
    near: float | None = None
    """Override the near ray distance."""
    far: float | None = None
    """Override the far ray distance."""
    scene_bounds: tuple[float, float, float, float, float, float] | None = None
    """Override the scene box: XMIN YMIN ZMIN XMAX YMAX ZMAX."""
    masks: bool = True
    """Store alpha > 0.5 as the object mask when images have an alpha channel (--no-masks: don't)."""
    gqn_dataset: str | None = None
    """GQN dataset name when the path does not contain it (e.g. rooms_ring_camera)."""
    gqn_fov_degrees: float = 50.0
    """GQN horizontal = vertical field of view in degrees (unpublished; 50 as in tf-gqn)."""
    seed: int = 0
    """Seed of the scene split by fractions."""
    name: str | None = None
    """Dataset name written to dataset.json (default: the source directory's name)."""
    overwrite: bool = False
    """Replace an existing dataset or an unfinished import with other options in --out."""
    progress: bool = True
    """Show a progress bar (--no-progress: don't)."""


def run(argv: list[str], prog: str) -> int:
    config = tyro.cli(DataImportConfig, args=argv, prog=prog)
    from nerfvae.data.importers.importer import ImportOptions, import_dataset

    option_names = {f.name for f in dataclasses.fields(ImportOptions)}
    options = ImportOptions(**{name: getattr(config, name) for name in option_names})
    import_dataset(
        config.format,
        config.src,
        config.out,
        options,
        overwrite=config.overwrite,
        progress=config.progress,
    )
    return 0
