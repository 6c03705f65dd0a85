"""Fuzzing every file nerfvae reads: mutated inputs either fail cleanly or load valid data.

Small valid fixtures of each format (the writers of the format tests, a tiny dataset written with
``DatasetWriter`` and a run directory trained from it) are copied and mutated by a seeded mutator
of our own: truncated and byte-flipped files, JSON fields of the wrong type, NaN / ±inf / 1e308,
huge or negative sizes, missing keys, deep nesting, directories or symlink loops in place of
files, 16-bit or huge-header images, re-encoded TFRecords and safetensors files with wrong dtypes
or NaN weights, and planted pickles that would create a marker file if anything unpickled them.

Each case runs one entry point — the four importers (``import_dataset``), the dataset loader
(``MultiSceneDataset`` reading every scene) or the run loader (``load_trained_model``, as ``nerfvae
eval`` does) — under a time limit. The outcome must be

* a :class:`~nerfvae.errors.NerfVAEError` whose message is one line and names a file of the case
  (the user's source file: for an import, a file under the source directory, never only the
  output), or
* an accepted input whose loaded values pass the loaders' invariants: cameras finite and passing
  :func:`~nerfvae.geometry.check_cameras` with the image size, images uint8 of the declared size,
  object-mask ids within the scene's object count, finite scene bounds with min < max, finite
  near < far, model weights finite with the model's dtypes, a config that passes ``check``.

``pytest tests/test_fuzz.py`` runs :data:`DEFAULT_CASES` cases (under a minute on one core);
``pytest tests/test_fuzz.py --fuzz-cases 5000 -s`` runs a longer campaign and prints the counts per
entry point (accepted / clean errors / raw tracebacks / hangs / invariant breaks).
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import pickle
import random
import shutil
import signal
import struct
import time
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_format import write_dataset
from test_formats_blender import write_blender_scene, write_nerfstudio_scene
from test_formats_gqn import write_gqn
from test_formats_srn import write_srn
from test_formats_tfrecord import encode_example, frame_record

from nerfvae.errors import NerfVAEError

DEFAULT_CASES = 300
CASE_SECONDS = 20
ENTRY_POINTS = (
    "import-blender",
    "import-nerfstudio",
    "import-srn",
    "import-gqn",
    "dataset",
    "run",
)
OUTCOMES = ("accepted", "clean error", "raw traceback", "hang", "invariant break")


# ---------------------------------------------------------------------------------------------
# Fixtures: one valid template per entry point, copied for every case
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz-templates")
    found = {
        "import-blender": write_blender_scene(root / "blender", views=(2, 1, 1)),
        "import-nerfstudio": write_nerfstudio_scene(root / "nerfstudio", count=3),
        "import-srn": write_srn(root / "srn", counts=(("train", 1, 2), ("test", 1, 2))),
        "import-gqn": write_gqn(root / "gqn", name="custom", size=16, views=3, counts=(1, 1)),
    }
    dataset = root / "dataset"
    write_dataset(dataset, {"train": 2, "val": 1}, shard_size=2)
    found["dataset"] = dataset
    found["run"] = _trained_run(dataset, root / "run")
    return found


def _trained_run(dataset: Path, run: Path) -> Path:
    """A run directory trained for two steps on ``dataset`` by ``nerfvae train``, with a model
    cut down to a few thousand weights (loading it is what is fuzzed, not training)."""
    from conftest import TINY_TRAIN_ARGS

    from nerfvae.cli.main import main

    smaller = [
        "--steps", "2", "--checkpoint-every", "2", "--validate-every", "0",
        "--nerfvae.encoder.stage-channels", "4", "4", "4",
        "--nerfvae.scene-function.width", "8", "--nerfvae.latent.channels", "4",
        "--nerfvae.latent.grid", "2", "--nerfvae.sampling.num-coarse", "4",
        "--rays-per-scene", "8", "--device", "cpu", "--precision", "fp32",
    ]  # fmt: skip
    args = ["train", *TINY_TRAIN_ARGS, *smaller, "--data", str(dataset), "--run", str(run)]
    assert main(args) == 0
    return run


# ---------------------------------------------------------------------------------------------
# The mutator
# ---------------------------------------------------------------------------------------------

WEIRD_VALUES: list[Any] = [
    float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 1e-320, 0, -1, 1, 0.5, 3.5e38,
    2**63, 10**30, -(10**30), "16", "", "a\x00b", "x" * 300, "../../../outside", "/etc/passwd",
    None, True, False, [], {}, [1, 2, 3], {"a": 1}, [[1, 2], [3]], [float("nan")] * 3,
]  # fmt: skip
WEIRD_TOKENS = [
    "nan",
    "inf",
    "-inf",
    "0",
    "-1",
    "1e308",
    "1e400",
    "-0",
    "abc",
    "1e-320",
    "99999999",
]
DEEP = "__DEEP_NESTING__"


class Planted:
    """Unpickling this creates the marker file: a pickle that must never be loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps({"model/weight": Planted(marker)})


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG of ``pixels``: uint16 → 16-bit grey, int32 → PIL's 32-bit mode, uint8 → 8-bit."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` (valid chunk CRCs, no real pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


