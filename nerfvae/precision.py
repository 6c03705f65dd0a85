"""How a command uses this machine: the numeric precision of the scene function, chosen by what
the hardware runs natively, and torch's CPU threads.

bfloat16 matrix products are 2–3× faster than float32 on CPUs with AVX512-BF16 or AMX and on CUDA
devices with bf16 support, but 3–4× *slower* on CPUs without them (PyTorch emulates them there),
so ``auto`` uses bfloat16 only where it is native. Imports only torch.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache
from typing import Literal

import torch

from nerfvae.errors import ConfigError

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class ThreadsOption:
    """The ``--threads`` option of every command that computes (apply it with
    :func:`use_threads`)."""

    threads: int = 0
    """torch intra-op threads (0 = PyTorch's default)."""


@dataclass
class MachineOptions(ThreadsOption):
    """``--threads`` and ``--precision``: how a command that loads a trained run uses the
    machine."""

    precision: Precision | None = None
    """Scene-function precision: `auto` (bfloat16 only where the hardware runs it natively),
    `fp32` or `bf16`; default: the run's own setting. Recorded in every result."""


def use_threads(threads: int) -> None:
    """Let torch use ``threads`` intra-op threads (0 keeps PyTorch's default); ConfigError below
    0."""
    if threads < 0:
        raise ConfigError(f"--threads must be 0 (PyTorch's default) or more, got {threads}")
    if threads > 0:
        torch.set_num_threads(threads)


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), as PyTorch's own
    CPU capability probe reports it."""
    probes = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", None),
        getattr(torch.cpu, "_is_amx_tile_supported", None),
    )
    return any(probe() for probe in probes if probe is not None)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` runs bfloat16 natively (a CUDA device with bf16 support, or a CPU with
    AVX512-BF16 / AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(precision: str, device: torch.device | str) -> Literal["fp32", "bf16"]:
    """``auto`` -> ``bf16`` where :func:`native_bf16`, else ``fp32``; ``fp32`` / ``bf16`` as
    given. Raises ConfigError for anything else."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision  # type: ignore[return-value]


def cpu_description() -> dict[str, object]:
    """``{"name", "native_bf16", "threads"}`` of this machine's CPU (for benchmark tables)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "name": name,
        "native_bf16": cpu_has_native_bf16(),
        "threads": torch.get_num_threads() or os.cpu_count() or 1,
    }
