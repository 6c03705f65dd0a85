"""Resuming a long job written in parts: the settings a directory's job was started with,
recorded once.

``nerfvae data generate`` (``generation.json``) and ``nerfvae data import`` (``import.json``) write
a dataset shard by shard, and ``nerfvae baseline nerf`` (``<out>.parts/settings.json``) saves its
per-scene NeRFs batch by batch; each skips the finished parts when run again. The record of their
settings makes a re-run continue the same job: parts made with other settings are never mixed in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nerfvae.data.storage import write_json_atomic
from nerfvae.errors import DataError


def resume_with_settings(
    record: Path, settings: Mapping[str, Any], *, mismatch: str, remedy: str
) -> None:
    """Start the job that ``record`` describes, or resume it when it ran with the same settings.

    Args:
        record: the settings file in the output directory; written (with its directory) when it
            does not exist yet.
        settings: JSON-serialisable settings; compared with the recorded ones as JSON reads them
            back (tuples become lists).
        mismatch: what the error says when the recorded settings differ (which directory, what
            to do instead).
        remedy: what the error says to do when the record cannot be read.

    Raises:
        DataError: ``"{record}: {mismatch}"`` when the settings differ,
            ``"{record}: unreadable (...); {remedy}"`` when the record is not readable JSON.
    """
    wanted = json.loads(json.dumps(settings))
    if record.is_file():
        try:
            recorded = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"{record}: unreadable ({error}); {remedy}") from None
        if recorded != wanted:
            raise DataError(f"{record}: {mismatch}")
        return
    record.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(record, wanted)
