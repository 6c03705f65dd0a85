"""``nerfvae eval``: metrics of a trained run on a dataset split, per context size, ID and OOD."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro

from nerfvae.cli.common import TEST_TIME_FLAGS, replace_deprecated_flags
from nerfvae.evaluation.views import parse_context_sizes
from nerfvae.inference import RefinementConfig
from nerfvae.precision import MachineOptions, use_threads

DESCRIPTION = "evaluate a trained run: PSNR/SSIM/object PSNR/ELBO per K, ID and OOD"


@dataclass
class EvalArgs:
    """Evaluate a trained run on held-out scenes; writes JSON, a markdown table and a figure."""

    run: str
    """Run directory (from `nerfvae train`)."""
    data: str
    """Dataset directory."""
    split: str = "test"
    """Dataset split to evaluate."""
    context: str = "1,2,3,5"
    """Comma-separated numbers of context views K, each at most once (views 0..K-1 of each scene;
    see docs/evaluation.md)."""
    out: str = "metrics.json"
    """Output JSON; `<stem>.md` and `<stem>_psnr_vs_k.png` are written beside it."""
    max_scenes: int | None = None
    """Evaluate only the first N scenes of the split (default: all)."""
    checkpoint: str | None = None
    """Checkpoint JSON to load (default: the run's newest)."""
    scenes_per_batch: int = 4
    """Scenes inferred and rendered together."""
    seed: int = 0
    """Seed of the posterior sample used for the ELBO (and of the refinement's rays and samples)."""
    test_time: RefinementConfig = field(default_factory=RefinementConfig)
    """Test-time refinement of each posterior on its context views (docs/evaluation.md)."""
    elbo_prior: Literal["standard", "learned"] = "standard"
    """Prior of the −ELBO column's KL term: `standard` N(0, I) (the model's own, exact KL), or
    `learned`: the run's learned prior (`nerfvae prior fit`), through its bound on −log p(z)
    (docs/evaluation.md)."""
    machine: tyro.conf.OmitArgPrefixes[MachineOptions] = field(default_factory=MachineOptions)
    """How the command uses this machine."""


def run(argv: list[str], prog: str) -> int:
    argv = replace_deprecated_flags(argv, TEST_TIME_FLAGS, prog)
    args = tyro.cli(EvalArgs, args=argv, prog=prog)
    use_threads(args.machine.threads)
    context_sizes = parse_context_sizes(args.context)
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.evaluation.evaluate import evaluate_run, optional_mean_training_image
    from nerfvae.evaluation.report import inference_line, markdown_table, write_report
    from nerfvae.training.loading import load_trained_model

    loaded = load_trained_model(args.run, args.checkpoint, args.machine.precision)
    elbo_prior = None
    if args.elbo_prior == "learned":
        from nerfvae.evaluation.scene_priors import scene_prior

        elbo_prior = scene_prior(args.run, loaded[0], loaded[2], "learned").sampler
    dataset = MultiSceneDataset(args.data, args.split)
    train_mean = optional_mean_training_image(args.data)  # None without a train split
    result = evaluate_run(
        loaded,
        dataset,
        run=args.run,
        data=args.data,
        split=args.split,
        context_sizes=context_sizes,
        max_scenes=args.max_scenes,
        scenes_per_batch=args.scenes_per_batch,
        mean_train_image=train_mean,
        seed=args.seed,
        refinement=args.test_time,
        elbo_prior=elbo_prior,
    )
    paths = write_report(result, Path(args.out))
    print(inference_line(result) + markdown_table(result))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
