"""``nerfvae render``: infer a scene from chosen views and render it from any of its cameras."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import tyro

from nerfvae.cli.common import TEST_TIME_FLAGS, replace_deprecated_flags
from nerfvae.errors import ConfigError, check_at_least
from nerfvae.evaluation.views import parse_view_indices
from nerfvae.inference import RefinementConfig, infer_scene
from nerfvae.precision import MachineOptions, use_threads

DESCRIPTION = "infer a scene from some of its views; render views, depth, uncertainty, turntable"


@dataclass
class RenderArgs:
    """Infer a scene's latent from chosen context views and render it: every requested view (RGB,
    depth, opacity, ground truth), posterior-sample mean and standard deviation, and a turntable."""

    run: str
    """Run directory (from `nerfvae train`)."""
    data: str
    """Dataset directory."""
    out: str
    """Output directory."""
    split: str = "test"
    """Dataset split the scene comes from."""
    scene: int = 0
    """Scene index within the split."""
    context: str = "0,1,2"
    """Comma-separated view indices used as context, each at most once."""
    views: str = "all"
    """Views to render: `all`, `id`, `ood`, or comma-separated view indices, each at most once."""
    samples: int = 8
    """Posterior samples for the per-pixel mean and standard deviation (0 = none)."""
    std_scale: float | None = None
    """Standard deviation shown white in the `*_sample_std.png` heat maps (magma, black = 0).
    Default: the 99th percentile over the rendered views, printed; fix it to compare renders."""
    turntable_frames: int = 36
    """Frames of a turntable around the scene (0 = none)."""
    video_format: Literal["gif", "mp4"] = "gif"
    """Turntable file format."""
    checkpoint: str | None = None
    """Checkpoint JSON to load (default: the run's newest)."""
    seed: int = 0
    """Seed of posterior samples (and of the refinement's rays and samples)."""
    test_time: RefinementConfig = field(default_factory=RefinementConfig)
    """Test-time refinement of the posterior on the context views (docs/evaluation.md)."""
    machine: tyro.conf.OmitArgPrefixes[MachineOptions] = field(default_factory=MachineOptions)
    """How the command uses this machine."""


def load_scene(data: str, split: str, index: int):
    from nerfvae.data.loader import MultiSceneDataset

    dataset = MultiSceneDataset(data, split)
    if not 0 <= index < len(dataset):
        raise ConfigError(f"--scene {index}: split {split!r} has scenes 0..{len(dataset) - 1}")
    return dataset, dataset.load_scene(index)


def run(argv: list[str], prog: str) -> int:
    argv = replace_deprecated_flags(argv, TEST_TIME_FLAGS, prog)
    args = tyro.cli(RenderArgs, args=argv, prog=prog)
    use_threads(args.machine.threads)
    check_at_least(args.turntable_frames, "--turntable-frames", 0, "0 (no turntable)")
    check_at_least(args.samples, "--samples", 0, "0 (no posterior samples)")
    if args.samples == 1:
        raise ConfigError("--samples 1: need 0 (none) or at least 2 posterior samples for a std")
    if args.std_scale is not None and not (math.isfinite(args.std_scale) and args.std_scale > 0):
        raise ConfigError(f"--std-scale must be a positive number, got {args.std_scale}")
    from nerfvae import visualise as vis
    from nerfvae.geometry import orbit_cameras
    from nerfvae.metrics import psnr
    from nerfvae.training.loading import load_trained_model

    model, _, _ = load_trained_model(args.run, args.checkpoint, args.machine.precision)
    dataset, scene = load_scene(args.data, args.split, args.scene)
    meta = dataset.meta
    context = parse_view_indices(args.context, scene.num_views, "--context")
    if args.views == "all":
        views = list(range(scene.num_views))
    elif args.views in ("id", "ood"):
        views = [
            i for i in range(scene.num_views) if bool(scene.view_is_ood[i]) == (args.views == "ood")
        ]
    else:
        views = parse_view_indices(args.views, scene.num_views, "--views")
    if not views:
        raise ConfigError(f"--views {args.views}: the scene has no such views")
    images = scene.images.float() / 255.0
    generator = torch.Generator().manual_seed(args.seed)
    posterior = infer_scene(
        model, scene.images, scene.K, scene.c2w, context, args.test_time, generator
    )
    rendered = vis.posterior_statistics(
        model,
        posterior,
        scene.K[views],
        scene.c2w[views],
        meta.image_height,
        meta.image_width,
        args.samples,
        generator,
    )
    out = Path(args.out)
    for i in context:
        vis.write_png(out / f"context_{i:02d}.png", images[i])
    if args.samples > 0:
        std_scale = args.std_scale or vis.std_colour_scale([rendered["sample_std"]])
        print(f"posterior std heat maps: black = 0, white = {std_scale:.4f}")
    rows = []
    for j, v in enumerate(views):
        kind = "ood" if bool(scene.view_is_ood[v]) else "id"
        stem = out / f"view_{v:02d}_{kind}"
        row = [
            images[v],
            rendered["colour"][j],
            vis.depth_to_image(rendered["depth"][j], meta.far),
            rendered["opacity"][j].unsqueeze(-1).expand(-1, -1, 3),
        ]
        vis.write_png(stem.with_name(stem.name + "_gt.png"), images[v])
        vis.write_png(stem.with_name(stem.name + "_rgb.png"), rendered["colour"][j])
        vis.write_png(stem.with_name(stem.name + "_depth.png"), row[2])
        vis.write_png(stem.with_name(stem.name + "_opacity.png"), row[3])
        if args.samples > 0:
            std_image = vis.heat_image(rendered["sample_std"][j], vmax=std_scale)
            vis.write_png(
                stem.with_name(stem.name + "_sample_mean.png"), rendered["sample_mean"][j]
            )
            vis.write_png(stem.with_name(stem.name + "_sample_std.png"), std_image)
            row += [rendered["sample_mean"][j], std_image]
        rows.append(row)
        print(f"view {v:2d} ({kind.upper()}): PSNR {psnr(rendered['colour'][j], images[v]):.2f} dB")
    vis.write_png(out / "sheet.png", vis.image_grid(rows))
    if args.turntable_frames > 0:
        id_views = (~scene.view_is_ood).nonzero().squeeze(-1)
        path = orbit_cameras(scene.c2w[id_views], args.turntable_frames)
        K = scene.K[int(id_views[0])].expand(args.turntable_frames, 3, 3)
        frames = vis.render_latents(
            model, posterior.mean, K, path, meta.image_height, meta.image_width
        )
        vis.write_video(out / f"turntable.{args.video_format}", frames["colour"][0])
    print(f"wrote {out}")
    return 0
