"""``nerfvae demo``: the main job — the shipped model on new scenes, written up as a report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tyro

from nerfvae.cli.common import TEST_TIME_FLAGS, replace_deprecated_flags
from nerfvae.errors import ConfigError, check_at_least
from nerfvae.inference import RefinementConfig
from nerfvae.precision import MachineOptions, use_threads
from nerfvae.rendering.density_grid import DensityGridConfig

DESCRIPTION = "run the demo: new scenes, inference, novel views, uncertainty, samples, report"


@dataclass
class DemoArgs:
    """Load the shipped NeRF-VAE (or train one), render new test scenes with Mitsuba, infer each
    from 3 views and write a report with reconstructions, novel ID/OOD views, depth, uncertainty,
    prior samples and the metrics table."""

    out: str = "demo"
    """Output directory of the report."""
    run: str = "assets/model"
    """Run directory of the model to show (the shipped model by default)."""
    train: bool = False
    """Train a new model from scratch with the config of --run (generates the `small` training set;
    a model that was fine-tuned from another run is retrained stage by stage) instead of using it."""
    train_minutes: float = 60.0
    """Wall-clock training budget of one --train invocation (re-running continues the same runs)."""
    scenes: int = 4
    """Number of new test scenes."""
    context: str = "1,3"
    """Comma-separated numbers of context views K, each at most once, each scene is evaluated with (the shipped
    model's full K = 1, 2, 3, 5 table is in assets/model/eval; two values keep the demo under 10
    minutes on 2 CPU cores)."""
    samples: int = 3
    """Posterior samples per scene for the uncertainty columns of the report."""
    test_time: RefinementConfig = field(default_factory=lambda: RefinementConfig(steps=50))
    """Test-time refinement of the posteriors on their context views for the report's figures and
    a second metrics table (docs/evaluation.md); `--test-time.steps 0` shows the encoder alone."""
    test_time_context: str = "3"
    """Comma-separated numbers of context views K (each at most once) evaluated again with
    refinement."""
    workers: int = 2
    """Render processes for the scenes."""
    density_grid: DensityGridConfig = field(default_factory=DensityGridConfig)
    """The report's figures (reconstructions, samples, turntable) run the field only where a
    density grid baked from each latent puts mass (docs/viewer.md); `--density-grid.resolution
    0` renders them with the model's own sampling. The metrics always use the model's own."""
    machine: tyro.conf.OmitArgPrefixes[MachineOptions] = field(default_factory=MachineOptions)
    """How the command uses this machine."""


def run(argv: list[str], prog: str) -> int:
    argv = replace_deprecated_flags(argv, TEST_TIME_FLAGS, prog)
    args = tyro.cli(DemoArgs, args=argv, prog=prog)
    use_threads(args.machine.threads)
    check_at_least(args.scenes, "--scenes", 1, "one test scene")
    check_at_least(args.samples, "--samples", 2, "2 posterior samples for a std")
    check_at_least(args.workers, "--workers", 1, "one render process")
    if args.train and not args.train_minutes > 0:  # also rejects NaN
        raise ConfigError(f"--train-minutes must be positive, got {args.train_minutes}")
    from nerfvae.demo import demo_data_settings, run_demo, train_from_scratch

    shipped = Path(args.run)
    if not (shipped / "config.json").exists():
        raise ConfigError(f"no model at {shipped} (expected a run directory with config.json)")
    model_run = shipped
    if args.train:
        trained = train_from_scratch(Path(args.out), shipped, args.train_minutes, args.workers)
        if trained is None:
            return 1
        model_run = trained
    settings = demo_data_settings(args.scenes)
    from nerfvae.evaluation.views import parse_context_sizes

    report = run_demo(
        Path(args.out),
        model_run,
        settings,
        workers=args.workers,
        samples=args.samples,
        context_sizes=parse_context_sizes(args.context),
        refinement=args.test_time,
        refine_context_sizes=parse_context_sizes(args.test_time_context),
        precision=args.machine.precision,
        density_grid=args.density_grid,
    )
    print(f"[demo] report: {report}")
    return 0
