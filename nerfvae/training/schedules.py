"""Step-indexed schedules: pure functions of the step, so a resumed run needs no schedule state."""

from __future__ import annotations

import math

from nerfvae.training.config import ObjectiveConfig, OptimizerConfig


def learning_rate(step: int, total_steps: int, config: OptimizerConfig) -> float:
    """Linear warm-up to the peak, then cosine decay to ``final_lr_fraction`` of it."""
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
    progress = min(1.0, step / max(1, total_steps - 1))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    decay = config.final_lr_fraction + (1.0 - config.final_lr_fraction) * cosine
    return config.learning_rate * warmup * decay


def pixel_std(step: int, config: ObjectiveConfig) -> float:
    """Log-linear annealing of the likelihood std from ``pixel_std_start`` to ``pixel_std_end``."""
    if config.pixel_std_anneal_steps <= 0:
        return config.pixel_std_end
    fraction = min(1.0, step / config.pixel_std_anneal_steps)
    log_std = (1 - fraction) * math.log(config.pixel_std_start) + fraction * math.log(
        config.pixel_std_end
    )
    return math.exp(log_std)


def kl_weight(step: int, config: ObjectiveConfig) -> float:
    """KL warm-up: rises linearly from 0 to ``beta`` over ``kl_warmup_steps``."""
    if config.kl_warmup_steps <= 0:
        return config.beta
    return config.beta * min(1.0, step / config.kl_warmup_steps)
