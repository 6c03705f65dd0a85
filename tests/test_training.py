"""Training end to end: CLI, run directory, resume, checkpoints, config checks, DDP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN_ARGS
from safetensors.torch import load_file

from nerfvae.cli.main import main
from nerfvae.cli.train import config_from_args
from nerfvae.errors import CheckpointError, ConfigError
from nerfvae.training import schedules
from nerfvae.training.checkpoint import list_checkpoints, load_checkpoint
from nerfvae.training.config import ObjectiveConfig, OptimizerConfig, load_config, preset
from nerfvae.training.loading import load_trained_model
from nerfvae.training.trainer import train


def _weights(run: Path) -> dict[str, torch.Tensor]:
    latest = list_checkpoints(run / "checkpoints")[-1]
    _, tensors = load_checkpoint(latest)
    return {k: v for k, v in tensors.items() if k.startswith("model/")}


def test_schedules():
    optimizer = OptimizerConfig(learning_rate=1.0, warmup_steps=10, final_lr_fraction=0.1)
    assert schedules.learning_rate(0, 100, optimizer) == pytest.approx(0.1)
    cosine_at_9 = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 9 / 99))  # warm-up done
    assert schedules.learning_rate(9, 100, optimizer) == pytest.approx(cosine_at_9)
    assert schedules.learning_rate(99, 100, optimizer) == pytest.approx(0.1)
    objective = ObjectiveConfig(
        pixel_std_start=0.4, pixel_std_end=0.1, pixel_std_anneal_steps=10, kl_warmup_steps=4
    )
    assert schedules.pixel_std(0, objective) == pytest.approx(0.4)
    assert schedules.pixel_std(5, objective) == pytest.approx(0.2)  # geometric midpoint
    assert schedules.pixel_std(50, objective) == pytest.approx(0.1)
    assert schedules.kl_weight(2, objective) == pytest.approx(0.5)
    assert schedules.kl_weight(9, objective) == pytest.approx(1.0)


def test_cli_overrides_and_config_file(tmp_path):
    config = config_from_args(
        ["--config", "tiny", "--steps", "7", "--nerfvae.latent.layout", "global"], "nerfvae train"
    )
    assert config.steps == 7 and config.nerfvae.latent.layout == "global"
    assert config.nerfvae.scene_function.width == 64  # the rest of `tiny` is kept
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"steps": 3, "nerfvae": {"latent": {"channels": 5}}}))
    from_file = config_from_args(["--config", str(path)], "nerfvae train")
    assert from_file.steps == 3 and from_file.nerfvae.latent.channels == 5
    path.write_text(json.dumps({"stepz": 3}))
    with pytest.raises(ConfigError, match="stepz"):
        config_from_args(["--config", str(path)], "nerfvae train")


def test_configs_and_flags_of_older_releases_still_work(tmp_path, capsys):
    # the learned iterative inference was `refinement_*` and there was a `compile` switch
    path = tmp_path / "config.json"
    old = {"compile": False, "nerfvae": {"refinement_steps": 2, "refinement_rays": 64}}
    path.write_text(json.dumps(old))
    config = load_config(path)
    assert config.nerfvae.iterative_inference_steps == 2
    assert config.nerfvae.iterative_inference_rays == 64
    shipped = load_config(Path(__file__).parent.parent / "assets" / "model" / "config.json")
    assert shipped.nerfvae.iterative_inference_steps == 0
    config = config_from_args(
        ["--config", "tiny", "--nerfvae.refinement-steps", "3", "--nerfvae.refinement-rays=16"],
        "nerfvae train",
    )
    assert config.nerfvae.iterative_inference_steps == 3
    assert config.nerfvae.iterative_inference_rays == 16
    assert capsys.readouterr().err.splitlines() == [
        "nerfvae train: --nerfvae.refinement-steps is deprecated and will be removed in the next "
        "release; use --nerfvae.iterative-inference-steps",
        "nerfvae train: --nerfvae.refinement-rays is deprecated and will be removed in the next "
        "release; use --nerfvae.iterative-inference-rays",
    ]


def test_weights_saved_under_the_old_name_of_iterative_inference_load(tmp_path):
    from nerfvae.models import NeRFVAE
    from nerfvae.training.checkpoint import load_model_weights

    model = NeRFVAE(replace(preset("tiny").nerfvae, iterative_inference_steps=1))
    tensors = {
        "model/" + name.replace("iterative_update.", "refiner."): value + 1.0
        for name, value in model.state_dict().items()
    }
    load_model_weights(model, tensors, tmp_path / "old.json")
    update = model.iterative_update.net[0].weight
    assert torch.equal(update, tensors["model/refiner.net.0.weight"])


def test_train_end_to_end_writes_run_directory(tiny_run: Path):
    for name in ("config.json", "metrics.csv", "validation.csv", "events.log"):
        assert (tiny_run / name).is_file(), name
    assert list((tiny_run / "tensorboard").iterdir())
    assert (tiny_run / "renders" / "step_00000008.png").is_file()
    rows = (tiny_run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 1 + 4  # every 2 of 8 steps
    validation = (tiny_run / "validation.csv").read_text().splitlines()
    header = validation[0].split(",")
    for column in ("psnr_id", "psnr_ood", "opacity_id", "depth_mae_ood"):
        assert column in header, column
    row = dict(zip(header, validation[1].split(",")))
    assert 0.0 <= float(row["opacity_ood"]) <= 1.0 and float(row["depth_mae_id"]) >= 0.0
    config = load_config(tiny_run / "config.json")
    assert config.steps == 8
    # The dataset's box is copied into the model config, so the run renders without the data.
    assert config.nerfvae.scene_min == (-3.0, -3.0, 0.0)
    model, _, record = load_trained_model(tiny_run)
    assert record["step"] == 8 and not model.training


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_dataset, tmp_path):
    args = [*TINY_TRAIN_ARGS, "--data", str(tiny_dataset), "--validate-every", "0"]
    straight = config_from_args([*args, "--run", str(tmp_path / "straight")], "t")
    train(straight, progress=False)
    interrupted = config_from_args(
        [*args, "--run", str(tmp_path / "interrupted"), "--stop-at-step", "4"], "t"
    )
    train(interrupted, progress=False)
    assert _weights(tmp_path / "interrupted").keys() == _weights(tmp_path / "straight").keys()
    record, _ = load_checkpoint(list_checkpoints(tmp_path / "interrupted" / "checkpoints")[-1])
    assert record["step"] == 4
    assert train(interrupted, progress=False).name == "step_00000004.json"  # already there
    train(
        replace(interrupted, stop_at_step=0), progress=False
    )  # the same command without the stop resumes
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "interrupted")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
    log = (tmp_path / "interrupted" / "events.log").read_text()
    assert "resumed from step_00000004.json at step 4" in log
    rows = (tmp_path / "interrupted" / "metrics.csv").read_text().splitlines()
    steps = [int(r.split(",")[0]) for r in rows[1:]]
    assert steps == [2, 4, 6, 8]  # one uninterrupted log


def test_run_time_budget_counts_every_invocation(tiny_dataset, tmp_path, capsys):
    """--run-time-budget-minutes stops a run once its training time over all invocations (kept
    in each checkpoint) reaches the budget; a re-run then does nothing; a larger budget resumes."""
    args = [*TINY_TRAIN_ARGS, "--data", str(tiny_dataset), "--validate-every", "0"]
    budget = 1e-4  # 6 ms: reached within the first step (setup counts too)
    config = config_from_args(
        [*args, "--run", str(tmp_path / "run"), "--run-time-budget-minutes", str(budget)], "t"
    )
    first = train(config, progress=False)
    record, _ = load_checkpoint(first)
    assert record["step"] == 1 and record["training_seconds"] > 60 * budget
    assert train(config, progress=False) == first  # the budget is spent: no step more
    assert "nothing to do" in capsys.readouterr().out
    assert list_checkpoints(tmp_path / "run" / "checkpoints")[-1] == first
    last = train(replace(config, run_time_budget_minutes=0.0), progress=False)
    final, _ = load_checkpoint(last)
    assert final["step"] == config.steps
    assert final["training_seconds"] > record["training_seconds"]  # the total goes on
    with pytest.raises(ConfigError, match="run_time_budget_minutes"):
        replace(config, run_time_budget_minutes=float("nan")).check()


def test_mismatched_config_is_refused(tiny_run, tiny_dataset, capsys):
    code = main(
        ["train", *TINY_TRAIN_ARGS, "--data", str(tiny_dataset), "--run", str(tiny_run),
         "--nerfvae.latent.channels", "7"]
    )  # fmt: skip
    assert code == 1
    error = capsys.readouterr().err
    assert "different config" in error and "nerfvae.latent.channels: 16 -> 7" in error


def test_finished_run_is_not_retrained(tiny_run, tiny_dataset, capsys):
    before = _weights(tiny_run)
    code = main(["train", *TINY_TRAIN_ARGS, "--data", str(tiny_dataset), "--run", str(tiny_run)])
    assert code == 0 and "already finished" in capsys.readouterr().out
    after = _weights(tiny_run)
    assert all(torch.equal(before[k], after[k]) for k in before)


def _copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_corrupt_checkpoint_gives_clear_error(tiny_run, tmp_path, tiny_dataset, capsys):
    run = _copy_run(tiny_run, tmp_path / "run")
    tensors = sorted((run / "checkpoints").glob("*.safetensors"))[-1]
    data = bytearray(tensors.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_trained_model(run)
    code = main(
        ["eval", "--run", str(run), "--data", str(tiny_dataset), "--out", str(tmp_path / "m.json")]
    )
    assert code == 1
    assert "corrupt (SHA-256 differs" in capsys.readouterr().err
    truncated = sorted((run / "checkpoints").glob("*.json"))[-1]
    truncated.write_text(truncated.read_text()[:20])
    with pytest.raises(CheckpointError, match="invalid JSON"):
        load_trained_model(run)


def test_config_not_matching_checkpoint_gives_clear_error(tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["nerfvae"]["scene_function"]["width"] = 32
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match the model config"):
        load_trained_model(run)
    with pytest.raises(ConfigError, match="not a run directory"):
        load_trained_model(tmp_path)


def test_non_finite_loss_skips_the_step(tiny_dataset, tmp_path, monkeypatch):
    from nerfvae.models.nerfvae import NeRFVAE

    original = NeRFVAE.loss
    calls = {"n": 0}

    def poisoned(self, batch, **kwargs):
        out = original(self, batch, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(NeRFVAE, "loss", poisoned)
    config = config_from_args(
        [*TINY_TRAIN_ARGS, "--steps", "3", "--data", str(tiny_dataset), "--run",
         str(tmp_path / "run"), "--validate-every", "0"], "t",
    )  # fmt: skip
    train(config, progress=False)
    log = (tmp_path / "run" / "events.log").read_text()
    assert "step 1: non-finite loss (nan), step skipped" in log
    for value in _weights(tmp_path / "run").values():
        assert torch.isfinite(value).all()


DDP_WORKER = """
import sys, torch
from safetensors.torch import save_file
from nerfvae.cli.train import config_from_args
from nerfvae.training import trainer
import torch.distributed as dist
argv = [a for a in sys.argv[1:] if a != "--"]
config = config_from_args(argv[1:], "t")
captured = {}
original = trainer.build_model
def capture(cfg):
    captured["model"] = original(cfg)
    return captured["model"]
