"""``nerfvae data``: generate the built-in rooms dataset, look at a dataset, import standard formats.

Subcommands: ``generate``, ``show``, ``import`` (the last lives in :mod:`nerfvae.cli.data_import`).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

DESCRIPTION = "make and inspect datasets: data generate | data show | data import"

SUBCOMMANDS = {
    "generate": "render the built-in rooms dataset with Mitsuba 3 (resumable, deterministic)",
    "show": "write a contact sheet PNG of a dataset (views, depth, object masks)",
    "import": "convert a dataset in a standard format (blender, nerfstudio, srn, gqn)",
}


@dataclass
class GenerateConfig:
    """Render the built-in dataset of GQN-style rooms (floor, walls, 2-5 objects) with Mitsuba 3
    into OUT: dataset.json plus safetensors shards with RGB, depth, object masks and cameras for
    train/val/test (see docs/data.md). Deterministic for a seed and settings; re-running the same
    command resumes, skipping finished shards."""

    out: Path
    """Output dataset directory."""
    preset: Literal["tiny", "small", "default", "objects"] = "default"
    """Rooms — tiny: 32x32, 64 scenes (tests); small: 64x64, ~1,000 scenes; default: 64x64, 5,000
    training scenes with 10 ID views and 100 val + 100 test scenes with 10 ID + 5 OOD views.
    objects: 1-3 objects before a white background, cameras on a sphere (OOD: closer, from high
    above), 64x64, 600 training scenes, 20 val + 50 test."""
    scenes: int | None = None
    """Override the number of training scenes."""
    eval_scenes: int | None = None
    """Override the number of val and of test scenes (each)."""
    views: int | None = None
    """Override the in-distribution views per scene (all splits)."""
    ood_views: int | None = None
    """Override the out-of-distribution views per val/test scene."""
    resolution: int | None = None
    """Override the image size (square, pixels)."""
    spp: int | None = None
    """Override colour samples per pixel (Mitsuba's multijitter rounds to a product of two ints)."""
    seed: int | None = None
    """Override the seed (default 0)."""
    shard_size: int | None = None
    """Override the scenes per shard file."""
    workers: int = 1
    """Parallel render processes (one render thread each)."""
    progress: bool = True
    """Show the progress bar (--no-progress: don't)."""


@dataclass
class ShowConfig:
    """Write a contact sheet PNG of a dataset: a few scenes with their ID views, OOD views (framed
    in orange), depth (log scale between near and far) and object masks."""

    data: Annotated[tyro.conf.Positional[Path], tyro.conf.arg(metavar="DIR")]
    """Dataset directory (with dataset.json)."""
    out: Path | None = None
    """Output PNG (default: DIR/contact_sheet.png)."""
    split: str = "test"
    """Split to show."""
    scenes: int = 4
    """Number of scenes (rows)."""
    scale: int = 3
    """Upscaling factor of each image."""


def _usage(prog: str) -> str:
    lines = [f"usage: {prog} <subcommand> [options]", "", "subcommands:"]
    lines += [f"  {name:<10} {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", f"Run `{prog} <subcommand> --help` for its options."]
    return "\n".join(lines)


def _generate(argv: list[str], prog: str) -> int:
    config = tyro.cli(GenerateConfig, args=argv, prog=prog)
    from nerfvae.data.generate import generate, make_settings

    settings = make_settings(
        config.preset,
        scenes=config.scenes,
        eval_scenes=config.eval_scenes,
        views=config.views,
        ood_views=config.ood_views,
        resolution=config.resolution,
        spp=config.spp,
        seed=config.seed,
        shard_size=config.shard_size,
    )
    report = generate(config.out, settings, workers=config.workers, progress=config.progress)
    meta = report.meta
    counts = ", ".join(
        f"{name} {split.num_scenes} scenes x {split.id_views} ID + {split.ood_views} OOD views"
        for name, split in meta.splits.items()
    )
    print(f"{config.out}: {counts}, {meta.image_height}x{meta.image_width}")
    print(
        f"rendered {report.rendered_views} views in {report.seconds:.1f} s "
        f"({report.views_per_second:.1f} views/s); {report.skipped_views} views were already done"
    )
    test = meta.baselines.get("test", {})
    if test:
        mean_image = test.get("mean_training_image", {})
        context = test.get("context_mean_colour", {})
        print(
            "test-split trivial baselines (PSNR dB, ID/OOD targets): mean training image "
            f"{mean_image.get('id_targets')}/{mean_image.get('ood_targets')}, mean context colour "
            f"{context.get('id_targets')}/{context.get('ood_targets')}"
        )
    return 0


def _show(argv: list[str], prog: str) -> int:
    config = tyro.cli(ShowConfig, args=argv, prog=prog)
    from nerfvae.data.show import contact_sheet

    out = config.out if config.out is not None else config.data / "contact_sheet.png"
    path = contact_sheet(
        config.data, out, split=config.split, num_scenes=config.scenes, scale=config.scale
    )
    print(path)
    return 0


def run(argv: list[str], prog: str) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(prog))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "generate":
        return _generate(rest, f"{prog} generate")
    if name == "show":
        return _show(rest, f"{prog} show")
    if name == "import":
        module = importlib.import_module("nerfvae.cli.data_import")
        return int(module.run(rest, prog=f"{prog} import") or 0)
    print(f"{prog}: unknown subcommand {name!r}\n\n{_usage(prog)}", file=sys.stderr)
    return 2
