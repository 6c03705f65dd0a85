"""A fitted prior cached in a run directory, tied to one checkpoint: the read-or-fit logic the
aggregate prior (:mod:`nerfvae.evaluation.aggregate_prior`) and the learned prior
(:mod:`nerfvae.evaluation.learned_prior`) share. Each file's metadata records the SHA-256 of the
checkpoint it was fitted to; a file of another checkpoint is ignored, never silently used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nerfvae.errors import ConfigError

Prior = TypeVar("Prior")


def stored_fit(
    path: Path,
    load: Callable[[Path], tuple[Prior, dict[str, Any]]],
    checkpoint_record: dict[str, Any],
) -> tuple[Prior, dict[str, Any]] | None:
    """``load(path)`` if ``path`` exists and was fitted to this checkpoint's weights; None if
    there is no file or it belongs to another checkpoint (a corrupt file raises in ``load``)."""
    if not path.exists():
        return None
    prior, info = load(path)
    if info.get("checkpoint_sha256") != checkpoint_record["sha256"]:
        return None
    return prior, info


def stored_or_fitted(
    path: Path,
    stored: tuple[Prior, dict[str, Any]] | None,
    training_scenes: Callable[[], Any] | None,
    fit_command: str,
    fit_and_save: Callable[[Any], tuple[Prior, dict[str, Any]]],
) -> tuple[Prior, dict[str, Any], bool]:
    """``stored`` if there is one, else ``fit_and_save(training_scenes())`` (which fits, writes
    ``path`` and returns the prior and its record); ``training_scenes`` None forbids fitting (a
    ConfigError naming ``fit_command``). Returns the prior, its record and whether it was fitted
    now."""
    if stored is not None:
        return *stored, False
    if training_scenes is None:
        raise ConfigError(
            f"{path} is missing or belongs to another checkpoint; give a dataset to fit it "
            f"({fit_command})"
        )
    return *fit_and_save(training_scenes()), True
