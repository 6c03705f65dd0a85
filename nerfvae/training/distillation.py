"""Distillation: train a NeRF-VAE's scene function to reproduce a trained model's field.

Why: a model's cost per point is its scene function's. A model trained with an expensive one
(attention to every latent token) is moved to a cheap one (``planes``) far faster by making the
cheap one reproduce it than by training it from the data again: the teacher gives the density and
colour at every sample of every ray, where the ELBO only scores composited pixels through a noisy
posterior sample and a KL term.

The student takes the teacher's encoder (copied once, then frozen), so its posterior
``q(z | context)``, and with it the latent space the fitted priors describe, is the teacher's;
only the scene function (and its proposal density, if it has one) trains. Per step, for the
batch's scenes:

1. ``z ~ q(z | context views)`` from the teacher's encoder;
2. the teacher renders the batch's target rays with its own jittered sampling;
3. the student's field runs at the teacher's final samples, composited over the same intervals;
4. the student renders the same rays with its own sampler (its proposal density, trained by the
   interlevel loss), as it will at evaluation.

Loss per ray, averaged over rays (colours in [0, 1], so every term is a squared error on the same
scale)::

    sum_i w_i ||c_s,i - c_t,i||²        colour where the teacher's ray ends (w: teacher weights)
    + mean_i (alpha_s,i - alpha_t,i)²   opacity of every sample interval
    + ||C_s - C_t||²                     the student's own render against the teacher's
    + interlevel loss                    (proposal density only)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from nerfvae.errors import ConfigError
from nerfvae.image_metrics import psnr_from_mse
from nerfvae.models.ray_model import RaySceneModel
from nerfvae.training.config import config_differences
from nerfvae.training.loading import load_trained_model
from nerfvae.training.warm_start import TEACHER_DIR, copy_history

TEACHER_RECORD = "teacher.json"

SHARED_SETTINGS = (
    "encoder", "latent", "scene_min", "scene_max", "up_axis", "background", "sampling.opaque_far"
)  # fmt: skip
"""Model settings the student must share with its teacher: the encoder is copied, the latent and
scene box must mean the same thing to both, and both must end rays alike at the box faces."""


def load_teacher(
    source: str | Path, student: nn.Module, device: torch.device
) -> tuple[RaySceneModel, dict]:
    """The trained model of run directory ``source`` (its newest checkpoint), frozen, on
    ``device``, in the precision its run config resolves to there, and its checkpoint record
    (``step``, ``sha256``). Raises ConfigError when it cannot teach ``student``: not a
    ray-rendering model, or a different encoder, latent, scene box or box faces."""
    teacher, teacher_config, record = load_trained_model(source, device=device)
    if not isinstance(teacher, RaySceneModel) or not isinstance(student, RaySceneModel):
        raise ConfigError(
            f"--distill-from {source}: distillation needs two ray-rendering models (NeRF-VAE), "
            f"got a {type(teacher).__name__} teacher for a {type(student).__name__} student"
        )
    differences = [
        difference
        for difference in config_differences(teacher_config.nerfvae, student.config, "nerfvae.")
        if _is_shared(difference.split(":")[0].removeprefix("nerfvae."))
    ]
    if differences:
        raise ConfigError(
            f"--distill-from {source}: the student must share the teacher's encoder, latent, "
            f"scene box and box faces; teacher -> this run: {'; '.join(differences)}"
        )
    teacher.requires_grad_(False)
    return teacher.to(device), record


def _is_shared(name: str) -> bool:
    """Whether the dotted model-config field ``name`` is one of :data:`SHARED_SETTINGS`."""
    return any(name == shared or name.startswith(shared + ".") for shared in SHARED_SETTINGS)


def adopt_teacher_encoder(student: RaySceneModel, teacher: RaySceneModel) -> None:
    """Copy the teacher's encoder weights into the student's encoder (a new run's first step);
    :func:`load_teacher` has checked that both encoders are built from the same settings."""
    student.encoder.load_state_dict(teacher.encoder.state_dict())


def record_teacher(run_root: Path, source: str, record: dict) -> None:
    """Keep the teacher's history in the student's run directory, as ``--init-from`` keeps a
    parent's: its config and logs (and its own history) in ``RUN/teacher/``, and
    ``RUN/teacher/teacher.json`` naming the run as given, the checkpoint's step and SHA-256."""
    destination = run_root / TEACHER_DIR
    copy_history(Path(source), destination)
    summary = {"run": str(source), "step": int(record["step"]), "sha256": record["sha256"]}
    (destination / TEACHER_RECORD).write_text(json.dumps(summary, indent=1) + "\n")


def freeze_encoder(student: RaySceneModel) -> None:
    """The student's posterior stays the teacher's: its encoder gets no gradient."""
    student.encoder.requires_grad_(False)


class FieldDistillation(nn.Module):
    """The distillation objective: ``forward(batch, ...) -> {"loss", metrics}`` as a model's
    training call, so the trainer runs it as it runs the ELBO.

    Args:
        student: the model being trained (its encoder frozen; see :func:`freeze_encoder`).
        teacher: the trained model it reproduces (frozen; not a submodule, so it is neither
            checkpointed nor optimised).
    """

    def __init__(self, student: RaySceneModel, teacher: RaySceneModel) -> None:
        super().__init__()
        self.student = student
        object.__setattr__(self, "teacher", teacher)

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        *,
        target_dims: int | None = None,
        kl_weight: float = 1.0,
        pixel_std: float | None = None,
        object_pixel_weight: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Distillation loss on the batch's target rays.

        ``batch``: ``context_images [S, V, H, W, 3]``, ``context_K``, ``context_c2w`` and
        ``target_origins / target_directions / target_colours [S, R, 3]``. ``target_dims``,
        ``kl_weight``, ``pixel_std`` and ``object_pixel_weight`` are the ELBO's schedules, taken
        so that the trainer calls this as it calls a model's loss; distillation has no
        likelihood or KL term, so they do not enter it.

        Returns ``loss`` and detached metrics: ``psnr`` (the student's render against the
        data), ``distill_psnr`` (against the teacher's render) and ``auxiliary_loss`` (the
        proposal's interlevel loss, when the student has a proposal density).
        """
        del target_dims, kl_weight, pixel_std, object_pixel_weight
        student, teacher = self.student, self.teacher
        origins, directions = batch["target_origins"], batch["target_directions"]
        with torch.no_grad():
            posterior = teacher.infer(
                batch["context_images"], batch["context_K"], batch["context_c2w"], generator
            )
            latent = posterior.rsample(generator)
            near, far = teacher.ray_bounds(origins, directions)
            teacher.train()  # jittered samples: the student is taught between them too
            taught = teacher.render(latent, origins, directions, near, far, generator=generator)
            teacher.eval()
        samples = taught.samples
        teacher_weights = taught.final.weights.float()
        teacher_colour = taught.final.colour.float()

        points = origins.unsqueeze(-2) + samples.t.unsqueeze(-1) * directions.unsqueeze(-2)
        density, colour = student.field(latent)(points, directions.unsqueeze(-2).expand_as(points))
        density, colour = density.float(), colour.float()
        colour_at_samples = (
            teacher_weights * (colour - samples.colour.float()).square().sum(dim=-1)
        ).sum(dim=-1)
        alpha = -torch.expm1(-density * samples.deltas)
        teacher_alpha = -torch.expm1(-samples.density.float() * samples.deltas)
        opacity_per_sample = (alpha - teacher_alpha).square().mean(dim=-1)

        own = student.render(latent, origins, directions, near, far, generator=generator)
        render_error = (own.final.colour.float() - teacher_colour).square().sum(dim=-1)
        loss = (colour_at_samples + opacity_per_sample + render_error).mean()
        metrics: dict[str, torch.Tensor] = {}
        if own.proposal_loss is not None:
            proposal = own.proposal_loss.mean()
            loss = loss + proposal
            metrics["auxiliary_loss"] = proposal.detach()
        with torch.no_grad():
            rendered = own.final.colour.float()
            metrics["psnr"] = psnr_from_mse((rendered - batch["target_colours"]).square().mean())
            metrics["distill_psnr"] = psnr_from_mse((rendered - teacher_colour).square().mean())
        return {"loss": loss, **metrics}
