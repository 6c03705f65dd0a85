"""Checkpoints: safetensors for tensors (model and optimiser state), JSON for everything else.

Each checkpoint is a pair ``step_XXXXXXXX.safetensors`` + ``step_XXXXXXXX.json``. Both are written
to temporary names and renamed, the JSON last; the JSON records the SHA-256 of the tensor file, so
a checkpoint counts only when both files exist and agree, and a torn or corrupted write is detected
instead of loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nerfvae.errors import CheckpointError, read_json_file

_NAME = re.compile(r"^step_(\d{8})\.json$")
FORMAT_VERSION = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state dict into tensors (for safetensors) and a JSON-able remainder."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer/{param_id}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    extra: dict | None,
    path: Path,
) -> None:
    """Restore the optimiser state that :func:`optimizer_to_tensors` split, from checkpoint
    ``path``. Raises CheckpointError naming ``path`` when the checkpoint has no optimiser state or
    its state does not fit ``optimizer`` (other parameter groups or shapes, malformed fields,
    non-finite moments), so a resume fails with one line instead of at the first update."""
    if extra is None:
        raise CheckpointError(f"checkpoint {path} has no optimiser state to resume from")
    try:
        state: dict[int, dict[str, Any]] = {}
        for name, value in tensors.items():
            if not name.startswith("optimizer/"):
                continue
            _, param_id, key = name.split("/", 2)
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise ValueError(f"{name} holds NaN or infinity")
            state.setdefault(int(param_id), {})[key] = value
        for param_id, values in extra.get("scalars", {}).items():
            if not isinstance(values, dict):
                raise ValueError(f"scalars of parameter {param_id} are not an object")
            state.setdefault(int(param_id), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": extra["param_groups"]})
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                for key, value in optimizer.state.get(parameter, {}).items():
                    if (
                        torch.is_tensor(value)
                        and value.dim() > 0
                        and value.shape != parameter.shape
                    ):
                        raise ValueError(
                            f"{key} has shape {tuple(value.shape)} for a parameter of shape "
                            f"{tuple(parameter.shape)}"
                        )
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"checkpoint {path}: its optimiser state does not fit this run ({reason})"
        ) from None


def checkpoint_stem(directory: Path, step: int) -> Path:
    """``directory/step_XXXXXXXX``: checkpoint ``step``'s files without their suffix."""
    return directory / f"step_{step:08d}"


