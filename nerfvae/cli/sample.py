"""``nerfvae sample``: new scenes drawn from the prior, rendered from a dataset scene's cameras."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import tyro

from nerfvae.errors import ConfigError, check_at_least
from nerfvae.evaluation.aggregate_prior import AggregateFit
from nerfvae.evaluation.learned_prior import LearnedPriorFit
from nerfvae.precision import MachineOptions, use_threads

DESCRIPTION = "sample new scenes from the prior and render them (views and turntables)"


@dataclass
class SampleArgs:
    """Draw scenes z ~ p(z) and render each from the cameras of a dataset scene (the scene's
    images are not used, only its cameras) and along a turntable. `--prior aggregate` draws from a
    low-rank Gaussian fitted to the posteriors of training scenes instead, `--prior learned` from a
    diffusion model fitted to them (docs/evaluation.md)."""

    run: str
    """Run directory (from `nerfvae train`)."""
    data: str
    """Dataset directory whose cameras are used."""
    out: str
    """Output directory."""
    num: int = 4
    """Number of prior samples."""
    split: str = "test"
    """Split of the camera scene."""
    scene: int = 0
    """Scene index whose cameras are used."""
    views: int = 4
    """Number of that scene's ID cameras to render each sample from."""
    turntable_frames: int = 24
    """Frames of a turntable per sample (0 = none)."""
    video_format: Literal["gif", "mp4"] = "gif"
    """Turntable file format."""
    checkpoint: str | None = None
    """Checkpoint JSON to load (default: the run's newest)."""
    seed: int = 0
    """Seed of the prior samples."""
    prior: Literal["standard", "aggregate", "learned"] = "standard"
    """`standard`: the model's prior N(0, I). `aggregate`: a Gaussian fitted to the posterior means
    of the training scenes of --data (cached in RUN/aggregate_prior.safetensors). `learned`: a
    diffusion model fitted to their posteriors (cached in RUN/learned_prior.safetensors; `nerfvae
    prior fit` fits it ahead)."""
    fit: AggregateFit = field(default_factory=AggregateFit)
    """How `--prior aggregate` is fitted when the run has no fit for its checkpoint yet."""
    learned_fit: LearnedPriorFit = field(default_factory=LearnedPriorFit)
    """How `--prior learned` is fitted when the run has no fit for its checkpoint yet (minutes of
    CPU: see --learned-fit.time-budget-minutes)."""
    sampling_steps: int | None = None
    """Denoising steps per `--prior learned` sample (DDIM; default: the prior's own, 50 unless it
    was fitted with another `--learned-fit.diffusion.sampling-steps`). Fewer are faster and
    coarser."""
    guidance: float | None = None
    """Autoguidance weight of `--prior learned` samples (default: the prior's own; 1 samples
    without the guide). Above 1 needs a prior fitted with a guide (`--fit.diffusion.guidance`
    of `nerfvae prior fit`, as the shipped model's is)."""
    refit_prior: bool = False
    """Fit the aggregate prior (with --fit.*) or the learned prior (with --learned-fit.*) again
    even if the run has one for its checkpoint."""
    machine: tyro.conf.OmitArgPrefixes[MachineOptions] = field(default_factory=MachineOptions)
    """How the command uses this machine."""


def run(argv: list[str], prog: str) -> int:
    args = tyro.cli(SampleArgs, args=argv, prog=prog)
    use_threads(args.machine.threads)
    check_at_least(args.num, "--num", 1, "one prior sample")
    check_at_least(args.views, "--views", 1, "one camera")
    check_at_least(args.turntable_frames, "--turntable-frames", 0, "0 (no turntable)")
    for option, value in (("--sampling-steps", args.sampling_steps), ("--guidance", args.guidance)):
        if value is not None and args.prior != "learned":
            raise ConfigError(f"{option} applies to --prior learned, not --prior {args.prior}")
    from nerfvae import visualise as vis
    from nerfvae.cli.render import load_scene
    from nerfvae.geometry import orbit_cameras
    from nerfvae.training.loading import load_trained_model

    model, _, record = load_trained_model(args.run, args.checkpoint, args.machine.precision)
    dataset, scene = load_scene(args.data, args.split, args.scene)
    meta = dataset.meta
    id_views = (~scene.view_is_ood).nonzero().squeeze(-1)
    views = id_views[: args.views]
    generator = torch.Generator().manual_seed(args.seed)
    if args.prior == "aggregate":
        from nerfvae.data.loader import MultiSceneDataset
        from nerfvae.evaluation.aggregate_prior import aggregate_prior

        prior, info, fitted = aggregate_prior(
            Path(args.run),
            model,
            record,
            lambda: MultiSceneDataset(args.data, "train"),
            args.fit,
            args.refit_prior,
        )
        print(
            f"aggregate prior {'fitted now' if fitted else 'read from the run'}: "
            f"{info['components']} components over {info['scenes']} training scenes keep "
            f"{100 * info['variance_kept']:.0f}% of their posterior means' variance"
        )
        latents = prior.rsample(args.num, generator)
    elif args.prior == "learned":
        from nerfvae.data.loader import MultiSceneDataset
        from nerfvae.evaluation.learned_prior import LearnedPrior, describe_fit, learned_prior

        def training_scenes() -> MultiSceneDataset:
            print(
                f"no learned prior for this checkpoint in {args.run}: fitting one to the training "
                f"scenes of {args.data} (at most {args.learned_fit.time_budget_minutes:g} min)"
            )
            return MultiSceneDataset(args.data, "train")

        prior, info, fitted = learned_prior(
            Path(args.run), model, record, training_scenes, args.learned_fit, args.refit_prior
        )
        print(
            f"learned prior {'fitted now' if fitted else 'read from the run'}: {describe_fit(info)}"
        )
        if args.sampling_steps is not None or args.guidance is not None:
            prior = LearnedPrior(prior.diffusion, args.sampling_steps, args.guidance)
        latents = prior.rsample(args.num, generator)
    else:
        latents = model.prior(args.num).rsample(generator)
    rendered = vis.render_latents(
        model, latents, scene.K[views], scene.c2w[views], meta.image_height, meta.image_width
    )
    out = Path(args.out)
    rows = []
    for n in range(args.num):
        row = []
        for j in range(len(views)):
            vis.write_png(out / f"sample_{n:02d}_view_{j:02d}.png", rendered["colour"][n, j])
            row.append(rendered["colour"][n, j])
        rows.append(row)
    vis.write_png(out / "samples.png", vis.image_grid(rows))
    if args.turntable_frames > 0:
        path = orbit_cameras(scene.c2w[id_views], args.turntable_frames)
        K = scene.K[int(id_views[0])].expand(args.turntable_frames, 3, 3)
        frames = vis.render_latents(model, latents, K, path, meta.image_height, meta.image_width)
        for n in range(args.num):
            vis.write_video(
                out / f"sample_{n:02d}_turntable.{args.video_format}", frames["colour"][n]
            )
    print(f"wrote {args.num} samples of the {args.prior} prior to {out}")
    return 0
