"""Training configuration: typed dataclasses whose field docstrings are the CLI's ``--help``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from nerfvae.errors import (
    ConfigError,
    check_bounds,
    check_config_fields,
    check_range,
    field_name,
    read_json_file,
)
from nerfvae.models.baselines.gqn import GQNConfig
from nerfvae.models.config import (
    EncoderConfig,
    LatentConfig,
    NeRFVAEConfig,
    SceneFunctionConfig,
)
from nerfvae.rendering import RaySamplingConfig


@dataclass
class ObjectiveConfig:
    """ELBO weighting and schedules."""

    pixel_std_start: float = 0.2
    """Pixel likelihood standard deviation at step 0 (colours in [0, 1])."""
    pixel_std_end: float = 0.1
    """Pixel likelihood standard deviation after annealing."""
    pixel_std_anneal_steps: int = 0
    """Steps of log-linear annealing from start to end std; 0 uses pixel_std_end throughout."""
    kl_warmup_steps: int = 0
    """Steps over which the KL weight rises linearly from 0 to beta; 0 = no warm-up."""
    beta: float = 1.0
    """Final KL weight (1 is the ELBO)."""
    object_pixel_weight: float = 1.0
    """Weight of object pixels (ground-truth mask) in the training likelihood; the logged ELBO is
    always unweighted."""

    def check(self, where: str = "objective") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        for name in ("pixel_std_start", "pixel_std_end", "object_pixel_weight"):
            check_range(getattr(self, name) > 0, where, name, "> 0", getattr(self, name))
        for name in ("pixel_std_anneal_steps", "kl_warmup_steps", "beta"):
            check_range(getattr(self, name) >= 0, where, name, ">= 0", getattr(self, name))


@dataclass
class OptimizerConfig:
    """Adam with linear warm-up and cosine decay, gradient clipping."""

    learning_rate: float = 5e-4
    """Peak learning rate."""
    warmup_steps: int = 100
    """Linear learning-rate warm-up steps."""
    final_lr_fraction: float = 0.1
    """Learning rate at the last step as a fraction of the peak (cosine decay)."""
    grad_clip_norm: float = 1.0
    """Global gradient-norm clipping threshold; 0 disables clipping."""

    def check(self, where: str = "optimizer") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        check_range(self.learning_rate > 0, where, "learning_rate", "> 0", self.learning_rate)
        check_range(self.warmup_steps >= 0, where, "warmup_steps", ">= 0", self.warmup_steps)
        fraction = self.final_lr_fraction
        check_range(0 <= fraction <= 1, where, "final_lr_fraction", "in [0, 1]", fraction)
        check_range(self.grad_clip_norm >= 0, where, "grad_clip_norm", ">= 0", self.grad_clip_norm)


@dataclass
class TrainConfig:
    """Train NeRF-VAE on a multi-scene dataset. The run directory holds everything; re-running the
    same command resumes from the last checkpoint."""

    data: str = ""
    """Dataset directory (from `nerfvae data generate` or `nerfvae data import`)."""
    run: str = ""
    """Run directory: resolved config, checkpoints, logs and validation renders."""
    model: Literal["nerfvae", "gqn"] = "nerfvae"
    """Which model to train (its settings are in the section of the same name): ``nerfvae`` or the
    ``gqn`` baseline (a GQN-style convolutional renderer, docs/baselines.md)."""
    nerfvae: NeRFVAEConfig = field(default_factory=NeRFVAEConfig)
    gqn: GQNConfig = field(default_factory=GQNConfig)
    """Settings of the GQN-style baseline (used with ``--model gqn``; the scene box that
    normalises its camera codes is the one training copies into the nerfvae section)."""
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    steps: int = 20000
    """Total optimisation steps (raising it and re-running continues a finished run)."""
    scenes_per_batch: int = 8
    """Scenes per step (per process under torchrun)."""
    max_context_views: int = 3
    """Context views per scene are drawn uniformly from 1..max_context_views each step."""
    rays_per_scene: int = 512
    """Random target rays per scene per step."""
    seed: int = 0
    """Seed of parameters, data order and sampling; runs are deterministic on CPU."""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the main process)."""
    device: str = "auto"
    """`auto` (this rank's GPU if CUDA is available, else CPU), `cpu`, `cuda` or `cuda:N`."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Precision of the scene function: ``bf16`` (bfloat16 autocast in training, a bfloat16 copy
    for rendering; compositing and the loss stay float32), ``fp32``, or ``auto``: bfloat16 only
    where the device runs it natively (CUDA with bf16, CPUs with AVX512-BF16 or AMX), where it is
    2–3× faster; elsewhere bfloat16 is 3–4× slower, so auto takes float32. Eval, render, demo,
    viewer and export use this setting unless given their own ``--precision``."""
    threads: int = 0
    """torch intra-op threads (0 = PyTorch's default)."""
    log_every: int = 10
    """Steps between rows of metrics.csv / TensorBoard scalars."""
    checkpoint_every: int = 500
    """Steps between checkpoints (one is also written at the end)."""
    keep_checkpoints: int = 3
    """Most recent checkpoints to keep."""
    validate_every: int = 1000
    """Steps between validation renders and metrics (also at the end); 0 = only at the end."""
    validation_scenes: int = 4
    """Validation scenes rendered each time (first scenes of the val split)."""
    time_budget_minutes: float = 0.0
    """Stop this invocation (with a checkpoint) after this many minutes; re-run to continue.
    0 = no limit. Lets a long run be built up in parts, or runs be compared at equal wall time."""
    run_time_budget_minutes: float = 0.0
    """Stop once the run's training time over all its invocations reaches this many minutes
    (each checkpoint records the total so far; time after the last checkpoint of a killed
    invocation is not counted, as its steps are redone). 0 = no limit. Compares runs at equal wall
    time when each is built up in parts: re-run the same command until it says the budget is
    reached."""
    stop_at_step: int = 0
    """Stop this invocation (with a checkpoint and a validation) once the run reaches this step; 0 =
    run to ``steps``. The schedules still follow ``steps``, so a run stopped here and resumed is
    the same run; it reproduces a run that was built up in wall-time parts, step for step."""
    init_from: str = ""
    """Start a new run from the model weights of another run: its run directory (for its newest
    checkpoint) or one checkpoint's ``.json``. Only the weights are taken: the optimiser, the step
    count and the schedules start afresh, and the other run's logs are copied into ``RUN/parent/``
    so the run directory keeps the whole training history. Every parameter must exist with the
    same shape, which holds for changes such as a finer latent grid (``--nerfvae.latent.grid``).
    Used only when the run starts; a resume continues from the run's own checkpoints."""
    distill_from: str = ""
    """Train by distillation from another run (its newest checkpoint): this run's scene function
    learns to reproduce that model's density and colour along the training rays and its renders,
    instead of the ELBO. The encoder is copied from it and frozen, so both share one posterior
    (and the latent space fitted priors describe); encoder, latent, scene box and box faces must
    match. Moves a trained model to a cheaper scene function (``--config planes --distill-from
    RUN``) in a fraction of the time training it from the data takes (docs/training.md)."""

    def check(self, where: str = "") -> None:
        """Raise ConfigError naming the field (dotted, e.g. ``nerfvae.latent.grid``) if any value
        of the config has the wrong type or is out of range. The one home of config validation:
        :func:`load_config` and :meth:`RunDirectory.prepare` call it."""
        check_config_fields(self, where)
        self.nerfvae.check(field_name(where, "nerfvae"))
        self.gqn.check(field_name(where, "gqn"))
        self.objective.check(field_name(where, "objective"))
        self.optimizer.check(field_name(where, "optimizer"))
        bounds = {"scenes_per_batch": (1, 4096), "max_context_views": (1, 1024)}
        bounds |= {"rays_per_scene": (1, 2**24), "log_every": (1, 2**62)}
        check_bounds(self, where, {**bounds, "checkpoint_every": (1, 2**62)})
        for name in (
            "steps",
            "seed",
            "num_workers",
            "threads",
            "keep_checkpoints",
            "validate_every",
            "validation_scenes",
            "time_budget_minutes",
            "run_time_budget_minutes",
            "stop_at_step",
        ):
            check_range(getattr(self, name) >= 0, where, name, ">= 0", getattr(self, name))