trainer.build_model = capture
trainer.train(config, progress=False)
rank = dist.get_rank()
save_file({k: v.contiguous() for k, v in captured["model"].state_dict().items()},
          f"{argv[0]}/rank{rank}.safetensors")
dist.destroy_process_group()
"""


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ddp_two_cpu_processes_hold_identical_weights(tiny_dataset, tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        # `--` keeps torchrun's own parser away from our options (`--run` is ambiguous to it)
        str(worker), "--", str(tmp_path), *TINY_TRAIN_ARGS, "--steps", "3", "--data",
        str(tiny_dataset), "--run", str(run), "--validate-every", "0", "--threads", "1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    # ... and they trained: the weights moved from the initialisation.
    record, _ = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])
    assert record["step"] == 3
    torch.manual_seed(0)
    initial = trainer_initial_weights(run)
    assert any(not torch.equal(initial[k], rank0[k]) for k in initial if k in rank0)


def trainer_initial_weights(run: Path) -> dict[str, torch.Tensor]:
    from nerfvae.training.loading import build_model

    config = load_config(run / "config.json")
    torch.manual_seed(config.seed)
    return build_model(config).state_dict()


def _small_run(root: Path) -> Path:
    """A run directory with the tiny config and an untrained checkpoint (no data, no renderer)."""
    from nerfvae.training.checkpoint import save_checkpoint
    from nerfvae.training.loading import build_model
    from nerfvae.training.run_directory import RunDirectory

    config = preset("tiny")
    root.mkdir(parents=True)
    RunDirectory(root).write_config(config)
    save_checkpoint(root / "checkpoints", 1, build_model(config), None, {})
    return root


@pytest.mark.parametrize(
    "section, field, value, problem",
    [
        ("latent", "grid", 0, r"nerfvae\.latent\.grid must be in 1\.\.256, got 0"),
        ("latent", "grid", "16", r"nerfvae\.latent\.grid must be an integer .*, got '16'"),
        ("scene_function", "attention_heads", 0, r"attention_heads must be in 1\.\.64, got 0"),
        ("scene_function", "width", 2**40, r"width must be in 1\.\.4096"),
        ("scene_function", "plane_upsample", 3, r"scene_function\.plane_upsample must be a power"),
        ("scene_function", "attention_heads", 5, r"width must be divisible by attention_heads"),
        ("scene_function", "density_bias", float("nan"), r"density_bias must be a finite number"),
        ("", "pixel_std", 0.0, r"nerfvae\.pixel_std must be > 0, got 0\.0"),
        ("", "pixel_std", -0.1, r"nerfvae\.pixel_std must be > 0"),
        ("", "background", [5, 5, 5], r"nerfvae\.background must be \[r, g, b\] with values in"),
        ("", "scene_max", [1, -2, 1], r"nerfvae\.scene_max must be above scene_min"),
        ("", "scene_min", [0, 0], r"nerfvae\.scene_min must be a list of 3 values"),
        ("", "up_axis", "w", r"nerfvae\.up_axis must be one of 'x', 'y', 'z'"),
        ("sampling", "num_coarse", 1.5, r"num_coarse must be an integer"),
    ],
)
def test_invalid_config_values_name_file_and_field(tmp_path, section, field, value, problem):
    run = _small_run(tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (config["nerfvae"][section] if section else config["nerfvae"])[field] = value
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=rf"config\.json: .*{problem}"):
        load_trained_model(run)


def test_config_file_that_is_not_utf8_deep_or_a_directory_is_named(tmp_path):
    run = _small_run(tmp_path / "run")
    (run / "config.json").write_bytes(b'{"steps": "\xff"}')
    with pytest.raises(ConfigError, match=r"config\.json: cannot read JSON \(not UTF-8"):
        load_trained_model(run)
    (run / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match=r"config\.json: cannot read JSON \(nested too deeply"):
        load_trained_model(run)
    (run / "config.json").unlink()
    (run / "config.json").mkdir()
    with pytest.raises(ConfigError, match=r"config\.json: file is not a regular file"):
        load_trained_model(run)


def test_presets_and_cli_configs_pass_their_checks():
    for name in ("tiny", "small", "planes", "default"):
        preset(name).check()
    config = replace(preset("tiny"), optimizer=OptimizerConfig(learning_rate=float("nan")))
    with pytest.raises(ConfigError, match=r"optimizer\.learning_rate must be a finite number"):
        config.check()
    with pytest.raises(ConfigError, match=r"objective\.pixel_std_end must be > 0"):
        replace(preset("tiny"), objective=ObjectiveConfig(pixel_std_end=0.0)).check()


@pytest.mark.parametrize(
    "name, problem",
    [
        (None, r"tensors_file must name a \.safetensors file in"),
        ("", r"tensors_file must name"),
        ("../step_00000001.safetensors", r"tensors_file must name"),
        ("/etc/passwd", r"tensors_file must name"),
        ("model.pt", r"tensors_file must name"),
        ("missing.safetensors", r"checkpoint tensors .*missing\.safetensors are missing"),
        ("loop.safetensors", r"loop\.safetensors are not a plain file"),
        ("folder.safetensors", r"folder\.safetensors are not a plain file"),
    ],
)
def test_checkpoint_tensor_file_must_be_a_plain_file_beside_it(tmp_path, name, problem):
    run = _small_run(tmp_path / "run")
    (run / "checkpoints" / "loop.safetensors").symlink_to("loop.safetensors")
    (run / "checkpoints" / "folder.safetensors").mkdir()
    path = run / "checkpoints" / "step_00000001.json"
    record = json.loads(path.read_text())
    if name is None:
        del record["tensors_file"]
    else:
        record["tensors_file"] = name
    path.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=problem):
        load_trained_model(run)


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda t: t.double(), r"wrong dtype \['.* torch\.float64 vs torch\.float32'\]"),
        (lambda t: t.fill_(float("nan")), r"holds NaN or inf weights"),
        (lambda t: t.fill_(float("inf")), r"holds NaN or inf weights"),
    ],
)
def test_checkpoint_tensors_of_wrong_dtype_or_not_finite_are_refused(tmp_path, change, problem):
    import hashlib

    from safetensors.torch import save_file

    run = _small_run(tmp_path / "run")
    tensor_path = run / "checkpoints" / "step_00000001.safetensors"
    tensors = load_file(str(tensor_path))
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[name] = change(tensors[name].clone())
    save_file(tensors, str(tensor_path))
    record_path = run / "checkpoints" / "step_00000001.json"
    record = json.loads(record_path.read_text())
    record["sha256"] = hashlib.sha256(tensor_path.read_bytes()).hexdigest()
    record_path.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=problem):
        load_trained_model(run)


def _adam_after_one_step():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    return model, optimizer


@pytest.mark.parametrize(
    "corrupt, problem",
    [
        (lambda t, e: (t, None), r"has no optimiser state to resume from"),
        (lambda t, e: (t, {**e, "param_groups": []}), r"does not fit this run \("),
        (lambda t, e: (t, {**e, "param_groups": [{"params": "x"}]}), r"does not fit this run"),
        (lambda t, e: (t, {"scalars": {}}), r"does not fit this run \('param_groups'\)"),
        (lambda t, e: (t, {**e, "scalars": {"0": 5}}), r"scalars of parameter 0 are not an object"),
        (
            lambda t, e: ({**t, "optimizer/0/exp_avg": torch.full((4, 3), float("nan"))}, e),
            r"optimizer/0/exp_avg holds NaN or infinity",
        ),
        (
            lambda t, e: ({**t, "optimizer/0/exp_avg": torch.zeros(3, 4)}, e),
            r"exp_avg has shape \(3, 4\) for a parameter of shape \(4, 3\)",
        ),
        (lambda t, e: ({**t, "optimizer/zero/exp_avg": torch.zeros(1)}, e), r"does not fit"),
    ],
)
def test_optimizer_state_that_does_not_fit_is_a_one_line_checkpoint_error(corrupt, problem):
    from nerfvae.training.checkpoint import optimizer_from_tensors, optimizer_to_tensors

    _, saved = _adam_after_one_step()
    tensors, extra = optimizer_to_tensors(saved)
    _, optimizer = _adam_after_one_step()
    optimizer_from_tensors(optimizer, tensors, extra, Path("step_1.json"))  # the state fits
    restored = optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(restored, saved.state_dict()["state"][0]["exp_avg"])
    bad_tensors, bad_extra = corrupt(dict(tensors), json.loads(json.dumps(extra)))
    with pytest.raises(CheckpointError, match=problem) as error:
        optimizer_from_tensors(optimizer, bad_tensors, bad_extra, Path("step_1.json"))
    assert "step_1.json" in str(error.value) and "\n" not in str(error.value)


def test_resuming_from_a_checkpoint_without_optimiser_state_says_so(
    tiny_dataset: Path, tiny_run: Path, tmp_path: Path, capsys
):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    latest = list_checkpoints(run / "checkpoints")[-1]
    record = json.loads(latest.read_text())
    record["optimizer"] = None
    latest.write_text(json.dumps(record))
    arguments = [*TINY_TRAIN_ARGS, "--data", str(tiny_dataset), "--run", str(run), "--steps", "12"]
    assert main(["train", *arguments]) != 0
    message = capsys.readouterr().err.strip()
    assert "has no optimiser state to resume from" in message and latest.name in message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("latent_grid", 0, r"gqn\.latent_grid must be in 1\.\.256, got 0"),
        ("tower_channels", (32, 0), r"gqn\.tower_channels must be in 1\.\.4096"),
        ("upsample_stages", 20, r"gqn\.upsample_stages must be in 0\.\.8"),
        ("pixel_std", 0.0, r"gqn\.pixel_std must be a finite number > 0"),
        ("pixel_std", float("nan"), r"gqn\.pixel_std must be a finite number"),
        ("target_views_per_scene", 0, r"gqn\.target_views_per_scene must be in 1\.\.1024"),
        ("representation_channels", "64", r"gqn\.representation_channels must be an integer"),
        ("latent_layout", "planes", r"gqn\.latent_layout must be spatial or global"),
    ],
)
def test_gqn_settings_out_of_range_are_config_errors(field, value, problem):
    config = replace(preset("tiny"), model="gqn")
    config = replace(config, gqn=replace(config.gqn, **{field: value}))
    with pytest.raises(ConfigError, match=problem):
        config.check()


def test_widths_that_are_not_multiples_of_eight_build_and_run():
    from nerfvae.models.baselines.gqn import GQN, GQNConfig
    from nerfvae.models.config import EncoderConfig, LatentConfig
    from nerfvae.models.encoder import ContextEncoder, group_norm

    assert [group_norm(c).num_groups for c in (4, 6, 8, 12, 20, 64)] == [4, 6, 8, 4, 4, 8]
    config = GQNConfig(tower_channels=(12, 20), representation_channels=12, generator_channels=36)
    gqn = GQN(config, (-1.0, -1.0, 0.0), (1.0, 1.0, 1.0))
    assert sum(p.numel() for p in gqn.parameters()) > 0
    encoder = ContextEncoder(
        EncoderConfig(stage_channels=(12, 20)), LatentConfig(channels=4, grid=2),
        (-1.0, -1.0, 0.0), (1.0, 1.0, 1.0),
    )  # fmt: skip
    K = torch.tensor([[16.0, 0, 8], [0, 16.0, 8], [0, 0, 1]]).expand(1, 2, 3, 3)
    c2w = torch.eye(4).expand(1, 2, 4, 4).clone()
    c2w[..., 2, 3] = -3.0
    posterior = encoder(torch.rand(1, 2, 16, 16, 3), K, c2w)
    assert posterior.mean.shape == (1, 4, 4) and torch.isfinite(posterior.mean).all()
