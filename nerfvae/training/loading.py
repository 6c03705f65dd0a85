"""Rebuild a trained model from its run directory (config.json + a checkpoint)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from nerfvae.errors import CheckpointError, ConfigError
from nerfvae.models import NeRFVAE, SceneModel
from nerfvae.precision import resolve_precision
from nerfvae.training.checkpoint import load_checkpoint, load_model_weights
from nerfvae.training.config import TrainConfig
from nerfvae.training.run_directory import RunDirectory


def build_model(config: TrainConfig) -> SceneModel:
    """The model a TrainConfig describes, freshly initialised; the config is checked first
    (:meth:`TrainConfig.check`), so a bad value is a ConfigError naming the field, not a failure
    deep inside model construction."""
    try:
        config.check()
    except ConfigError as error:
        raise ConfigError(f"model config: {error}") from None
    if config.model == "nerfvae":
        return NeRFVAE(config.nerfvae)
    if config.model == "gqn":
        from nerfvae.models.baselines.gqn import GQN

        # The dataset's scene box (copied into the nerfvae section by training) normalises the
        # camera positions of the GQN baseline's camera codes.
        return GQN(config.gqn, config.nerfvae.scene_min, config.nerfvae.scene_max)
    raise ConfigError(f"unknown model {config.model!r}")


def load_trained_model(
    run: str | Path,
    checkpoint: str | Path | None = None,
    precision: str | None = None,
    *,
    device: str | torch.device = "cpu",
) -> tuple[SceneModel, TrainConfig, dict[str, Any]]:
    """Model (in eval mode, on the CPU), its config and the checkpoint record of a run.

    ``device`` is where the caller will run the model: ``auto`` precision resolves for it.

    ``checkpoint`` defaults to the run's newest. ``precision`` (``auto``, ``fp32``, ``bf16``)
    defaults to the run config's; the returned config's ``precision`` is the one resolved for
    ``device`` (``fp32`` or ``bf16``), so results can record it. Raises ConfigError for a missing or
    invalid config and CheckpointError for a missing, corrupt or mismatched checkpoint.
    """
    run_dir = RunDirectory(Path(run))
    config = run_dir.load_config()
    path = Path(checkpoint) if checkpoint is not None else run_dir.latest_checkpoint()
    if path is None:
        raise CheckpointError(f"run directory {run_dir.root} has no checkpoint yet")
    record, tensors = load_checkpoint(path)
    model = build_model(config)
    load_model_weights(model, tensors, path)
    resolved = resolve_precision(precision or config.precision, device)
    config = replace(config, precision=resolved)
    model.mixed_precision = resolved == "bf16"
    model.eval()
    return model, config, record
