"""``nerfvae baseline nerf``: optimise a per-scene NeRF on each test scene's context views and
evaluate it like ``nerfvae eval``. (The GQN-style baseline trains and evaluates through
``nerfvae train --model gqn`` and ``nerfvae eval``.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tyro

from nerfvae.cli.common import subcommand_usage, usage_exit_status
from nerfvae.errors import ConfigError
from nerfvae.evaluation.per_scene_nerf import PerSceneNeRFOptions
from nerfvae.models.baselines.nerf import PerSceneNeRFConfig
from nerfvae.precision import ThreadsOption, use_threads

DESCRIPTION = "baselines: per-scene NeRF optimised on each scene's context views (`baseline nerf`)"

SUBCOMMANDS = {"nerf": "optimise a NeRF per test scene on its K context views, evaluate like eval"}


@dataclass
class NeRFBaselineArgs(PerSceneNeRFOptions):
    """Optimise a standard NeRF (coarse + fine MLPs, positional encoding) from scratch on the K
    context views of every scene of a split, then score it on the same held-out ID/OOD views with
    the same metrics as `nerfvae eval`. Writes JSON, a markdown table (with wall time and PSNR over
    optimisation steps) and a PSNR-vs-steps figure."""

    data: str
    """Dataset directory."""
    split: str = "test"
    """Dataset split to evaluate."""
    context: str = "1,2,3,5"
    """Comma-separated numbers of context views K, each at most once (views 0..K-1 of each scene, as
    `nerfvae eval`),
    or `all`: every ID view is context and the held-out (OOD) views are scored (single-scene data
    such as lego)."""
    id_targets: int | None = None
    """Hold out the last N ID views of each scene as ID targets (default: every ID view after the
    largest K). Runs made for different K with the same N score the same views, so `nerfvae
    experiment views --nerf-json` can merge them (the views sweep with `all` uses N = 3)."""
    out: str = "nerf_baseline.json"
    """Output JSON; `<stem>.md` and `<stem>_psnr_vs_steps.png` are written beside it. Until then
    each finished batch of scenes is kept in `<stem>.parts/`, so the same command run again after
    a stop fits only the batches not yet done."""
    max_scenes: int | None = None
    """Evaluate only the first N scenes of the split (default: all)."""
    scenes_per_batch: int = 4
    """Scenes whose NeRFs are optimised at once (batched weights, one forward/backward for all;
    on a CPU the cost per scene is about the same as one at a time, fewer calls help a GPU)."""
    nerf: tyro.conf.OmitArgPrefixes[PerSceneNeRFConfig] = field(default_factory=PerSceneNeRFConfig)
    """NeRF architecture and optimisation budget."""
    machine: tyro.conf.OmitArgPrefixes[ThreadsOption] = field(default_factory=ThreadsOption)
    """How the command uses this machine."""


def parse_context(text: str) -> tuple[int, ...] | None:
    if text.strip().lower() == "all":
        return None
    from nerfvae.evaluation.views import parse_context_sizes

    return parse_context_sizes(text)


def _usage(prog: str) -> str:
    return subcommand_usage(
        prog, SUBCOMMANDS, placeholder="<baseline>", heading="baselines", help_target="<baseline>"
    )


def run(argv: list[str], prog: str) -> int:
    status = usage_exit_status(argv, _usage(prog))
    if status is not None:
        return status
    if argv[0] not in SUBCOMMANDS:
        raise ConfigError(f"unknown baseline {argv[0]!r} (choose {', '.join(SUBCOMMANDS)})")
    args = tyro.cli(NeRFBaselineArgs, args=argv[1:], prog=f"{prog} {argv[0]}")
    context_sizes = parse_context(args.context)
    if context_sizes is None and args.id_targets is not None:
        raise ConfigError(
            "--id-targets has no effect with --context all (every ID view is context, none is a "
            "target); to fit every ID view but the last N, as the views experiment's `all` does, "
            "give --context <ID views - N> --id-targets N"
        )

    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.evaluation.evaluate import optional_mean_training_image
    from nerfvae.evaluation.per_scene_nerf import (
        evaluate_per_scene_nerf,
        remove_parts,
        resolve_background,
        write_baseline_report,
    )
    from nerfvae.evaluation.report import markdown_table

    use_threads(args.machine.threads)
    dataset = MultiSceneDataset(args.data, args.split)
    background = resolve_background(args.background, dataset.meta)
    # each finished batch of scenes is kept here until the report is written: a stopped run,
    # started again with the same command, fits only the batches not yet done
    parts = Path(args.out).with_suffix(".parts")
    result = evaluate_per_scene_nerf(
        dataset,
        args.nerf,
        context_sizes=context_sizes,
        max_scenes=args.max_scenes,
        scenes_per_batch=args.scenes_per_batch,
        background=background,
        mean_train_image=optional_mean_training_image(args.data),
        probe_views=args.probe_views,
        probe_points=args.probe_points,
        id_targets=args.id_targets,
        device=args.device,
        parts=parts,
    )
    result.update(dataset=str(args.data), split=args.split)
    paths = write_baseline_report(result, Path(args.out))
    remove_parts(parts)
    print(markdown_table(result))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