class Mutator:
    """Seeded mutations of the files of one case directory."""

    def __init__(self, rng: random.Random, case: Path, marker: Path) -> None:
        self.rng = rng
        self.case = case
        self.marker = marker
        self.done: list[str] = []

    def note(self, text: str) -> None:
        self.done.append(text)

    # -- whole files ----------------------------------------------------------------------

    def mutate_file(self, path: Path) -> None:
        data = path.read_bytes() if path.is_file() else b""
        kind = self.rng.choice(
            ["truncate", "flip", "empty", "directory", "loop", "delete", "pickle", "garbage",
             "non-utf8"]
        )  # fmt: skip
        self.note(f"{kind} {path.relative_to(self.case)}")
        if kind == "truncate":
            path.write_bytes(data[: self.rng.randrange(max(len(data), 1))])
        elif kind == "flip":
            flipped = bytearray(data)
            for _ in range(self.rng.randint(1, 8)):
                if flipped:
                    flipped[self.rng.randrange(len(flipped))] ^= 1 << self.rng.randrange(8)
            path.write_bytes(bytes(flipped))
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind in ("directory", "loop", "delete"):
            path.unlink()
            if kind == "directory":
                path.mkdir()
            elif kind == "loop":
                path.symlink_to(path.name)
        elif kind == "pickle":
            path.write_bytes(pickle_bytes(self.marker))
        elif kind == "garbage":
            path.write_bytes(data + bytes(self.rng.randrange(256) for _ in range(64)))
        else:
            at = self.rng.randrange(len(data) + 1)
            path.write_bytes(data[:at] + b"\xff\xfe\xc3\x28" + data[at:])

    # -- JSON -----------------------------------------------------------------------------

    def mutate_json_value(self, data: Any) -> Any:
        """``data`` with one node replaced, deleted or wrapped (may return a new root)."""
        nodes: list[tuple[Any, Any]] = [(None, None)]  # (container, key); (None, None) = root

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for key, item in value.items():
                    nodes.append((value, key))
                    walk(item)
            elif isinstance(value, list):
                for key, item in enumerate(value[:40]):
                    nodes.append((value, key))
                    walk(item)

        walk(data)
        container, key = self.rng.choice(nodes)
        action = self.rng.choice(["replace"] * 6 + ["delete", "wrap", "deep"])
        value = self.rng.choice(WEIRD_VALUES)
        if action == "deep":
            value = DEEP
        self.note(f"json {action} {key!r} -> {str(value)[:40]!r}")
        if container is None:
            return value if action != "wrap" else [data]
        if action == "delete":
            if isinstance(container, dict):
                del container[key]
            else:
                container.pop(key)
        elif action == "wrap":
            container[key] = [container[key]]
        else:
            container[key] = value
        return data

    def json_text(self, data: Any) -> str:
        text = json.dumps(data)
        depth = 100_000
        return text.replace(f'"{DEEP}"', "[" * depth + "]" * depth)

    def mutate_json_file(self, path: Path) -> None:
        data = json.loads(path.read_text())
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            data = self.mutate_json_value(data)
        path.write_text(self.json_text(data))

    # -- text of numbers (SRN) ---------------------------------------------------------------

    def mutate_text_numbers(self, path: Path) -> None:
        lines = path.read_text().splitlines()
        tokens = [(i, j) for i, line in enumerate(lines) for j, _ in enumerate(line.split())]
        action = self.rng.choice(["token", "token", "token", "drop-token", "drop-line", "scale"])
        self.note(f"text {action} {path.relative_to(self.case)}")
        if action == "drop-line" and lines:
            lines.pop(self.rng.randrange(len(lines)))
        elif tokens:
            i, j = self.rng.choice(tokens)
            words = lines[i].split()
            if action == "drop-token":
                words.pop(j)
            elif action == "scale":
                words[j] = repr(float(words[j]) * self.rng.choice([1e6, 1e40, -1, 1e-9, 3]))
            else:
                words[j] = self.rng.choice(WEIRD_TOKENS)
            lines[i] = " ".join(words)
        path.write_text("\n".join(lines) + "\n")

    # -- images ---------------------------------------------------------------------------

    def image_bytes(self, original: bytes) -> bytes:
        with Image.open(io.BytesIO(original)) as image:
            width, height = image.size
        kind = self.rng.choice(
            ["16-bit", "huge-header", "wrong-size", "grey", "palette", "rgba", "truncate",
             "32-bit", "zero-size-header"]
        )  # fmt: skip
        self.note(f"image {kind}")
        rng = np.random.default_rng(self.rng.randrange(2**32))
        if kind == "16-bit":
            return png_bytes(rng.integers(0, 65536, (height, width), dtype=np.uint16))
        if kind == "32-bit":
            return png_bytes(rng.integers(0, 65536, (height, width)).astype(np.int32))
        if kind == "huge-header":
            side = self.rng.choice([100_000, 2**31 - 1, 30_000])
            return huge_png_header(side, side)
        if kind == "zero-size-header":
            return huge_png_header(0, height)
        if kind == "wrong-size":
            return png_bytes(rng.integers(0, 256, (height + 1, width, 3), dtype=np.uint8))
        if kind == "grey":
            return png_bytes(rng.integers(0, 256, (height, width), dtype=np.uint8))
        if kind == "palette":
            image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
            buffer = io.BytesIO()
            image.convert("P").save(buffer, format="PNG", transparency=0)
            return buffer.getvalue()
        if kind == "rgba":
            return png_bytes(rng.integers(0, 256, (height, width, 4), dtype=np.uint8))
        return original[: self.rng.randrange(max(len(original), 1))]

    def mutate_image_file(self, path: Path) -> None:
        self.note(f"image file {path.relative_to(self.case)}")
        path.write_bytes(self.image_bytes(path.read_bytes()))

    # -- safetensors ----------------------------------------------------------------------

    def mutate_safetensors(self, path: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        key = self.rng.choice(sorted(tensors))
        action = self.rng.choice(
            ["dtype", "nan", "inf", "shape", "delete", "extra", "huge", "metadata", "mask-ids"]
        )
        self.note(f"safetensors {action} {key} in {path.relative_to(self.case)}")
        value = tensors[key]
        if action == "dtype":
            choices = [torch.float64, torch.float16, torch.int32, torch.uint8, torch.bool]
            tensors[key] = value.to(self.rng.choice([d for d in choices if d != value.dtype]))
        elif action in ("nan", "inf", "huge") and value.numel():
            flat = value.clone().reshape(-1)
            if flat.is_floating_point():
                flat[self.rng.randrange(flat.numel())] = {
                    "nan": math.nan, "inf": -math.inf, "huge": 3e38
                }[action]  # fmt: skip
            else:
                flat[self.rng.randrange(flat.numel())] = 255 if flat.dtype == torch.uint8 else 1
            tensors[key] = flat.reshape(value.shape)
        elif action == "mask-ids" and value.dtype == torch.uint8:
            tensors[key] = torch.full_like(value, 200)
        elif action == "shape" and value.numel() > 1:
            tensors[key] = value.reshape(-1)[:-1].clone()
        elif action == "delete":
            del tensors[key]
        elif action == "extra":
            tensors[key + "x"] = torch.zeros(2)
        elif action == "metadata" and metadata:
            name = self.rng.choice(sorted(metadata))
            try:
                mutated = self.json_text(self.mutate_json_value(json.loads(metadata[name])))
            except ValueError:
                mutated = "{"
            metadata = {**metadata, name: mutated}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)

    # -- TFRecord -------------------------------------------------------------------------

    def mutate_tfrecord(self, path: Path) -> None:
        from nerfvae.data.importers.tfrecord import iter_tfrecord, parse_example

        records = [parse_example(record) for record in iter_tfrecord(path)]
        record = self.rng.choice(records)
        action = self.rng.choice(["camera", "camera", "frame", "drop-frame", "cameras-count",
                                  "feature-type", "empty"])  # fmt: skip
        self.note(f"tfrecord {action} in {path.relative_to(self.case)}")
        cameras = np.asarray(record["cameras"], np.float64)
        frames = list(record["frames"])
        if action == "camera":
            cameras[self.rng.randrange(cameras.size)] = self.rng.choice(
                [math.nan, math.inf, -math.inf, 3e38, 1e30, 1e7, -0.0, 1e-40]
            )
        elif action == "frame":
            index = self.rng.randrange(len(frames))
            frames[index] = self.image_bytes(frames[index])
        elif action == "drop-frame":
            frames.pop()
        elif action == "cameras-count":
            cameras = cameras[:-1]
        elif action == "empty":
            frames = []
        features = {
            "frames": ("bytes", frames),
            "cameras": ("float", [float(np.float32(c)) for c in cameras]),
        }
        if action == "feature-type":
            features["cameras"] = ("int64", [1] * cameras.size)
        encoded = []
        for item in records:
            if item is record:
                encoded.append(encode_example(features))
            else:
                encoded.append(
                    encode_example(
                        {
                            "frames": ("bytes", list(item["frames"])),
                            "cameras": ("float", np.asarray(item["cameras"]).tolist()),
                        }
                    )
                )
        path.write_bytes(b"".join(frame_record(data) for data in encoded))


