"""``nerfvae data import``: convert NeRF-synthetic, nerfstudio, ShapeNet-SRN or GQN data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from nerfvae.data.importers.importer import ImportOptions

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
    options: Annotated[ImportOptions, tyro.conf.arg(name="")] = field(default_factory=ImportOptions)
    """How to convert."""
    overwrite: bool = False
    """Replace an existing dataset or an unfinished import with other options in --out."""
    progress: bool = True
    """Show a progress bar (--no-progress: don't)."""


def run(argv: list[str], prog: str) -> int:
    config = tyro.cli(DataImportConfig, args=argv, prog=prog)
    from nerfvae.data.importers.importer import import_dataset

    import_dataset(
        config.format,
        config.src,
        config.out,
        config.options,
        overwrite=config.overwrite,
        progress=config.progress,
    )
    return 0
