"""`nerfvae train --distill-from`: a planes student learns a trained model's field."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN_ARGS
from test_models import synthetic_batch
from test_planes import planes_config

from nerfvae.cli.main import main
from nerfvae.errors import ConfigError
from nerfvae.models import NeRFVAE, SceneFunctionConfig
from nerfvae.rendering import RaySamplingConfig
from nerfvae.training.checkpoint import list_checkpoints, load_checkpoint
from nerfvae.training.distillation import FieldDistillation, freeze_encoder
from nerfvae.training.warm_start import training_stages

# the tiny preset with the planes scene function and a proposal sampler: the tiny run's student
PLANES_STUDENT = [
    "--nerfvae.scene-function.conditioning", "planes",
    "--nerfvae.sampling.sampler", "proposal",
    "--nerfvae.sampling.num-fine", "8",
]  # fmt: skip


def attention_teacher() -> NeRFVAE:
    """A teacher with random weights but a field with structure: the planes test config's
    encoder and latent, an attention scene function whose density varies across the box."""
    config = planes_config()
    config = replace(
        config,
        scene_function=SceneFunctionConfig(
            width=32, depth=2, skip_layer=-1, point_frequencies=2, attention_heads=2
        ),
        sampling=RaySamplingConfig(num_coarse=16, num_fine=8),
    )
    torch.manual_seed(1)
    teacher = NeRFVAE(config)
    with torch.no_grad():  # an informative posterior: the latent differs between scenes
        teacher.encoder.head.weight.normal_(0.0, 0.3)
    teacher.requires_grad_(False)
    return teacher.eval()


def test_student_learns_the_teacher_and_leaves_encoder_and_teacher_alone():
    teacher = attention_teacher()
    torch.manual_seed(0)
    student = NeRFVAE(planes_config())
    student.encoder.load_state_dict(teacher.encoder.state_dict())
    freeze_encoder(student)
    encoder_before = {k: v.clone() for k, v in student.encoder.state_dict().items()}
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    objective = FieldDistillation(student, teacher)
    parameters = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    batch = synthetic_batch()
    losses, fidelity = [], []
    for step in range(40):
        out = objective(batch, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        out["loss"].backward()
        assert all(p.grad is None for p in student.encoder.parameters())
        optimizer.step()
        losses.append(out["loss"].item())
        fidelity.append(out["distill_psnr"].item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    # the student's own render (proposal sampler) moves towards the teacher's
    assert sum(fidelity[-5:]) / 5 > sum(fidelity[:5]) / 5 + 3.0
    assert "auxiliary_loss" in out  # the proposal density is trained too
    for name, value in student.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[name]), name
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, teacher_before[name]), name
    assert not any(name.startswith("teacher") for name in objective.state_dict())


def test_distilled_run_copies_the_encoder_logs_fidelity_and_resumes(
    tiny_dataset: Path, tiny_run: Path, tmp_path: Path
):
    run = tmp_path / "student"

    def train(*extra: str) -> int:
        arguments = [*TINY_TRAIN_ARGS, "--data", str(tiny_dataset), "--run", str(run)]
        return main(["train", *arguments, *PLANES_STUDENT, "--distill-from", str(tiny_run), *extra])

    assert train("--stop-at-step", "4") == 0
    assert train() == 0  # resumes to the config's 8 steps with the teacher loaded again
    events = (run / "events.log").read_text()
    assert "distilling from" in events and "sha256" in events and "resumed from" in events
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "distill_psnr" in header and "auxiliary_loss" in header and "kl_nats" not in header
    _, student = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])
    _, teacher = load_checkpoint(list_checkpoints(tiny_run / "checkpoints")[-1])
    encoder = [name for name in student if name.startswith("model/encoder.")]
    assert encoder and all(torch.equal(student[name], teacher[name]) for name in encoder)
    assert any(name.startswith("model/scene_function.decoder") for name in student)


def test_a_teacher_with_another_latent_is_refused_before_writing(
    tiny_dataset: Path, tiny_run: Path, tmp_path: Path, capsys
):
    run = tmp_path / "student"
    arguments = [*TINY_TRAIN_ARGS, "--data", str(tiny_dataset), "--run", str(run)]
    code = main(
        ["train", *arguments, *PLANES_STUDENT, "--nerfvae.latent.grid", "8",
         "--distill-from", str(tiny_run)]
    )  # fmt: skip
    assert code != 0
    message = capsys.readouterr().err
    assert "nerfvae.latent" in message and "--distill-from" in message
    assert len(message.strip().splitlines()) == 1
    assert not (run / "config.json").exists()


def test_a_teacher_that_is_not_a_ray_model_is_refused(monkeypatch):
    from nerfvae.models.baselines.gqn import GQN, GQNConfig
    from nerfvae.training import distillation

    gqn = GQN(GQNConfig(), (-1.0, -1.0, 0.0), (1.0, 1.0, 1.0))
    monkeypatch.setattr(distillation, "load_trained_model", lambda *a, **k: (gqn, None, {}))
    with pytest.raises(ConfigError, match="two ray-rendering models"):
        distillation.load_teacher("gqn-run", NeRFVAE(planes_config()), torch.device("cpu"))


def test_a_distilled_run_keeps_its_teachers_history_and_the_demo_retrains_both(
    tiny_dataset: Path, tiny_run: Path, tmp_path: Path, monkeypatch
):
    import json
    import shutil

    from nerfvae import demo
    from nerfvae.training.config import load_config

    shipped = tmp_path / "shipped"
    arguments = [*TINY_TRAIN_ARGS, "--data", str(tiny_dataset), "--run", str(shipped)]
    assert main(["train", *arguments, *PLANES_STUDENT, "--distill-from", str(tiny_run)]) == 0
    record = json.loads((shipped / "teacher" / "teacher.json").read_text())
    assert record["run"] == str(tiny_run) and record["step"] == 8 and len(record["sha256"]) == 64
    assert (shipped / "teacher" / "metrics.csv").read_text() == (
        tiny_run / "metrics.csv"
    ).read_text()
    assert training_stages(shipped) == [shipped / "teacher", shipped]
    assert demo.training_summary(shipped)["stage_steps"] == "8 + 8"

    # the `small` training set is swapped for the tiny one: the stages are what is tested
    monkeypatch.setattr(
        demo, "generate", lambda data, settings, workers: shutil.copytree(tiny_dataset, data)
    )
    final = demo.train_from_scratch(tmp_path / "retrained", shipped, minutes=10.0, workers=1)
    teacher = tmp_path / "retrained" / "run-teacher"
    assert final == tmp_path / "retrained" / "run"
    assert list_checkpoints(teacher / "checkpoints")[-1].name == "step_00000008.json"
    assert load_config(final / "config.json").distill_from == str(teacher)
    assert load_config(final / "config.json").nerfvae.scene_function.conditioning == "planes"
    _, student = load_checkpoint(list_checkpoints(final / "checkpoints")[-1])
    _, taught = load_checkpoint(list_checkpoints(teacher / "checkpoints")[-1])
    encoder = [name for name in student if name.startswith("model/encoder.")]
    assert all(torch.equal(student[name], taught[name]) for name in encoder)
