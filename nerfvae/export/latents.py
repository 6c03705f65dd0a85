"""Which latent to export or view: the checks that turn bad scene / view choices into one clear
error, and prior samples (a scene's posterior from chosen views is
:func:`nerfvae.evaluation.refinement.infer_scene`)."""

from __future__ import annotations

import torch

from nerfvae.errors import ConfigError
from nerfvae.models import SceneModel


def parse_view_indices(text: str, num_views: int, what: str = "--context") -> list[int]:
    """``"1,3,5"`` -> ``[1, 3, 5]``, each in ``0 .. num_views - 1``, no repeats; ConfigError
    naming ``what`` otherwise."""
    try:
        indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"{what} {text!r}: expected comma-separated view indices such as 1,3,5"
        ) from None
    if not indices:
        raise ConfigError(f"{what} is empty: give at least one view index")
    bad = [index for index in indices if not 0 <= index < num_views]
    if bad:
        raise ConfigError(
            f"{what} {text!r}: view(s) {bad} do not exist; the scene has views 0..{num_views - 1}"
        )
    if len(set(indices)) != len(indices):
        raise ConfigError(f"{what} {text!r}: a view is listed twice")
    return indices


def check_scene_index(index: int, num_scenes: int, split: str) -> None:
    if not 0 <= index < num_scenes:
        raise ConfigError(
            f"--scene {index}: split {split!r} has {num_scenes} scenes (0..{num_scenes - 1})"
        )


def prior_sample(model: SceneModel, index: int, seed: int = 0) -> torch.Tensor:
    """Latent ``[1, T, C]`` of prior sample ``index`` of ``seed``: the same scene as sample
    ``index`` of ``nerfvae sample --seed SEED`` (one draw of ``index + 1`` latents, in order)."""
    if index < 0:
        raise ConfigError(f"--prior-sample must be >= 0, got {index}")
    generator = torch.Generator(device=model.scene_min.device).manual_seed(seed)
    return model.prior(index + 1).rsample(generator)[index : index + 1]
