"""Shared fixture builder for the viewer and export tests: a tiny rendered dataset and a run
trained on it for a couple of steps (about 15 s on 2 cores, built once per test session and
worker). Kept in a module of its own so both test files import the same builder; it holds no
tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerfvae.cli.main import main as nerfvae_main


def build_tiny_run(root: Path) -> tuple[Path, Path]:
    """``(data_dir, run_dir)`` under ``root``, made on first use: 2 test scenes of 4 ID + 1 OOD
    views at 16x16, and the ``tiny`` model trained for 2 steps."""
    data, run = root / "data", root / "run"
    if not (data / "dataset.json").exists():
        code = nerfvae_main(
            ["data", "generate", "--preset", "tiny", "--out", str(data), "--scenes", "2",
             "--eval-scenes", "2", "--views", "4", "--ood-views", "1", "--resolution", "16",
             "--spp", "1", "--seed", "3", "--no-progress"]
        )  # fmt: skip
        assert code == 0
    checkpoints = run / "checkpoints"
    if not (checkpoints.exists() and any(checkpoints.glob("*.json"))):
        code = nerfvae_main(
            ["train", "--config", "tiny", "--data", str(data), "--run", str(run), "--steps", "2",
             "--checkpoint-every", "2", "--scenes-per-batch", "2", "--rays-per-scene", "32",
             "--validate-every", "0"]
        )  # fmt: skip
        assert code == 0
    return data, run


def tiny_run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's tiny dataset and run live (one per pytest worker)."""
    return tmp_path_factory.getbasetemp() / "viewer_export_tiny_run"
