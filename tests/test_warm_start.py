"""`nerfvae train --init-from`: a new run from another run's weights, with its history kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN_ARGS

from nerfvae.cli.main import main
from nerfvae.errors import CheckpointError, ConfigError
from nerfvae.training.checkpoint import list_checkpoints, load_checkpoint
from nerfvae.training.config import load_config
from nerfvae.training.loading import build_model
from nerfvae.training.warm_start import lineage, load_init_weights, logged_training

FINER_GRID = ["--nerfvae.latent.grid", "8"]  # the tiny config's grid is 4


def _train(tiny_dataset: Path, run: Path, *extra: str) -> int:
    return main(["train", *TINY_TRAIN_ARGS, "--data", str(tiny_dataset), "--run", str(run), *extra])


def test_weights_of_a_coarser_grid_load_into_a_finer_grid(tiny_run: Path):
    config = load_config(tiny_run / "config.json")
    config.nerfvae.latent.grid = 8
    model = build_model(config)
    init = load_init_weights(model, tiny_run)
    assert init.checkpoint == list_checkpoints(tiny_run / "checkpoints")[-1]
    assert init.step == 8
    _, tensors = load_checkpoint(init.checkpoint)
    for name, value in model.state_dict().items():
        assert torch.equal(value, tensors[f"model/{name}"]), name


def test_fine_tune_records_its_parent_and_resumes_from_itself(
    tiny_run: Path, tiny_dataset: Path, tmp_path: Path
):
    child = tmp_path / "child"
    args = [*FINER_GRID, "--steps", "4", "--init-from", str(tiny_run)]
    assert _train(tiny_dataset, child, *args) == 0
    init = json.loads((child / "parent" / "init.json").read_text())
    assert init["step"] == 8
    assert (
        init["sha256"]
        == load_checkpoint(list_checkpoints(tiny_run / "checkpoints")[-1])[0]["sha256"]
    )
    assert "nerfvae.latent.grid: 4 -> 8" in init["config_differences"]
    for name in ("config.json", "metrics.csv", "validation.csv", "events.log"):
        assert (child / "parent" / name).read_bytes() == (tiny_run / name).read_bytes()
    assert not (child / "parent" / "checkpoints").exists()  # the weights live in the child
    assert load_config(child / "config.json").nerfvae.latent.grid == 8
    # the child's own log starts at its own step 0, with a fresh schedule
    rows = (child / "metrics.csv").read_text().splitlines()
    assert rows[1].startswith("2,")
    events = (child / "events.log").read_text()
    assert "initialised weights from" in events and "(step 8)" in events

    # a resume continues from the child's checkpoints, without --init-from and without touching
    # the recorded parent
    before = (child / "parent" / "init.json").read_text()
    assert _train(tiny_dataset, child, *FINER_GRID, "--steps", "6") == 0
    assert list_checkpoints(child / "checkpoints")[-1].name == "step_00000006.json"
    assert (child / "parent" / "init.json").read_text() == before
    assert "resumed from step_00000004.json" in (child / "events.log").read_text()

    # a fine-tune of the fine-tune keeps the whole chain
    grandchild = tmp_path / "grandchild"
    assert (
        _train(tiny_dataset, grandchild, *FINER_GRID, "--steps", "2", "--init-from", str(child))
        == 0
    )
    assert lineage(grandchild) == [
        grandchild,
        grandchild / "parent",
        grandchild / "parent" / "parent",
    ]
    assert (grandchild / "parent" / "parent" / "init.json").exists()


def test_a_run_records_its_paths_as_given_not_the_machines(
    tiny_run: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch
):
    import shutil

    # relative paths stay relative in config.json and parent/init.json: a run directory that is
    # shipped must not hold the absolute paths of the machine it was trained on
    shutil.copytree(tiny_run, tmp_path / "parent-run")
    monkeypatch.chdir(tmp_path)
    args = [*FINER_GRID, "--steps", "2", "--init-from", "parent-run"]
    assert _train(Path(os.path.relpath(tiny_dataset, tmp_path)), Path("child"), *args) == 0
    config = load_config(tmp_path / "child" / "config.json")
    assert config.data == os.path.relpath(tiny_dataset, tmp_path)
    assert (config.run, config.init_from) == ("child", "parent-run")
    init = json.loads((tmp_path / "child" / "parent" / "init.json").read_text())
    assert init["checkpoint"] == str(list_checkpoints(Path("parent-run") / "checkpoints")[-1])
    assert not Path(init["checkpoint"]).is_absolute()


def test_init_from_a_checkpoint_of_other_shapes_is_refused_before_writing(
    tiny_run: Path, tiny_dataset: Path, tmp_path: Path, capsys
):
    child = tmp_path / "wider"
    code = _train(
        tiny_dataset, child, "--nerfvae.latent.channels", "8", "--init-from", str(tiny_run)
    )
    assert code != 0
    message = capsys.readouterr().err
    assert "does not match the model config" in message and "wrong shape" in message
    assert not (child / "config.json").exists()  # nothing written: the same --run can be reused


def test_init_from_names_what_is_missing(tiny_dataset: Path, tmp_path: Path, capsys):
    empty_run = tmp_path / "empty"
    empty_run.mkdir()
    with pytest.raises(CheckpointError, match="has no checkpoint"):
        load_init_weights(torch.nn.Linear(1, 1), empty_run)
    with pytest.raises(ConfigError, match="no such run directory or checkpoint"):
        load_init_weights(torch.nn.Linear(1, 1), tmp_path / "absent")
    (tmp_path / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"expected a run directory or a checkpoint's \.json"):
        load_init_weights(torch.nn.Linear(1, 1), tmp_path / "weights.pt")
    code = _train(tiny_dataset, tmp_path / "child", "--init-from", str(tmp_path / "absent"))
    assert code != 0 and "no such run directory or checkpoint" in capsys.readouterr().err


def test_demo_retrains_a_fine_tuned_model_stage_by_stage(
    tiny_run: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch
):
    import shutil

    from nerfvae import demo

    shipped = tmp_path / "shipped"
    assert (
        _train(tiny_dataset, shipped, *FINER_GRID, "--steps", "4", "--init-from", str(tiny_run))
        == 0
    )
    summary = demo.training_summary(shipped)
    assert summary["stage_steps"] == "8 + 4"
    assert summary["steps"] == 4
    child_hours = logged_training(shipped)[1] / 3600
    own_hours = child_hours + logged_training(tiny_run)[1] / 3600
    assert own_hours > child_hours > 0  # the parent's hours count
    assert summary["training_hours"] == round(own_hours, 2)
    # an experiment's provenance counts the stages too
    from nerfvae.experiment_reports.provenance import budget_text, run_budget

    budget = run_budget(shipped)
    assert budget["steps"] == 4 and budget["stage_steps"] == [8, 4]
    assert budget["wall_minutes"] == round(own_hours * 60, 2)
    assert "4 steps (stages of 8 + 4 steps)" in budget_text(budget)
    assert "wall minutes of training over all stages" in budget_text(budget)

    # the `small` training set is swapped for the tiny one: the stages are what is tested
    monkeypatch.setattr(
        demo, "generate", lambda data, settings, workers: shutil.copytree(tiny_dataset, data)
    )
    final = demo.train_from_scratch(tmp_path / "retrained", shipped, minutes=10.0, workers=1)
    assert final == tmp_path / "retrained" / "run"
    first_stage = tmp_path / "retrained" / "run-stage-1"
    assert list_checkpoints(first_stage / "checkpoints")[-1].name == "step_00000008.json"
    assert list_checkpoints(final / "checkpoints")[-1].name == "step_00000004.json"
    init = json.loads((final / "parent" / "init.json").read_text())
    assert init["checkpoint"] == str(list_checkpoints(first_stage / "checkpoints")[-1])
    assert load_config(final / "config.json").nerfvae.latent.grid == 8


def test_demo_retrain_runs_the_whole_schedule_whatever_wall_clock_cap_the_shipped_run_had(
    tiny_run: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch
):
    import shutil

    from nerfvae import demo

    # a shipped run trained on a fast machine under a wall-clock cap that a slower one would hit
    shipped = tmp_path / "shipped"
    shutil.copytree(tiny_run, shipped)
    config = json.loads((shipped / "config.json").read_text())
    config["run_time_budget_minutes"] = 1e-6
    (shipped / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(
        demo, "generate", lambda data, settings, workers: shutil.copytree(tiny_dataset, data)
    )
    final = demo.train_from_scratch(tmp_path / "retrained", shipped, minutes=10.0, workers=1)
    assert final == tmp_path / "retrained" / "run"
    steps = load_config(shipped / "config.json").steps
    assert load_checkpoint(list_checkpoints(final / "checkpoints")[-1])[0]["step"] == steps
