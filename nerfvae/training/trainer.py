"""The training loop: ELBO optimisation over many scenes (or distillation from a trained model),
resumable, optionally distributed."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from nerfvae.data.loader import MultiSceneDataset, training_batches
from nerfvae.errors import ConfigError
from nerfvae.precision import resolve_precision, use_threads
from nerfvae.training import schedules
from nerfvae.training.checkpoint import (
    load_checkpoint,
    load_model_weights,
    optimizer_from_tensors,
    save_checkpoint,
)
from nerfvae.training.config import TrainConfig
from nerfvae.training.distillation import (
    FieldDistillation,
    adopt_teacher_encoder,
    freeze_encoder,
    load_teacher,
    record_teacher,
)
from nerfvae.training.loading import build_model
from nerfvae.training.run_directory import CsvLog, RunDirectory
from nerfvae.training.validation import validate, validation_dataset
from nerfvae.training.warm_start import load_init_weights, record_parent

LOGGED_METRICS = (
    "loss",
    "psnr",
    "object_psnr",
    "kl_nats",
    "nelbo_bits_per_dim",
    "posterior_std",
    "auxiliary_loss",
    "distill_psnr",
)


def _step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    # A generator per step, derived from (seed, step, rank): a resumed run draws the same samples.
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + step) * 97 + rank)


def training_device(config: TrainConfig) -> torch.device:
    """``config.device``, where ``auto`` is this rank's GPU when CUDA is available, else the CPU."""
    if config.device != "auto":
        return torch.device(config.device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _distributed_setup() -> tuple[int, int]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world_size


def resolve_data_settings(
    config: TrainConfig,
) -> tuple[TrainConfig, MultiSceneDataset, list[str]]:
    """Copy the dataset's scene box, up axis and background into the model config (the run then
    needs no dataset to render); returns the config, the training split and warnings to show."""
    if not config.data:
        raise ConfigError("no dataset given: pass --data DIR")
    if not config.run:
        raise ConfigError("no run directory given: pass --run DIR")
    dataset = MultiSceneDataset(config.data, "train")
    meta = dataset.meta
    warnings = []
    scene_min, scene_max = meta.scene_bounds
    background = config.nerfvae.background
    data_background = meta.background if meta.background is not None else (0.0, 0.0, 0.0)
    if background is None:
        background = data_background
    elif meta.background is not None and not _same_colour(background, meta.background):
        warnings.append(
            f"--nerfvae.background {_colour_text(background)} contradicts the dataset's "
            f"background {_colour_text(meta.background)} ({config.data}/dataset.json); "
            "training against the one given"
        )
    sampling = config.nerfvae.sampling
    if meta.background is not None and sampling.opaque_far:
        # opaque_far ends every ray on the box's far face: the background could never show
        warnings.append(
            f"{config.data} is an open scene before a background: turning "
            "--nerfvae.sampling.opaque-far off"
        )
        sampling = replace(sampling, opaque_far=False)
    nerfvae = replace(
        config.nerfvae,
        scene_min=tuple(float(v) for v in scene_min),
        scene_max=tuple(float(v) for v in scene_max),
        up_axis=meta.world_up[-1],
        background=tuple(float(v) for v in background),
        sampling=sampling,
    )
    return replace(config, nerfvae=nerfvae), dataset, warnings


def _same_colour(first: Sequence[float], second: Sequence[float]) -> bool:
    return all(abs(a - b) < 1.0 / 255.0 for a, b in zip(first, second))


def _colour_text(colour: Sequence[float]) -> str:
    return ",".join(f"{value:.3g}" for value in colour)


def train(config: TrainConfig, *, progress: bool = True) -> Path:
    """Train (or resume) the run in ``config.run``; returns the last checkpoint's path.

    Stops early, with a checkpoint, after ``config.time_budget_minutes`` of this call, once the
    run's training time over all calls reaches ``config.run_time_budget_minutes`` (each
    checkpoint records ``training_seconds``), or at ``config.stop_at_step``; the schedules still
    follow ``config.steps``, so re-running continues exactly as if never stopped.
    """
    started = time.perf_counter()
    rank, world_size = _distributed_setup()
    use_threads(config.threads)
    config, dataset, warnings = resolve_data_settings(config)
    run = RunDirectory(Path(config.run))

    torch.manual_seed(config.seed)
    device = training_device(config)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    model = build_model(config)
    precision = resolve_precision(config.precision, device)
    model.mixed_precision = precision == "bf16"
    latest = run.latest_checkpoint()
    init = None
    if latest is None and config.init_from:
        # before anything is written: a checkpoint that does not fit leaves no run directory behind
        init = load_init_weights(model, config.init_from)
    teacher = None
    if config.distill_from:
        # loaded (and checked against this model) before anything is written, like init_from
        teacher, teacher_record = load_teacher(config.distill_from, model, device)
        if latest is None:
            adopt_teacher_encoder(model, teacher)
        freeze_encoder(model)
    if rank == 0:
        run.prepare(config)
    if world_size > 1:
        dist.barrier()
    model.to(device)
    optimizer = torch.optim.Adam(
        [parameter for parameter in model.parameters() if parameter.requires_grad],
        lr=config.optimizer.learning_rate,
    )

    start_step = 0
    trained_before = 0.0  # seconds of training in earlier invocations, up to their last checkpoint
    if latest is not None:
        record, tensors = load_checkpoint(latest)
        trained_before = float(record.get("training_seconds") or 0.0)
        load_model_weights(model, tensors, latest)
        model.to(device)
        optimizer_from_tensors(optimizer, tensors, record["optimizer"], latest)
        start_step = int(record["step"])
        if rank == 0:
            run.log_event(f"resumed from {latest.name} at step {start_step}")
    elif rank == 0:
        if init is not None:
            changes = "; ".join(record_parent(run, init, config)) or "none"
            run.log_event(
                f"initialised weights from {init.checkpoint} (step {init.step}); "
                f"config changes: {changes}"
            )
        run.log_event(f"started run with {sum(p.numel() for p in model.parameters())} parameters")
    if teacher is not None and rank == 0:
        if latest is None:
            record_teacher(run.root, config.distill_from, teacher_record)
        run.log_event(
            f"distilling from {config.distill_from}: step {teacher_record['step']}, sha256 "
            f"{teacher_record['sha256']} (encoder copied and frozen)"
        )
    validation_data = validation_dataset(dataset) if rank == 0 else None
    if validation_data is None and rank == 0:
        warnings.append(
            f"{config.data} has no val split: validation is off (import with --val-scenes N to "
            "carve one from the training scenes)"
        )
    if rank == 0:
        run.log_event(f"precision {config.precision}: {precision} on {device}")
        for warning in warnings:
            run.log_event(f"warning: {warning}")
            print(f"warning: {warning}", file=sys.stderr)
    if start_step >= config.steps:
        if rank == 0:
            print(
                f"run {run.root} already finished {start_step} steps (config steps={config.steps})"
            )
        return latest
    if 0 < config.stop_at_step <= start_step:
        if rank == 0:
            print(f"run {run.root} is already at step {start_step} (--stop-at-step)")
        return latest
    run_budget_s = 60.0 * config.run_time_budget_minutes
    if 0 < run_budget_s <= trained_before:
        if rank == 0:
            print(
                f"run {run.root} has trained {trained_before / 60:.1f} minutes, its "
                f"--run-time-budget-minutes {config.run_time_budget_minutes:g}; nothing to do"
            )
        return latest

    trained = model if teacher is None else FieldDistillation(model, teacher)
    if world_size > 1:
        trained = torch.nn.parallel.DistributedDataParallel(
            trained, device_ids=[device.index] if device.type == "cuda" else None
        )

    meta = dataset.meta
    target_dims = meta.split("train").id_views * meta.image_height * meta.image_width * 3
    if model.whole_target_views > 0:
        # Convolutional renderers (the GQN baseline) decode whole target views, not rays; the
        # scenes and context views of each step are the same as the ray batches'.
        from nerfvae.data.image_batches import image_batches

        batches = image_batches(
            config.data,
            "train",
            scenes_per_batch=config.scenes_per_batch,
            max_context_views=config.max_context_views,
            target_views=model.whole_target_views,
            seed=config.seed * 7919 + rank,
            num_workers=config.num_workers,
            start_step=start_step,
        )
    else:
        batches = training_batches(
            config.data,
            "train",
            scenes_per_batch=config.scenes_per_batch,
            max_context_views=config.max_context_views,
            rays_per_scene=config.rays_per_scene,
            seed=config.seed * 7919 + rank,
            num_workers=config.num_workers,
            start_step=start_step,
        )
    is_main = rank == 0
    metrics_log = CsvLog(run.root / "metrics.csv", start_step) if is_main else None
    validation_log = CsvLog(run.root / "validation.csv", start_step) if is_main else None
    writer = None
    if is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run.root / "tensorboard"), purge_step=start_step)

    bar = tqdm(
        total=config.steps,
        initial=start_step,
        disable=not (progress and is_main),
        dynamic_ncols=True,
        desc="train",
        unit="step",
    )
    model.train()
    window_start, window_steps = time.perf_counter(), 0
    sums: dict[str, float] = {}
    last_checkpoint = latest
    step = start_step
    for step in range(start_step, config.steps):
        batch = {key: value.to(device, non_blocking=True) for key, value in next(batches).items()}
        lr = schedules.learning_rate(step, config.steps, config.optimizer)
        for group in optimizer.param_groups:
            group["lr"] = lr
        std = schedules.pixel_std(step, config.objective)
        beta = schedules.kl_weight(step, config.objective)
        outputs = trained(
            batch,
            target_dims=target_dims,
            kl_weight=beta,
            pixel_std=std,
            object_pixel_weight=config.objective.object_pixel_weight,
            generator=_step_generator(config.seed, step, rank, device),
        )
        loss = outputs["loss"]
        finite = torch.isfinite(loss.detach()).float()
        if world_size > 1:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)  # all ranks skip together or none
        if finite.item() < 1:
            optimizer.zero_grad(set_to_none=True)
            if is_main:
                message = f"step {step}: non-finite loss ({loss.item()}), step skipped"
                run.log_event(message)
                bar.write(message)
            bar.update(1)
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # With clipping off, an infinite threshold still returns the global norm to check.
        threshold = config.optimizer.grad_clip_norm or float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), threshold)
        if not torch.isfinite(grad_norm):
            optimizer.zero_grad(set_to_none=True)
            if is_main:
                message = f"step {step}: non-finite gradient norm, step skipped"
                run.log_event(message)
                bar.write(message)
            bar.update(1)
            continue
        optimizer.step()

        window_steps += 1
        for name in LOGGED_METRICS:
            if name in outputs:
                sums[name] = sums.get(name, 0.0) + float(outputs[name].detach())
        done = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", psnr=f"{float(outputs['psnr']):.2f}")
        this_call = time.perf_counter() - started
        out_of_time = (
            config.time_budget_minutes > 0 and this_call > 60.0 * config.time_budget_minutes
        ) or (run_budget_s > 0 and trained_before + this_call > run_budget_s)
        if world_size > 1:  # every rank stops at the same step
            flag = torch.tensor(float(out_of_time), device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        stopping = out_of_time or 0 < config.stop_at_step <= done
        if is_main and (done % config.log_every == 0 or done == config.steps or stopping):
            elapsed = time.perf_counter() - window_start
            row = {"step": done, "time": f"{time.time():.1f}"}
            row.update({k: f"{v / window_steps:.5g}" for k, v in sums.items()})
            row.update(
                lr=f"{lr:.4g}",
                pixel_std=f"{std:.4g}",
                kl_weight=f"{beta:.4g}",
                grad_norm=f"{float(grad_norm):.4g}",
                steps_per_s=f"{window_steps / elapsed:.3f}",
            )
            metrics_log.write(row)
            for key, value in row.items():
                if key not in ("step", "time"):
                    writer.add_scalar(f"train/{key}", float(value), done)
            sums, window_steps, window_start = {}, 0, time.perf_counter()
        should_validate = config.validate_every > 0 and done % config.validate_every == 0
        if (
            is_main
            and validation_data is not None
            and (should_validate or done == config.steps or stopping)
        ):
            model.eval()
            image_path = run.renders / f"step_{done:08d}.png"
            results = validate(model, validation_data, config, image_path)
            model.train()
            validation_log.write({"step": done, **{k: f"{v:.5g}" for k, v in results.items()}})
            for key, value in results.items():
                writer.add_scalar(f"validation/{key}", value, done)
            bar.write(
                f"step {done}: validation "
                + ", ".join(f"{k}={v:.3f}" for k, v in results.items() if math.isfinite(v))
            )
        if is_main and (done % config.checkpoint_every == 0 or done == config.steps or stopping):
            last_checkpoint = save_checkpoint(
                run.checkpoints,
                done,
                model,
                optimizer,
                {
                    "metrics": {
                        k: float(outputs[k].detach()) for k in LOGGED_METRICS if k in outputs
                    },
                    "training_seconds": trained_before + time.perf_counter() - started,
                },
                keep=config.keep_checkpoints,
            )
            run.log_event(f"checkpoint {last_checkpoint.name}")
        if world_size > 1 and (done % config.checkpoint_every == 0 or stopping):
            dist.barrier()
        if stopping:
            if is_main:
                run.log_event(f"stopped at step {done} (time budget or requested stop)")
            break
    bar.close()
    if writer is not None:
        writer.close()
    if is_main and step + 1 >= config.steps:
        run.log_event(f"finished at step {config.steps}")
    if world_size > 1:
        dist.barrier()
    return last_checkpoint if last_checkpoint is not None else run.latest_checkpoint()


__all__ = ["train"]