# Fields that may change between the first run and a resume without changing the experiment.
RESUMABLE_FIELDS = {
    "data",
    "run",
    "steps",
    "num_workers",
    "device",
    "threads",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    "validate_every",
    "validation_scenes",
    "time_budget_minutes",
    "run_time_budget_minutes",
    "stop_at_step",
    # a property of the machine the run continues on, not of the experiment
    "precision",
    # read only when a run starts; its record is RUN/parent/init.json, not this field
    "init_from",
}


def preset(name: str) -> TrainConfig:
    """The named config: ``tiny`` (tests, about a minute), ``small`` (everyday), ``planes`` (the
    small data with the ``planes`` scene function and proposal sampler), ``objects`` (planes for
    object-centric data before a background), ``default``."""
    if name == "tiny":
        return TrainConfig(
            nerfvae=NeRFVAEConfig(
                encoder=EncoderConfig(stage_channels=(16, 32, 32)),
                latent=LatentConfig(layout="spatial", channels=16, grid=4),
                scene_function=SceneFunctionConfig(
                    width=64,
                    depth=3,
                    skip_layer=-1,
                    point_frequencies=4,
                    direction_frequencies=0,
                    view_dependent=False,
                    attention_heads=2,
                ),
                sampling=RaySamplingConfig(num_coarse=24, num_fine=0),
            ),
            objective=ObjectiveConfig(kl_warmup_steps=50),
            optimizer=OptimizerConfig(learning_rate=2e-3, warmup_steps=10),
            steps=150,
            scenes_per_batch=4,
            rays_per_scene=128,
            log_every=10,
            checkpoint_every=50,
            validate_every=0,
            validation_scenes=2,
        )
    if name == "small":
        # Sized for 2 CPU cores: ~37k points per step (4 scenes x 192 rays x 48 samples).
        return TrainConfig(
            nerfvae=NeRFVAEConfig(
                encoder=EncoderConfig(stage_channels=(32, 64, 96)),
                latent=LatentConfig(layout="spatial", channels=16, grid=8),
                scene_function=SceneFunctionConfig(width=128, depth=4, skip_layer=2),
                sampling=RaySamplingConfig(num_coarse=32, num_fine=16),
            ),
            objective=ObjectiveConfig(
                pixel_std_start=0.2,
                pixel_std_end=0.1,
                pixel_std_anneal_steps=2000,
                kl_warmup_steps=1000,
                object_pixel_weight=3.0,
            ),
            optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=200),
            steps=20000,
            scenes_per_batch=4,
            rays_per_scene=192,
            checkpoint_every=250,
            validate_every=500,
        )
    if name == "planes":
        # The small data and schedules with the cheap scene function: the 16 x 16 latent decoded
        # once per scene into a 64 x 64 triplane (height 16), a 2 x 64 MLP at 24 samples per ray
        # placed by a proposal density read at 64. A point costs a fraction of `small`'s
        # attention field (benchmarks/scene_function.py); the savings buy 1,024 rays per scene.
        small = preset("small")
        return replace(
            small,
            nerfvae=replace(
                small.nerfvae,
                latent=LatentConfig(layout="spatial", channels=16, grid=16),
                scene_function=SceneFunctionConfig(
                    conditioning="planes",
                    width=64,
                    depth=2,
                    point_frequencies=2,
                    plane_layout="triplane",
                    # the shipped model's decoder (assets/model): 44 channels match the other
                    # conditionings' parameter count in the ablation (docs/results/ablation-2h)
                    plane_decoder_channels=44,
                ),
                sampling=RaySamplingConfig(
                    sampler="proposal", num_coarse=64, num_fine=24, opaque_far=True
                ),
            ),
            rays_per_scene=1024,
        )
    if name == "objects":
        # Object-centric data (built-in `--preset objects`, ShapeNet-SRN, NeRF-synthetic): the
        # planes model with the box faces see-through, so rays that miss the object show the
        # dataset's background; a spatial latent grid on the ground plane, which beat one global
        # vector per scene by 2.6 dB in validation PSNR after 15 minutes
        # (docs/results/objects-preset); more scenes and fewer rays per step (the object covers
        # a small part of each view).
        planes = preset("planes")
        return replace(
            planes,
            nerfvae=replace(
                planes.nerfvae,
                # the 64-channel decoder docs/results/objects-preset measured
                scene_function=replace(planes.nerfvae.scene_function, plane_decoder_channels=64),
                sampling=replace(planes.nerfvae.sampling, opaque_far=False),
            ),
            scenes_per_batch=8,
            rays_per_scene=512,
            validate_every=250,
            validation_scenes=8,
        )
    if name == "default":
        return TrainConfig(
            nerfvae=NeRFVAEConfig(
                encoder=EncoderConfig(stage_channels=(64, 128, 256), blocks_per_stage=2),
                latent=LatentConfig(layout="spatial", channels=64, grid=8),
                scene_function=SceneFunctionConfig(width=256, depth=6, skip_layer=3),
                sampling=RaySamplingConfig(num_coarse=64, num_fine=64),
            ),
            objective=ObjectiveConfig(
                pixel_std_anneal_steps=10000, kl_warmup_steps=5000, object_pixel_weight=3.0
            ),
            steps=200000,
            scenes_per_batch=16,
            rays_per_scene=512,
        )
    raise ConfigError(f"unknown config preset {name!r} (choose {', '.join(PRESETS)})")


