"""A run directory holds a training run's resolved config, checkpoints, logs and renders.

```
RUN/
  config.json          resolved TrainConfig (what eval/render/sample rebuild the model from)
  checkpoints/         step_XXXXXXXX.{safetensors,json}
  metrics.csv          training scalars every log_every steps
  validation.csv       validation metrics
  events.log           human-readable events (start, resume, skipped steps, checkpoints)
  tensorboard/         TensorBoard event files
  renders/             validation renders, step_XXXXXXXX.png
```
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerfvae.errors import ConfigError
from nerfvae.training.checkpoint import checkpoint_stem, list_checkpoints
from nerfvae.training.config import (
    RESUMABLE_FIELDS,
    TrainConfig,
    config_differences,
    load_config,
    to_dict,
)

CONFIG_FILE = "config.json"


@dataclass
class RunDirectory:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def renders(self) -> Path:
        return self.root / "renders"

    def latest_checkpoint(self) -> Path | None:
        found = list_checkpoints(self.checkpoints)
        return found[-1] if found else None

    def checkpoint_at(self, step: int) -> Path | None:
        """The record of checkpoint ``step``, or None when the run no longer keeps it."""
        path = checkpoint_stem(self.checkpoints, step).with_suffix(".json")
        return path if path.is_file() else None

    def load_config(self) -> TrainConfig:
        if not self.config_path.exists():
            raise ConfigError(f"{self.root} is not a run directory (no {CONFIG_FILE})")
        return load_config(self.config_path)

    def prepare(self, config: TrainConfig) -> TrainConfig:
        """Create the run directory for ``config``, or check ``config`` against the one already
        there (a resume). Fields in RESUMABLE_FIELDS may change; anything else is an error.
        ``config`` (from the command line or a file) is checked first: ConfigError naming the
        field."""
        try:
            config.check()
        except ConfigError as error:
            raise ConfigError(f"training config: {error}") from None
        self.root.mkdir(parents=True, exist_ok=True)
        if self.config_path.exists():
            previous = self.load_config()
            differences = [
                d
                for d in config_differences(previous, config)
                if d.split(":")[0].split(".")[0] not in RESUMABLE_FIELDS
            ]
            if differences:
                raise ConfigError(
                    f"run directory {self.root} was started with a different config; "
                    f"differences: {'; '.join(differences)}. Use a new --run directory or the "
                    "same options."
                )
        self.write_config(config)
        return config

    def write_config(self, config: TrainConfig) -> None:
        temporary = self.config_path.with_name(CONFIG_FILE + ".tmp")
        temporary.write_text(json.dumps(to_dict(config), indent=2))
        temporary.replace(self.config_path)

    def log_event(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with (self.root / "events.log").open("a") as handle:
            handle.write(f"{stamp} {message}\n")


class CsvLog:
    """Append-only CSV whose rows after a resume point are dropped, so a resumed run's log reads as
    one uninterrupted run."""

    def __init__(self, path: Path, keep_through_step: int) -> None:
        self.path = path
        self.fieldnames: list[str] | None = None
        if path.exists():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                self.fieldnames = list(reader.fieldnames or [])
                rows = [r for r in reader if int(float(r["step"])) <= keep_through_step]
            with path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=self.fieldnames)
                writer.writeheader()
                writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        new_file = self.fieldnames is None
        if new_file:
            self.fieldnames = list(row)
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fieldnames, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