def _files(root: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not path.is_symlink()
        and (suffixes is None or path.suffix in suffixes)
    )


def mutate_case(entry: str, case: Path, rng: random.Random, marker: Path) -> list[str]:
    """Apply one to three mutations fitting ``entry`` to the copy ``case``; returns their notes."""
    mutator = Mutator(rng, case, marker)
    # (how to mutate, which files, weight); "pickle" plants pickles across the case
    kinds: list[tuple[Callable[[Path], None], tuple[str, ...] | None, int]] = [
        (mutator.mutate_file, None, 1),
        (mutator.mutate_json_file, (".json",), 4),
        (mutator.mutate_image_file, (".png", ".jpg"), 2),
        (mutator.mutate_safetensors, (".safetensors",), 3),
        (mutator.mutate_text_numbers, (".txt",), 3),
        (mutator.mutate_tfrecord, (".tfrecord",), 4),
    ]
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        options = [(mutate, files) for mutate, suffixes, weight in kinds
                   if (files := _files(case, suffixes)) for _ in range(weight)]  # fmt: skip
        if not options:
            break
        try:
            if rng.random() < 0.05:
                plant_pickle(mutator, case)
            else:
                mutate, files = rng.choice(options)
                mutate(rng.choice(files))
        except Exception:  # e.g. a JSON mutation of a file an earlier mutation made binary
            mutator.note("(mutation did not apply to an already mutated file)")
    if entry in ("dataset", "run") and rng.random() < 0.6:
        reseal(entry, case, mutator)
    return mutator.done