PRESETS = ("tiny", "small", "planes", "objects", "default")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build a (nested) config dataclass from a dict, rejecting unknown or mistyped fields and,
    for a config with a ``check`` method, out-of-range values (ConfigError naming ``where`` and
    the field)."""
    config = _build(cls, data, where, "")
    check = getattr(config, "check", None)
    try:
        if check is not None:
            check()
        else:
            check_config_fields(config)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    return config


def _build(cls: type, data: Any, where: str, prefix: str) -> Any:
    name_here = f"{where}.{prefix}" if prefix else where
    if not isinstance(data, dict):
        raise ConfigError(
            f"{name_here}: expected an object for {cls.__name__}, got {type(data).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        names = sorted(str(name)[:40] for name in unknown)[:5]
        raise ConfigError(f"{name_here}: unknown field(s) {names} for {cls.__name__}")
    defaults = cls()
    values: dict[str, Any] = {}
    for name, value in data.items():
        current = getattr(defaults, name)
        if dataclasses.is_dataclass(current):
            values[name] = _build(type(current), value, where, field_name(prefix, name))
        elif isinstance(value, list) and (
            isinstance(current, tuple) or str(fields[name].type).startswith("tuple")
        ):
            # JSON has lists; an optional tuple field (default None) is a tuple when set
            values[name] = tuple(value)
        else:
            values[name] = value
    try:
        return cls(**values)
    except ConfigError as error:  # a config that checks itself on construction
        raise ConfigError(f"{where}: {error}") from None


def load_config(path: str | Path) -> TrainConfig:
    """Read a TrainConfig from a JSON file (a run's ``config.json`` or a hand-written one) and
    check every value; ConfigError naming the file and field otherwise."""
    path = Path(path)
    data = read_json_file(path, ConfigError)
    if isinstance(data, dict):
        data = _translate_old_fields(data)
    return from_dict(TrainConfig, data, str(path))


# NeRF-VAE fields renamed since configs were written: old name -> new name.
RENAMED_NERFVAE_FIELDS = {
    "refinement_steps": "iterative_inference_steps",
    "refinement_rays": "iterative_inference_rays",
}


def _translate_old_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A config written by an older nerfvae, in today's fields (the same experiment)."""
    data = dict(data)
    if "mixed_precision" in data and "precision" not in data:
        # configs written before the precision setting: bfloat16 "where it helps" is auto
        data["precision"] = "auto" if data.pop("mixed_precision") else "fp32"
    # a torch.compile switch that was never used; a config can only hold its default here
    if data.get("compile") is False:
        del data["compile"]
    if isinstance(data.get("nerfvae"), dict):
        nerfvae = dict(data["nerfvae"])
        for old, new in RENAMED_NERFVAE_FIELDS.items():
            if old in nerfvae and new not in nerfvae:
                nerfvae[new] = nerfvae.pop(old)
        data["nerfvae"] = nerfvae
    return data


def config_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of fields whose values differ between two configs of the same type."""
    differences = []
    for f in dataclasses.fields(old):
        a, b = getattr(old, f.name), getattr(new, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(a):
            differences += config_differences(a, b, name + ".")
        elif a != b:
            differences.append(f"{name}: {a!r} -> {b!r}")
    return differences
