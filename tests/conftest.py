"""Shared fixtures: a tiny generated rooms dataset and a tiny trained run (built once per session
and per xdist worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# 6 train scenes, 2 val and 2 test scenes with 6 ID + 2 OOD views, 32x32, 4 spp: ~10 s to render.
TINY_DATA_ARGS = [
    "--preset", "tiny", "--scenes", "6", "--eval-scenes", "2", "--views", "6",
    "--ood-views", "2", "--spp", "4", "--no-progress",
]  # fmt: skip
# The `tiny` config, shortened further; fields are ordinary CLI overrides.
TINY_TRAIN_ARGS = [
    "--config", "tiny", "--steps", "8", "--checkpoint-every", "4", "--log-every", "2",
    "--validation-scenes", "2", "--scenes-per-batch", "2", "--rays-per-scene", "64",
]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mitsuba")
    from nerfvae.cli.main import main

    root = tmp_path_factory.mktemp("rooms") / "tiny"
    assert main(["data", "generate", "--out", str(root), *TINY_DATA_ARGS]) == 0
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nerfvae.cli.main import main

    run = tmp_path_factory.mktemp("runs") / "tiny"
    code = main(["train", *TINY_TRAIN_ARGS, "--data", str(tiny_dataset), "--run", str(run)])
    assert code == 0
    return run


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-cases",
        type=int,
        default=None,
        help="tests/test_fuzz.py: run this many fuzz cases and print the counts per entry point",
    )
