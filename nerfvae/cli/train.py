"""``nerfvae train``: train NeRF-VAE; re-running the same command resumes the run."""

from __future__ import annotations

import argparse
from pathlib import Path

import tyro

from nerfvae.cli.common import ITERATIVE_INFERENCE_FLAGS, replace_deprecated_flags
from nerfvae.training.config import PRESETS, TrainConfig, load_config, preset

DESCRIPTION = "train NeRF-VAE on a dataset (resumes from the run directory)"


def config_from_args(argv: list[str], prog: str) -> TrainConfig:
    """``--config {tiny,small,planes,objects,default}|FILE`` picks the base config; every field can then be
    overridden (``--steps 100 --model.latent.layout global``)."""
    argv = replace_deprecated_flags(argv, ITERATIVE_INFERENCE_FLAGS, prog)
    chooser = argparse.ArgumentParser(add_help=False)
    chooser.add_argument("--config", default="small")
    known, rest = chooser.parse_known_args(argv)
    base = preset(known.config) if known.config in PRESETS else load_config(Path(known.config))
    description = (
        f"{TrainConfig.__doc__}\n\n--config {{{','.join(PRESETS)}}}|FILE picks the base config "
        f"(now: {known.config}); the defaults shown are that config's."
    )
    return tyro.cli(TrainConfig, default=base, args=rest, prog=prog, description=description)


def run(argv: list[str], prog: str) -> int:
    config = config_from_args(argv, prog)
    from nerfvae.training.trainer import train  # heavy imports after --help is handled

    checkpoint = train(config)
    print(f"done: {checkpoint}")
    return 0