def save_checkpoint(
    directory: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    info: dict[str, Any],
    keep: int = 3,
) -> Path:
    """Write checkpoint ``step`` atomically into ``directory``; prune all but the newest ``keep``."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = checkpoint_stem(directory, step)
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optimizer_extra = None
    if optimizer is not None:
        optimizer_tensors, optimizer_extra = optimizer_to_tensors(optimizer)
        tensors.update(optimizer_tensors)
    tensor_path = stem.with_suffix(".safetensors")
    temporary = tensor_path.with_name(tensor_path.name + ".tmp")
    save_file(tensors, str(temporary))
    os.replace(temporary, tensor_path)
    record = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "tensors_file": tensor_path.name,
        "sha256": _sha256(tensor_path),
        "optimizer": optimizer_extra,
        **info,
    }
    _atomic_write_text(stem.with_suffix(".json"), json.dumps(record, indent=1))
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        old.with_suffix(".safetensors").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return stem.with_suffix(".json")


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint JSON files in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _check_record(record: Any, path: Path) -> Path:
    """The tensor file a checkpoint record names, after checking the record's fields; it must be
    a plain file in the same folder as the record (no other path, no symlink)."""
    if not isinstance(record, dict):
        raise CheckpointError(f"checkpoint {path} is corrupt (expected a JSON object)")
    version = record.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}, expected {FORMAT_VERSION}"
        )
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"checkpoint {path}: step must be an integer >= 0, got {step!r}")
    if not isinstance(record.get("sha256"), str) or not _SHA256.match(record["sha256"]):
        raise CheckpointError(f"checkpoint {path}: sha256 must be 64 hexadecimal digits")
    name = record.get("tensors_file")
    if (
        not isinstance(name, str)
        or not name.endswith(".safetensors")
        or "\0" in name
        or len(name) > 255
        or Path(name).name != name
        or name in (".", "..")
    ):
        raise CheckpointError(
            f"checkpoint {path}: tensors_file must name a .safetensors file in {path.parent}, "
            f"got {str(name)[:80]!r}"
        )
    optimizer = record.get("optimizer")
    if optimizer is not None and (
        not isinstance(optimizer, dict)
        or not isinstance(optimizer.get("param_groups"), list)
        or not isinstance(optimizer.get("scalars", {}), dict)
    ):
        raise CheckpointError(f"checkpoint {path}: optimizer must be null or an object")
    tensor_path = path.parent / name
    if tensor_path.is_symlink() or not tensor_path.is_file():
        exists = tensor_path.is_symlink() or tensor_path.exists()
        problem = "are not a plain file" if exists else "are missing"
        raise CheckpointError(f"checkpoint tensors {tensor_path} {problem}")
    return tensor_path


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify one checkpoint; returns (JSON record, tensors). Raises CheckpointError.

    Only safetensors is read (nothing is ever unpickled); the record's fields are checked and its
    tensor file must be a plain file beside it whose SHA-256 matches the record."""
    path = Path(path)
    try:
        record = read_json_file(path, CheckpointError)
    except CheckpointError as error:
        message = str(error)
        if "file is missing" in message:
            raise CheckpointError(f"checkpoint {path} does not exist") from None
        reason = message.removeprefix(f"{path}: ")
        raise CheckpointError(f"checkpoint {path} is corrupt (invalid JSON: {reason})") from None
    tensor_path = _check_record(record, path)
    try:
        digest = _sha256(tensor_path)
    except OSError as error:
        raise CheckpointError(f"checkpoint tensors {tensor_path} cannot be read: {error}") from None
    if digest != record["sha256"]:
        raise CheckpointError(
            f"checkpoint tensors {tensor_path} are corrupt (SHA-256 differs from {path.name})"
        )
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"checkpoint tensors {tensor_path} cannot be read: {error}"
        ) from error
    return record, tensors


# Weights renamed since a checkpoint was written: old prefix -> new prefix (for one release).
RENAMED_WEIGHTS = {"refiner.": "iterative_update."}


def _current_weight_name(name: str) -> str:
    for old, new in RENAMED_WEIGHTS.items():
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def load_model_weights(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: Path
) -> None:
    """Load ``model/*`` tensors into ``model``; mismatches raise CheckpointError naming them."""
    weights = {
        _current_weight_name(k[len("model/") :]): v
        for k, v in tensors.items()
        if k.startswith("model/")
    }
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong_shape = sorted(
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    )
    wrong_dtype = sorted(
        f"{k} {weights[k].dtype} vs {v.dtype}"
        for k, v in expected.items()
        if k in weights and weights[k].dtype != v.dtype
    )
    if missing or unexpected or wrong_shape or wrong_dtype:
        problems = []
        if missing:
            problems.append(f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}")
        if unexpected:
            problems.append(f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}")
        if wrong_shape:
            problems.append(f"wrong shape {wrong_shape[:3]}")
        if wrong_dtype:
            problems.append(f"wrong dtype {wrong_dtype[:3]}")
        raise CheckpointError(
            f"checkpoint {where} does not match the model config ({'; '.join(problems)})"
        )
    not_finite = sorted(
        name
        for name, value in weights.items()
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    )
    if not_finite:
        raise CheckpointError(
            f"checkpoint {where} holds NaN or inf weights ({not_finite[:3]}"
            f"{'…' if len(not_finite) > 3 else ''})"
        )
    model.load_state_dict(weights)