def plant_pickle(mutator: Mutator, case: Path) -> None:
    """Pickles under the names a careless loader might try: beside the checkpoints and shards,
    and as the tensor file a checkpoint record names (with its SHA-256)."""
    mutator.note("plant pickles")
    payload = pickle_bytes(mutator.marker)
    for directory in [case, *[p for p in case.rglob("*") if p.is_dir() and not p.is_symlink()]]:
        for name in ("model.pt", "model.pkl", "weights.npy", "evil.safetensors"):
            (directory / name).write_bytes(payload)
    for record_path in case.rglob("step_*.json"):
        try:
            record = json.loads(record_path.read_text())
            record["tensors_file"] = mutator.rng.choice(
                ["evil.safetensors", "model.pt", "../model.pt"]
            )
            record["sha256"] = _sha256(payload)
            record_path.write_text(json.dumps(record))
        except (ValueError, OSError, TypeError):
            pass


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def reseal(entry: str, case: Path, mutator: Mutator) -> None:
    """Make the checksums agree again so a mutation reaches the code behind them: the SHA-256 of
    a checkpoint's tensors, the shard sizes of dataset.json."""
    mutator.note("reseal")
    if entry == "run":
        for record_path in case.rglob("step_*.json"):
            try:
                record = json.loads(record_path.read_text())
                tensors = record_path.parent / record["tensors_file"]
                record["sha256"] = _sha256(tensors.read_bytes())
                record_path.write_text(json.dumps(record))
            except (ValueError, OSError, TypeError, KeyError, RecursionError):
                pass
        return
    meta_path = case / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text())
        for split in meta["splits"].values():
            for shard in split["shards"]:
                shard["num_bytes"] = (case / shard["file"]).stat().st_size
        meta_path.write_text(json.dumps(meta))
    except (ValueError, OSError, TypeError, KeyError, AttributeError, RecursionError):
        pass


