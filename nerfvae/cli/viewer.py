"""``nerfvae viewer``: explore a trained run's scenes in the browser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import tyro

from nerfvae.precision import MachineOptions, use_threads
from nerfvae.rendering.density_grid import DensityGridConfig

DESCRIPTION = "interactive browser viewer: orbit inferred scenes, compare, sample (localhost)"


@dataclass
class ViewerArgs:
    """Serve a web page to explore a trained model on a dataset split: choose a scene and its
    context views (thumbnails), orbit / pan / zoom a camera over the inferred scene, switch
    between RGB, depth, opacity and posterior standard deviation, compare with the ground truth
    when the camera sits on a dataset camera, draw posterior samples and new scenes from the
    prior. Frames render progressively: low resolution while the camera moves, full when it
    stops. Serves on localhost only unless --host says otherwise."""

    run: str
    """Run directory (from `nerfvae train`)."""
    data: str
    """Dataset directory."""
    split: str = "test"
    """Dataset split whose scenes are shown."""
    host: str = "127.0.0.1"
    """Address to listen on. The default serves this machine only; 0.0.0.0 exposes the viewer to
    the network (no authentication)."""
    port: int = 7007
    """Port to listen on (the next free one if taken)."""
    checkpoint: str | None = None
    """Checkpoint JSON to load (default: the run's newest)."""
    render_height: int | None = None
    """Height in pixels of full-resolution frames (default: the dataset's image height)."""
    preview_scale: float = 0.25
    """Resolution of the frames drawn while the camera moves, relative to full resolution."""
    settle_seconds: float = 0.25
    """How long the camera must be still before the full-resolution frame."""
    std_samples: int = 4
    """Latent samples behind the posterior standard deviation view."""
    seed: int = 0
    """Seed of posterior and prior samples."""
    prior: Literal["auto", "standard", "aggregate", "learned"] = "auto"
    """What the "new scene" button draws from. `auto`: the run's learned prior (`nerfvae prior
    fit`) if it has one for the checkpoint, else its aggregate prior, else the model's N(0, I)."""
    density_grid: DensityGridConfig = field(default_factory=DensityGridConfig)
    """Full frames: the scene's density baked once per latent onto a coarse grid places a few
    field samples per ray (docs/viewer.md); `--density-grid.resolution 0` renders them with the
    model's own sampling. The comparison with a dataset image always uses the model's own."""
    device: str = "auto"
    """Torch device (`auto`: CUDA when available, else CPU)."""
    machine: tyro.conf.OmitArgPrefixes[MachineOptions] = field(default_factory=MachineOptions)
    """How the command uses this machine."""


def run(argv: list[str], prog: str) -> int:
    args = tyro.cli(ViewerArgs, args=argv, prog=prog)
    use_threads(args.machine.threads)
    from nerfvae.viewer.server import serve

    serve(
        args.run,
        args.data,
        split=args.split,
        host=args.host,
        port=args.port,
        checkpoint=args.checkpoint,
        device=args.device,
        precision=args.machine.precision,
        render_height=args.render_height,
        preview_scale=args.preview_scale,
        settle_seconds=args.settle_seconds,
        std_samples=args.std_samples,
        seed=args.seed,
        prior=args.prior,
        density_grid=args.density_grid,
    )
    return 0