# ---------------------------------------------------------------------------------------------
# Entry points and the invariants of what they accept
# ---------------------------------------------------------------------------------------------


class Broken(AssertionError):
    """An accepted input whose loaded values break an invariant."""


def expect(condition: bool, problem: str) -> None:
    if not condition:
        raise Broken(problem)


def check_dataset_invariants(root: Path) -> None:
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.data.storage import read_meta
    from nerfvae.geometry import check_cameras

    meta = read_meta(root)
    lo, hi = meta.scene_bounds
    expect(all(math.isfinite(v) for v in (*lo, *hi)), f"scene bounds not finite: {lo} {hi}")
    expect(all(a < b for a, b in zip(lo, hi)), f"scene bounds not min < max: {lo} {hi}")
    expect(math.isfinite(meta.far) and 0 <= meta.near < meta.far, "near/far out of range")
    expect(meta.world_up in ("+x", "-x", "+y", "-y", "+z", "-z"), "world_up invalid")
    for split in meta.splits:
        dataset = MultiSceneDataset(root, split)
        for index in range(len(dataset)):
            scene = dataset.load_scene(index)
            views = dataset.num_id_views + dataset.num_ood_views
            shape = (views, meta.image_height, meta.image_width, 3)
            expect(scene.images.dtype == torch.uint8, f"images dtype {scene.images.dtype}")
            expect(tuple(scene.images.shape) == shape, f"images {tuple(scene.images.shape)}")
            expect(bool(torch.isfinite(scene.K).all() and torch.isfinite(scene.c2w).all()), "NaN")
            try:
                check_cameras(scene.K, scene.c2w, image_size=(meta.image_height, meta.image_width))
            except ValueError as error:
                raise Broken(f"cameras accepted but invalid: {error}") from None
            if scene.object_mask is not None:
                expect(scene.object_mask.dtype == torch.uint8, "mask dtype")
                expect(int(scene.object_mask.max()) <= len(scene.objects), "mask id > objects")
            if scene.depth is not None:
                expect(bool(torch.isfinite(scene.depth).all()), "depth not finite")


def run_import(format_name: str, case: Path, out: Path) -> None:
    from nerfvae.data.importers import ImportOptions, import_dataset

    import_dataset(
        format_name,
        case,
        out,
        ImportOptions(views=None),
        progress=False,
        log=lambda message: None,
    )
    check_dataset_invariants(out)


def run_loader(case: Path) -> None:
    from nerfvae.models.base import SceneModel  # noqa: F401  (model classes registered)
    from nerfvae.training.loading import build_model, load_trained_model

    model, config, record = load_trained_model(case)
    config.check()
    fresh = build_model(config).state_dict()
    for name, value in model.state_dict().items():
        expect(value.dtype == fresh[name].dtype, f"{name} has dtype {value.dtype}")
        if value.is_floating_point():
            expect(bool(torch.isfinite(value).all()), f"{name} holds NaN or inf")
    expect(isinstance(record.get("step"), int), "record step is not an integer")


def run_entry(entry: str, case: Path, out: Path) -> None:
    if entry.startswith("import-"):
        run_import(entry.removeprefix("import-"), case, out)
    elif entry == "dataset":
        check_dataset_invariants(case)
    else:
        run_loader(case)


class Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise Hang()


def classify(entry: str, case: Path, out: Path) -> tuple[str, str]:
    """Run one case; returns (outcome, detail)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        run_entry(entry, case, out)
    except Hang:
        return "hang", f"no result in {CASE_SECONDS} s"
    except Broken as error:
        return "invariant break", str(error)
    except NerfVAEError as error:
        message = str(error)
        if "\n" in message:
            return "invariant break", f"message is not one line: {message!r}"
        if str(case) not in message:
            return "invariant break", f"message names no source file: {message}"
        return "clean error", message
    except Exception:
        return "raw traceback", traceback.format_exc(limit=-4)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return "accepted", ""


def run_campaign(templates: dict[str, Path], work: Path, cases: int, seed: int = 0):
    counts = {entry: collections.Counter() for entry in ENTRY_POINTS}
    failures: list[str] = []
    marker = work / "UNPICKLED"
    for number in range(cases):
        entry = ENTRY_POINTS[number % len(ENTRY_POINTS)]
        rng = random.Random(seed * 1_000_003 + number)
        case = (work / f"case{number:05d}").resolve()
        shutil.copytree(templates[entry], case, symlinks=True)
        notes = mutate_case(entry, case, rng, marker)
        outcome, detail = classify(entry, case, work / f"out{number:05d}")
        counts[entry][outcome] += 1
        if outcome in ("raw traceback", "hang", "invariant break"):
            failures.append(f"case {number} {entry} {notes}: {outcome}: {detail}")
        assert not marker.exists(), f"case {number} {entry} {notes}: a planted pickle was loaded"
        for path in (case, work / f"out{number:05d}"):
            _remove(path)
    return counts, failures


def _remove(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    for child in path.rglob("*"):  # make every directory writable and deletable
        if child.is_dir() and not child.is_symlink():
            os.chmod(child, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def report(counts: dict[str, collections.Counter], seconds: float) -> str:
    lines = [f"{'entry point':<18}" + "".join(f"{name:>17}" for name in OUTCOMES)]
    for entry, counter in counts.items():
        lines.append(f"{entry:<18}" + "".join(f"{counter[name]:>17}" for name in OUTCOMES))
    total = collections.Counter()
    for counter in counts.values():
        total.update(counter)
    lines.append(f"{'total':<18}" + "".join(f"{total[name]:>17}" for name in OUTCOMES))
    lines.append(f"{sum(total.values())} cases in {seconds:.0f} s")
    return "\n".join(lines)


def test_fuzz_every_reader(templates, tmp_path, request, capsys):
    option = request.config.getoption("--fuzz-cases")
    cases = DEFAULT_CASES if option is None else option
    start = time.perf_counter()
    counts, failures = run_campaign(templates, tmp_path, cases)
    summary = report(counts, time.perf_counter() - start)
    if option is not None:
        with capsys.disabled():
            print("\n" + summary)
            for failure in failures[:30]:
                print(failure)
    assert not failures, summary + "\n" + "\n".join(failures[:10])
    accepted = sum(counter["accepted"] for counter in counts.values())
    errors = sum(counter["clean error"] for counter in counts.values())
    assert accepted and errors  # the mutations reach both outcomes


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    from nerfvae.data.importers.common import decode_image

    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    decoded = decode_image(png_bytes(values), "test image")
    assert decoded.dtype == np.uint8 and decoded.shape == (1, 4, 3)
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 1, 128, 255])


def test_huge_image_header_is_refused_before_decoding():
    from nerfvae.data.importers.common import decode_image

    with pytest.raises(NerfVAEError, match=r"frame 3: image size 100000x100000 .* out of range"):
        decode_image(huge_png_header(100_000, 100_000), "frame 3")


def test_planted_pickle_is_never_loaded(templates, tmp_path):
    marker = tmp_path / "UNPICKLED"
    run = shutil.copytree(templates["run"], tmp_path / "run")
    plant_pickle(Mutator(random.Random(1), run, marker), run)
    with pytest.raises(NerfVAEError, match=r"tensors_file|corrupt|plain file|cannot be read"):
        run_loader(run)
    assert not marker.exists()
