"""How close scenes sampled from a prior are to real scenes, measured with nothing downloaded.

Two measures, both built from the dataset itself:

* **Fréchet distance of learned features** (:func:`score_latents`). A small CNN
  (:class:`FeatureNetwork`) is trained on the train split's views to predict what the generator
  recorded for each scene (``SceneRecord.objects``): its object count and which palette colours
  and shapes it holds. Its penultimate layer is the feature space. Sample ``i`` is rendered from
  the held-out cameras of test scene ``i mod S``, and the features of the renders are compared with
  those of the real views from the same cameras (:func:`nerfvae.statistics.frechet_distance`).
  The network trains in a few minutes on one CPU thread and is cached beside the run
  (``RUN/sample_quality_features.safetensors``) with the sha256 of the dataset's
  ``dataset.json``; its held-out accuracy is part of its record, so a reader can tell whether its
  features see objects at all. Unlike Inception features (FID) they know this dataset and nothing
  else, and a Fréchet distance depends on the number of feature vectors, so values compare only
  with the same network and set sizes: :func:`real_view_floor` gives the distance between two sets
  of *real* views of those sizes (the noise floor).
* **Objects counted in the 3D field** (:func:`count_objects`): density on a grid above the floor
  and inside the walls, each voxel's opacity thresholded, projected onto the ground plane,
  connected components above a minimum area; each one's colour is the field's colour at its top
  surface seen from above, named by the nearest palette colour. It reads the geometry, not the
  pixels, so it tells a room with three objects from a murky room of the same mean colour.
  :func:`calibrate_counter` runs it on posterior means of real test scenes, whose true counts
  are known: how far to trust its counts of samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from nerfvae.data.rooms import MAX_OBJECTS, PALETTE, SHAPES
from nerfvae.data.storage import META_FILENAME
from nerfvae.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    check_config_fields,
    check_range,
)
from nerfvae.evaluation.aggregate_prior import posterior_means
from nerfvae.models import RaySceneModel, SceneModel
from nerfvae.statistics import frechet_distance
from nerfvae.visualise import render_latents

FEATURES_FILE = "sample_quality_features.safetensors"
"""Where the samples experiment caches the feature network: in the run directory."""
FEATURES_FORMAT = "nerfvae-sample-quality-features"
COLOUR_NAMES: tuple[str, ...] = tuple(PALETTE)
"""The generator's palette, in its order: the colour labels and the counter's colour names."""
COUNT_CLASSES = MAX_OBJECTS + 1
"""Object counts the feature network classifies: 0..MAX_OBJECTS."""
COUNT_BINS: tuple[str, ...] = (*(str(n) for n in range(MAX_OBJECTS + 1)), f"{MAX_OBJECTS + 1}+")
"""Bins of the object-count histograms: one per count the generator makes, then one for more."""

DensityColourFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(points [P, 3], directions [P, 3]) -> (density [P], colour [P, 3])``: one scene's field."""
PriorSampler = Callable[[int, torch.Generator], torch.Tensor]
"""``(count, generator) -> latents [count, T, C]``: a prior to score."""


# ---------------------------------------------------------------------------------------------
# The feature network


@dataclass(frozen=True)
class FeatureNetworkConfig:
    """The feature network of the sample-quality measure and how it is trained."""

    channels: tuple[int, ...] = (32, 64, 96, 128)
    """Output channels of the convolution stages; each stage halves the image size."""
    feature_dim: int = 64
    """Width of the penultimate layer, whose activations are the features."""
    steps: int = 1500
    """Optimiser steps (batches of views)."""
    batch_size: int = 48
    """Views per batch."""
    learning_rate: float = 2e-3
    """AdamW learning rate, decayed to zero along a cosine over the steps (or the time budget)."""
    time_budget_s: float = 300.0
    """Training stops after this many seconds even when steps remain, so the default measure
    takes a few minutes on a slow machine too; the learning rate decays over whichever of steps
    and time runs out first, and the record says how many steps were taken."""
    max_scenes: int = 1000
    """Train on the first N scenes of the train split (all their ID views), and measure the
    held-out accuracy on at most N scenes; bounds memory (1,000 scenes of ten 64×64 views are
    120 MB of images)."""
    seed: int = 0
    """Seed of the initial weights, the batches and the flips."""

    def check(self, where: str = "features") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        check_range(
            0 < len(self.channels) <= 8 and all(1 <= c <= 1024 for c in self.channels),
            where,
            "channels",
            "1 to 8 stage widths in 1..1024",
            self.channels,
        )
        check_range(
            1 <= self.feature_dim <= 1024, where, "feature_dim", "in 1..1024", self.feature_dim
        )
        check_range(self.steps >= 1, where, "steps", ">= 1", self.steps)
        check_range(self.batch_size >= 1, where, "batch_size", ">= 1", self.batch_size)
        check_range(self.learning_rate > 0, where, "learning_rate", "> 0", self.learning_rate)
        check_range(self.time_budget_s > 0, where, "time_budget_s", "> 0", self.time_budget_s)
        check_range(self.max_scenes >= 1, where, "max_scenes", ">= 1", self.max_scenes)


class MeanMaxPool(nn.Module):
    """``[N, C, H, W] -> [N, 2C]``: the mean and the maximum of each channel over the image. The
    maximum says whether something (an object of a colour) appears anywhere, which averaging
    over a room's walls and floor dilutes (with it the network learns counts twice as fast)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([features.mean((2, 3)), features.amax((2, 3))], dim=1)


class FeatureNetwork(nn.Module):
    """A small CNN over images of any size: per stage a stride-2 and a stride-1 3×3 convolution
    (BatchNorm, ReLU), then global mean and max pooling (:class:`MeanMaxPool`), a linear layer to
    ``feature_dim`` (the features), and three heads (ReLU, linear): object count (``COUNT_CLASSES``
    logits), palette colours present (``len(COLOUR_NAMES)`` logits) and shapes present
    (``len(SHAPES)`` logits)."""

    def __init__(self, config: FeatureNetworkConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = 3
        for channels in config.channels:
            # BatchNorm trains this network about twice as fast as GroupNorm in the few minutes it
            # gets; features are taken in eval mode, where its statistics are fixed, so a view's
            # features do not depend on the batch it comes in.
            layers += [
                nn.Conv2d(width, channels, 3, stride=2, padding=1),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 3, padding=1),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
            width = channels
        self.trunk = nn.Sequential(
            *layers,
            MeanMaxPool(),
            nn.Linear(2 * width, config.feature_dim),
        )
        # The features are taken before the heads' ReLU: a ReLU'd feature layer leaves units
        # that are zero for every image (no information, a singular covariance).
        self.count_head = nn.Sequential(nn.ReLU(), nn.Linear(config.feature_dim, COUNT_CLASSES))
        self.colour_head = nn.Sequential(
            nn.ReLU(), nn.Linear(config.feature_dim, len(COLOUR_NAMES))
        )
        self.shape_head = nn.Sequential(nn.ReLU(), nn.Linear(config.feature_dim, len(SHAPES)))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``[N, feature_dim]`` of images ``[N, H, W, 3]`` in [0, 1]."""
        return self.trunk(images.permute(0, 3, 1, 2) * 2.0 - 1.0)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of images ``[N, H, W, 3]`` in [0, 1]: ``count [N, COUNT_CLASSES]``,
        ``colours [N, len(COLOUR_NAMES)]``, ``shapes [N, len(SHAPES)]``."""
        features = self.features(images)
        return {
            "count": self.count_head(features),
            "colours": self.colour_head(features),
            "shapes": self.shape_head(features),
        }


@torch.no_grad()
def image_features(
    network: FeatureNetwork, images: torch.Tensor, batch_size: int = 256
) -> np.ndarray:
    """Features ``[N, feature_dim]`` (float64) of images ``[N, H, W, 3]``: uint8, or floats in
    [0, 1] (quantised to 8 bits first, so renders go through the same path as stored views)."""
    network.eval()
    if images.dtype != torch.uint8:
        images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    chunks = [
        network.features(images[start : start + batch_size].float() / 255.0)
        for start in range(0, images.shape[0], batch_size)
    ]
    if not chunks:
        return np.zeros((0, network.config.feature_dim))
    return torch.cat(chunks).double().numpy()


def scene_labels(
    objects: Sequence[Mapping[str, Any]], where: str
) -> tuple[int, list[float], list[float]]:
    """The labels of one scene from its generator record: object count, and 0/1 per palette
    colour (``COLOUR_NAMES``) and per shape (``SHAPES``) present. DataError naming ``where`` for
    a colour or shape the generator does not make, or more than ``MAX_OBJECTS`` objects."""
    if len(objects) > MAX_OBJECTS:
        raise DataError(
            f"{where}: {len(objects)} objects; the generator makes at most {MAX_OBJECTS}"
        )
    colours, shapes = [0.0] * len(COLOUR_NAMES), [0.0] * len(SHAPES)
    for item in objects:
        colour, shape = item.get("colour_name"), item.get("shape")
        if colour not in COLOUR_NAMES or shape not in SHAPES:
            raise DataError(
                f"{where}: object with colour {colour!r} and shape {shape!r}; the generator's are "
                f"{', '.join(COLOUR_NAMES)} and {', '.join(SHAPES)}"
            )
        colours[COLOUR_NAMES.index(colour)] = 1.0
        shapes[SHAPES.index(shape)] = 1.0
    return len(objects), colours, shapes


def _labelled_views(dataset, max_scenes: int) -> dict[str, torch.Tensor]:
    """The ID views ``images [N, H, W, 3]`` (uint8) of the first ``max_scenes`` scenes of
    ``dataset`` with their scene's labels ``count [N]``, ``colours [N, 8]``, ``shapes [N, 3]``.
    ConfigError when no scene lists its objects (imported data: nothing to learn from)."""
    records = [dataset.load_scene(i) for i in range(min(max_scenes, len(dataset)))]
    if not any(record.objects for record in records):
        raise ConfigError(
            f"{dataset.root}: no scene of split {dataset.split!r} lists its objects (imported "
            "data?); the sample-quality measure needs a generated dataset (nerfvae data generate)"
        )
    images, counts, colours, shapes = [], [], [], []
    for record in records:
        count, colour, shape = scene_labels(
            record.objects, f"{dataset.root} {dataset.split} scene {record.scene_id}"
        )
        views = record.num_id_views
        images.append(record.images[:views])
        counts += [count] * views
        colours += [colour] * views
        shapes += [shape] * views
    return {
        "images": torch.cat(images),
        "count": torch.tensor(counts),
        "colours": torch.tensor(colours),
        "shapes": torch.tensor(shapes),
    }


def _losses(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> torch.Tensor:
    return (
        F.cross_entropy(logits["count"], labels["count"])
        + F.binary_cross_entropy_with_logits(logits["colours"], labels["colours"])
        + F.binary_cross_entropy_with_logits(logits["shapes"], labels["shapes"])
    )


@torch.no_grad()
def held_out_accuracy(network: FeatureNetwork, views: dict[str, torch.Tensor]) -> dict[str, Any]:
    """How well ``network`` predicts the labels of ``views`` (from :func:`_labelled_views`) beside
    the best constant guesses: ``count_accuracy`` (exact count) vs ``count_majority`` (always the
    most frequent count), ``colour_accuracy`` / ``shape_accuracy`` (mean over labels of the
    present/absent accuracy) vs ``colour_majority`` / ``shape_majority`` (each label's more
    frequent value), and ``views``."""
    network.eval()
    logits = [
        network(views["images"][start : start + 256].float() / 255.0)
        for start in range(0, views["images"].shape[0], 256)
    ]
    count = torch.cat([item["count"] for item in logits]).argmax(-1)
    result: dict[str, Any] = {
        "views": int(count.shape[0]),
        "count_accuracy": float((count == views["count"]).float().mean()),
        "count_majority": float(torch.bincount(views["count"]).max() / count.shape[0]),
    }
    for name in ("colours", "shapes"):
        predicted = torch.cat([item[name] for item in logits]) > 0
        truth = views[name] > 0.5
        frequency = truth.float().mean(0)
        key = name.removesuffix("s")
        result[f"{key}_accuracy"] = float((predicted == truth).float().mean())
        result[f"{key}_majority"] = float(torch.maximum(frequency, 1 - frequency).mean())
    return result


def dataset_fingerprint(data_root: str | Path) -> str:
    """SHA-256 of the dataset's ``dataset.json`` (its splits, shards' sizes and generator
    settings): what a cached feature network was trained on."""
    path = Path(data_root) / META_FILENAME
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None


def train_feature_network(
    data_root: str | Path,
    config: FeatureNetworkConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[FeatureNetwork, dict[str, Any]]:
    """Train :class:`FeatureNetwork` on the ID views of the train split of ``data_root`` (random
    horizontal flips: a mirrored room holds the same objects) and measure it on the val split (the
    test split when there is none). Returns the network (eval mode) and its record: the dataset
    fingerprint and split, the config, steps and seconds taken, and the held-out accuracy."""
    from nerfvae.data.loader import MultiSceneDataset

    config = config or FeatureNetworkConfig()
    config.check()
    train = MultiSceneDataset(data_root, "train")
    views = _labelled_views(train, config.max_scenes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = FeatureNetwork(config)
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    network.train()
    start, step, loss = time.perf_counter(), 0, math.nan
    while step < config.steps:
        elapsed = time.perf_counter() - start
        progress = max(step / config.steps, elapsed / config.time_budget_s)
        if progress >= 1.0:
            break
        for group in optimiser.param_groups:
            group["lr"] = config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))
        picks = torch.randint(0, views["count"].shape[0], (config.batch_size,), generator=generator)
        images = views["images"][picks].float() / 255.0
        flip = torch.rand(config.batch_size, generator=generator) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(2), images)
        labels = {name: views[name][picks] for name in ("count", "colours", "shapes")}
        loss_value = _losses(network(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss_value.backward()
        optimiser.step()
        loss = float(loss_value.detach())
        step += 1
        if log is not None and step % 250 == 0:
            log(f"feature network: step {step}/{config.steps}, loss {loss:.3f}")
    seconds = time.perf_counter() - start
    network.eval()
    held_out_split = next((s for s in ("val", "test") if s in train.meta.splits), None)
    accuracy = None
    if held_out_split is not None:
        held_out = MultiSceneDataset(data_root, held_out_split)
        accuracy = held_out_accuracy(network, _labelled_views(held_out, config.max_scenes))
    info = {
        "dataset_sha256": dataset_fingerprint(data_root),
        "split": "train",
        "dataset": str(data_root),
        "config": dataclasses.asdict(config),
        "training_views": int(views["count"].shape[0]),
        "steps": step,
        "seconds": round(seconds, 1),
        "final_loss": loss,
        "held_out_split": held_out_split,
        "held_out_accuracy": accuracy,
    }
    return network, info


def save_feature_network(path: str | Path, network: FeatureNetwork, info: dict[str, Any]) -> None:
    """Write the network's weights to ``path`` (safetensors, written to a temporary name and
    renamed) with its config and ``info`` as JSON metadata."""
    path = Path(path)
    metadata = {
        "format": FEATURES_FORMAT,
        "config": json.dumps(dataclasses.asdict(network.config)),
        "info": json.dumps(info),
    }
    tensors = {name: value.detach().contiguous() for name, value in network.state_dict().items()}
    temporary = path.with_name(path.name + ".tmp")
    save_file(tensors, str(temporary), metadata)
    temporary.replace(path)


def load_feature_network(path: str | Path) -> tuple[FeatureNetwork, dict[str, Any]]:
    """The network and record written by :func:`save_feature_network`; CheckpointError naming the
    file when it is unreadable, of another format, its config is invalid, its tensors do not fit
    that config or hold non-finite values."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        if metadata.get("format") != FEATURES_FORMAT:
            raise CheckpointError(
                f"{path}: not a sample-quality feature network (format {metadata.get('format')!r})"
            )
        fields = json.loads(metadata["config"])
        info = json.loads(metadata["info"])
        if not isinstance(fields, dict) or not isinstance(info, dict):
            raise CheckpointError(f"{path}: its metadata is not a JSON object")
        fields["channels"] = tuple(fields.get("channels", ()))
        config = FeatureNetworkConfig(**fields)
        config.check()
    except CheckpointError:
        raise
    except KeyError as error:
        raise CheckpointError(f"{path}: the feature network's metadata lacks {error}") from None
    except (SafetensorError, OSError, TypeError, ValueError) as error:
        # ValueError covers invalid JSON and the ConfigError of a bad config
        text = str(error) if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: cannot read the feature network ({text})") from None
    if not all(torch.isfinite(value).all() for value in tensors.values()):
        raise CheckpointError(f"{path}: the feature network holds NaN or infinite weights")
    network = FeatureNetwork(config)
    try:
        network.load_state_dict(tensors)
    except RuntimeError:
        raise CheckpointError(
            f"{path}: the feature network's tensors do not match its config {config}"
        ) from None
    network.eval()
    return network, info


def feature_network(
    path: str | Path,
    data_root: str | Path,
    config: FeatureNetworkConfig | None = None,
    retrain: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[FeatureNetwork, dict[str, Any], bool]:
    """The feature network cached at ``path`` when it was trained on this dataset (the sha256 of
    its ``dataset.json`` and the train split; its own config, whatever ``config`` says), else
    trained with ``config`` and saved there (always when ``retrain``). A cached network of
    another dataset is a CheckpointError: features of different networks are not comparable, so
    it is never replaced silently. Returns the network, its record and whether it was trained
    now."""
    path = Path(path)
    if path.exists() and not retrain:
        network, info = load_feature_network(path)
        expected = dataset_fingerprint(data_root)
        if info.get("dataset_sha256") != expected or info.get("split") != "train":
            found = str(info.get("dataset_sha256"))[:12]
            raise CheckpointError(
                f"{path}: the feature network was trained on another dataset (dataset.json "
                f"sha256 {found}…, split {info.get('split')!r}; {data_root} has "
                f"{expected[:12]}…); delete the file or retrain it (--refit-features)"
            )
        return network, info, False
    network, info = train_feature_network(data_root, config, log)
    save_feature_network(path, network, info)
    return network, info, True


# ---------------------------------------------------------------------------------------------
# The object counter


@dataclass(frozen=True)
class ObjectCounterConfig:
    """How objects are counted in a field (defaults for the built-in rooms, z up, metres)."""

    cell_size: float = 0.05
    """Grid spacing along x, y and z (metres); the field is queried at the cells' centres."""
    wall_margin: float = 1.0
    """Metres kept clear of the scene box's side faces (the walls). Generated objects stand
    within 1.75 m of the centre of a 6 m room, and a trained field's walls are hazy up to a metre
    into the room in the corners."""
    floor_margin: float = 0.2
    """Metres above the bottom of the box (the floor) where the grid starts: a trained field's
    floor is a hazy layer up to 0.2 m thick, and every generated object is at least 0.44 m
    tall."""
    top_margin: float = 0.5
    """Metres below the top of the box where the grid ends (the rooms' area light hangs just
    under it; generated objects are at most 0.9 m tall)."""
    opacity_threshold: float = 0.2
    """A voxel is occupied when its opacity ``1 − exp(−σ · cell_size)`` reaches this (0.2 at 5 cm
    cells: density 4.5 per metre). The shipped model's objects reach densities of 5–10 and the air
    above its floor stays below 0.5. Tuned on reconstructions of 30 val scenes (exact counts 80%,
    within 5 points of that from 0.18 to 0.25), not on the test scenes the calibration reports."""
    min_area: float = 0.03
    """Smallest ground-plane area (m²) of a component counted as an object (the smallest
    generated object covers 0.1 m²; specks of haze are smaller)."""
    chunk_points: int = 65536
    """Grid points per field query (bounds memory)."""

    def check(self, where: str = "counter") -> None:
        """Raise ConfigError naming the field if a value has the wrong type or is out of range."""
        check_config_fields(self, where)
        check_range(
            0 < self.cell_size <= 10, where, "cell_size", "in (0, 10] metres", self.cell_size
        )
        for name in ("wall_margin", "floor_margin", "top_margin", "min_area"):
            value = getattr(self, name)
            check_range(value >= 0, where, name, ">= 0", value)
        check_range(
            0 < self.opacity_threshold < 1,
            where,
            "opacity_threshold",
            "in (0, 1)",
            self.opacity_threshold,
        )
        check_range(self.chunk_points >= 1, where, "chunk_points", ">= 1", self.chunk_points)


@dataclass
class CountedObjects:
    """What :func:`count_objects` found in one field.

    Attributes:
        count: number of objects (components of at least ``min_area``).
        colours: palette name of each object (``COLOUR_NAMES``), largest object first.
        rgb: each object's median top-surface colour ``[count][3]`` in [0, 1].
        areas: ground-plane area of each object (m²).
        centres: ``(x, y)`` of each object's footprint centroid (metres).
        occupancy: ``[X, Y]`` bool ground-plane map (before the area filter).
        axes: the cell centres along x and y (``[X]``, ``[Y]``) of ``occupancy``.
    """

    count: int
    colours: list[str]
    rgb: list[list[float]]
    areas: list[float]
    centres: list[tuple[float, float]]
    occupancy: np.ndarray
    axes: tuple[np.ndarray, np.ndarray]


def _cell_centres(low: float, high: float, size: float) -> np.ndarray:
    """Centres of the whole cells of ``size`` that fit in ``[low, high]``, centred in it."""
    count = max(0, math.floor((high - low) / size + 1e-9))
    offset = low + 0.5 * ((high - low) - count * size)
    return offset + (np.arange(count) + 0.5) * size


def palette_names(rgb: np.ndarray) -> list[str]:
    """The nearest generator palette colour (``COLOUR_NAMES``) of each colour ``[K, 3]`` (sRGB in
    [0, 1], as rendered) by the angle between RGB vectors: lighting scales a surface's colour
    (shadow, the light's strength), which leaves its direction in RGB nearly unchanged. The
    palette is linear RGB; it is compared in sRGB (gamma 1/2.2), as images store it."""
    palette = np.array([PALETTE[name] for name in COLOUR_NAMES]) ** (1 / 2.2)
    palette /= np.linalg.norm(palette, axis=1, keepdims=True)
    colours = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    colours = colours / np.maximum(np.linalg.norm(colours, axis=1, keepdims=True), 1e-6)
    return [COLOUR_NAMES[i] for i in (colours @ palette.T).argmax(axis=1)]


def counter_axes(
    box_min: Sequence[float], box_max: Sequence[float], config: ObjectCounterConfig
) -> list[np.ndarray]:
    """The counter's cell centres along x, y and z (each ``[N_axis]``) in the box less the
    margins; ConfigError when the margins leave no cell."""
    low = np.asarray(box_min, dtype=np.float64)
    high = np.asarray(box_max, dtype=np.float64)
    margins_low = np.array([config.wall_margin, config.wall_margin, config.floor_margin])
    margins_high = np.array([config.wall_margin, config.wall_margin, config.top_margin])
    axes = [
        _cell_centres(low[i] + margins_low[i], high[i] - margins_high[i], config.cell_size)
        for i in range(3)
    ]
    if min(len(axis) for axis in axes) == 0:
        raise ConfigError(
            f"the object counter's margins leave no {config.cell_size:g} m cell inside the scene "
            f"box {low.tolist()} .. {high.tolist()}; lower counter.wall_margin, floor_margin or "
            "top_margin"
        )
    return axes


@torch.no_grad()
def count_objects(
    field: DensityColourFn,
    box_min: Sequence[float],
    box_max: Sequence[float],
    config: ObjectCounterConfig | None = None,
) -> CountedObjects:
    """Count the objects standing in one scene's ``field`` inside the box ``box_min .. box_max``
    (``(x, y, z)``, z up, the floor at ``box_min[2]``).

    The field is queried at the centres of cubic cells of ``config.cell_size`` filling the box
    less the margins (``chunk_points`` at a time, looking straight down). A cell is occupied when
    its opacity ``1 − exp(−σ Δ)`` reaches ``opacity_threshold``; a ground-plane cell is occupied
    when any cell above it is; 4-connected components of the ground plane of at least
    ``min_area`` are the objects. An object's colour is the median over its footprint of the
    field's colour at the highest occupied cell, named by :func:`palette_names`.
    """
    from scipy import ndimage

    config = config or ObjectCounterConfig()
    config.check()
    axes = counter_axes(box_min, box_max, config)
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)  # [X, Y, Z, 3]
    points = torch.from_numpy(grid.reshape(-1, 3)).float()
    down = torch.tensor([0.0, 0.0, -1.0]).expand(config.chunk_points, 3)
    densities, colours = [], []
    for start in range(0, points.shape[0], config.chunk_points):
        chunk = points[start : start + config.chunk_points]
        density, colour = field(chunk, down[: chunk.shape[0]])
        densities.append(density.float().cpu().reshape(-1))
        colours.append(colour.float().cpu().reshape(-1, 3))
    shape = grid.shape[:3]
    density = torch.cat(densities).reshape(shape).numpy()
    colour = torch.cat(colours).reshape(*shape, 3).numpy()
    opacity = 1.0 - np.exp(-np.clip(density, 0.0, None) * config.cell_size)
    occupied = opacity >= config.opacity_threshold  # [X, Y, Z]
    occupancy = occupied.any(axis=-1)  # [X, Y]
    labels, found = ndimage.label(occupancy)
    cell_area = config.cell_size**2
    areas = np.bincount(labels.ravel(), minlength=found + 1)[1:] * cell_area
    kept = [k + 1 for k in np.argsort(-areas, kind="stable") if areas[k] >= config.min_area]
    # the highest occupied cell of each column (its top surface seen from above)
    top = shape[2] - 1 - np.argmax(occupied[..., ::-1], axis=-1)  # [X, Y]
    top_colour = np.take_along_axis(colour, top[..., None, None], axis=2)[:, :, 0]  # [X, Y, 3]
    rgb, centres = [], []
    for label in kept:
        cells = labels == label
        rgb.append(np.median(top_colour[cells], axis=0))
        xs, ys = np.nonzero(cells)
        centres.append((float(axes[0][xs].mean()), float(axes[1][ys].mean())))
    names = palette_names(np.array(rgb)) if rgb else []
    return CountedObjects(
        count=len(kept),
        colours=names,
        rgb=[[round(float(c), 4) for c in row] for row in rgb],
        areas=[round(float(areas[label - 1]), 4) for label in kept],
        centres=centres,
        occupancy=occupancy,
        axes=(axes[0], axes[1]),
    )


def model_field(model: RaySceneModel, latent: torch.Tensor) -> DensityColourFn:
    """One scene's field ``latent [1, T, C]`` of a ray model as a :data:`DensityColourFn` (through
    the model contract's ``field``, on the model's device, without gradients)."""
    if latent.ndim != 3 or latent.shape[0] != 1:
        raise ValueError(f"expected one scene's latent [1, T, C], got {tuple(latent.shape)}")
    device = model.scene_min.device
    with torch.no_grad():  # the field decodes the latent once, for rendering without gradients
        field = model.field(latent.to(device))

    @torch.no_grad()
    def query(points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        density, colour = field(points[None].to(device), directions[None].to(device))
        return density[0].float().cpu(), colour[0].float().cpu()

    return query


def count_latent_objects(
    model: RaySceneModel, latent: torch.Tensor, config: ObjectCounterConfig | None = None
) -> CountedObjects:
    """:func:`count_objects` in the field of ``latent [1, T, C]`` over the model's scene box."""
    return count_objects(
        model_field(model, latent), model.scene_min.tolist(), model.scene_max.tolist(), config
    )


def counter_agreement(
    true_objects: Sequence[Sequence[Mapping[str, Any]]],
    counts: Sequence[int],
    colours: Sequence[Sequence[str]],
) -> dict[str, Any]:
    """How the counter's ``counts`` and ``colours`` of N scenes agree with the scenes' true
    ``objects`` lists: ``exact_match`` (fraction of scenes counted right), ``mean_absolute_error``
    and ``mean_error`` (counted − true: the bias) of the count, ``colour_recall`` (fraction of the
    true objects whose colour is among the counted ones, as multisets) and ``colour_precision``
    (fraction of the counted objects whose colour is among the true ones)."""
    if not len(true_objects) == len(counts) == len(colours):
        raise ValueError("counter_agreement needs one count and colour list per scene")
    truth = np.array([len(objects) for objects in true_objects])
    counted = np.array(counts)
    matched = sum(
        sum((Counter(named) & Counter(o["colour_name"] for o in objects)).values())
        for named, objects in zip(colours, true_objects)
    )
    true_total, counted_total = int(truth.sum()), int(counted.sum())
    return {
        "scenes": len(truth),
        "exact_match": float((truth == counted).mean()) if len(truth) else math.nan,
        "mean_absolute_error": float(np.abs(counted - truth).mean()) if len(truth) else math.nan,
        "mean_error": float((counted - truth).mean()) if len(truth) else math.nan,
        "colour_recall": matched / true_total if true_total else math.nan,
        "colour_precision": matched / counted_total if counted_total else math.nan,
        "true_counts": truth.tolist(),
        "counted": counted.tolist(),
    }


def count_histogram(counts: Sequence[int]) -> dict[str, float]:
    """Fraction of scenes per object count (``COUNT_BINS``; the last bin holds all larger
    counts)."""
    bins = np.minimum(np.asarray(counts, dtype=np.int64), len(COUNT_BINS) - 1)
    frequency = np.bincount(bins, minlength=len(COUNT_BINS)) / max(len(bins), 1)
    return {name: float(value) for name, value in zip(COUNT_BINS, frequency)}


def colour_histogram(colours: Sequence[Sequence[str]]) -> dict[str, float]:
    """Fraction of all objects per palette colour (``COLOUR_NAMES``), over scenes' colour lists."""
    tally = Counter(name for names in colours for name in names)
    total = max(sum(tally.values()), 1)
    return {name: tally[name] / total for name in COLOUR_NAMES}


def generator_statistics(dataset, scenes: int | None = None) -> dict[str, Any]:
    """What the generator made in the first ``scenes`` scenes of ``dataset`` (default: all): the
    histograms the counter's are compared with (``count_histogram``, ``empty_fraction``,
    ``mean_count``, ``colour_histogram``, ``shape_fraction``: fraction of objects per shape)."""
    total = len(dataset) if scenes is None else min(scenes, len(dataset))
    objects = [dataset.load_scene(i).objects for i in range(total)]
    counts = [len(items) for items in objects]
    shapes = Counter(item.get("shape") for items in objects for item in items)
    return {
        "scenes": total,
        "count_histogram": count_histogram(counts),
        "empty_fraction": float(np.mean([count == 0 for count in counts])),
        "mean_count": float(np.mean(counts)),
        "colour_histogram": colour_histogram(
            [[item.get("colour_name") for item in items] for items in objects]
        ),
        "shape_fraction": {name: shapes[name] / max(sum(counts), 1) for name in SHAPES},
    }


# ---------------------------------------------------------------------------------------------
# Scoring latents against real views


@dataclass
class RealViews:
    """The real views that sampled latents are rendered at and compared with: ``views`` held-out
    ID views of each of the first scenes of a split (sample ``i`` takes scene ``i mod S``'s).

    Attributes:
        images: ``[S, V, H, W, 3]`` uint8.
        K: ``[S, V, 3, 3]``; c2w: ``[S, V, 4, 4]``.
        view_indices: the views' indices in each scene.
        objects: each scene's generator record (its ``objects`` list).
        scene_ids: each scene's id.
    """

    images: torch.Tensor
    K: torch.Tensor
    c2w: torch.Tensor
    view_indices: list[int]
    objects: list[list[dict[str, Any]]]
    scene_ids: list[str]

    @property
    def num_scenes(self) -> int:
        return int(self.images.shape[0])


def real_views(dataset, scenes: int, views: int = 3, first_view: int = 3) -> RealViews:
    """ID views ``first_view .. first_view + views - 1`` of the first ``scenes`` scenes of
    ``dataset`` (the views after the ``first_view`` context views that infer posteriors);
    ConfigError when the split has fewer scenes or ID views."""
    if scenes < 1 or views < 1 or first_view < 0:
        raise ConfigError(
            f"real views: need at least one scene and one view, got {scenes} and {views}"
        )
    if scenes > len(dataset):
        raise ConfigError(
            f"{dataset.root}: split {dataset.split!r} has {len(dataset)} scenes, {scenes} asked for"
        )
    if first_view + views > dataset.num_id_views:
        raise ConfigError(
            f"{dataset.root}: split {dataset.split!r} has {dataset.num_id_views} ID views per "
            f"scene; views {first_view}..{first_view + views - 1} asked for"
        )
    indices = list(range(first_view, first_view + views))
    records = [dataset.load_scene(i) for i in range(scenes)]
    return RealViews(
        images=torch.stack([record.images[indices] for record in records]),
        K=torch.stack([record.K[indices] for record in records]),
        c2w=torch.stack([record.c2w[indices] for record in records]),
        view_indices=indices,
        objects=[list(record.objects) for record in records],
        scene_ids=[record.scene_id for record in records],
    )


def reference_features(network: FeatureNetwork, reference: RealViews) -> np.ndarray:
    """Features ``[S * V, D]`` of all the real views of ``reference``."""
    return image_features(network, reference.images.flatten(0, 1))


def score_latents(
    model: SceneModel,
    latents: torch.Tensor,
    reference: RealViews,
    network: FeatureNetwork,
    counter: ObjectCounterConfig | None = None,
    real_features: np.ndarray | None = None,
) -> dict[str, Any]:
    """Score latents ``[N, T, C]``: each rendered (:func:`nerfvae.visualise.render_latents`) from
    the cameras of reference scene ``i mod S``; ``frechet_distance`` between the features of the
    ``N * V`` renders and those of the ``S * V`` real views (``real_features`` when computed
    already); with a ``counter`` and a ray model, ``counts`` and ``colours`` of each latent's
    objects (:func:`count_latent_objects`), else None."""
    height, width = reference.images.shape[2:4]
    renders = []
    for index in range(latents.shape[0]):
        scene = index % reference.num_scenes
        rendered = render_latents(
            model,
            latents[index : index + 1],
            reference.K[scene],
            reference.c2w[scene],
            height,
            width,
        )
        renders.append(rendered["colour"][0].float().cpu())
    if real_features is None:
        real_features = reference_features(network, reference)
    features = image_features(network, torch.cat(renders))
    result: dict[str, Any] = {
        "samples": int(latents.shape[0]),
        "renders": int(features.shape[0]),
        "frechet_distance": frechet_distance(features, real_features),
        "counts": None,
        "colours": None,
    }
    if counter is not None and isinstance(model, RaySceneModel):
        found = [
            count_latent_objects(model, latents[i : i + 1], counter)
            for i in range(latents.shape[0])
        ]
        result["counts"] = [item.count for item in found]
        result["colours"] = [item.colours for item in found]
    return result


def calibrate_counter(
    model: SceneModel,
    dataset,
    reference: RealViews,
    context_views: int,
    counter: ObjectCounterConfig,
    network: FeatureNetwork | None = None,
    real_features: np.ndarray | None = None,
) -> dict[str, Any]:
    """The counter on the posterior means of the reference scenes (the first scenes of
    ``dataset``, each inferred with ``model.infer`` from its first ``context_views`` ID views),
    whose true objects are known: :func:`counter_agreement` (exact-match rate, mean absolute
    error, bias, colour recall and precision) and the counts' histograms. With a ``network``, also
    the ``frechet_distance`` of the posterior means' renders at the reference cameras: what a prior
    whose samples were as good as reconstructions would score. Counting needs a ray model
    (ConfigError otherwise)."""
    if not isinstance(model, RaySceneModel):
        raise ConfigError("the object counter reads a radiance field; this model renders none")
    if not 1 <= context_views <= dataset.num_id_views:
        raise ConfigError(
            f"counter calibration: {context_views} context views asked for, the scenes have "
            f"{dataset.num_id_views} ID views"
        )
    means = posterior_means(model, dataset, reference.num_scenes, context_views)
    if network is not None:
        scored = score_latents(model, means, reference, network, counter, real_features)
        counts, colours = scored["counts"], scored["colours"]
    else:
        found = [count_latent_objects(model, means[i : i + 1], counter) for i in range(len(means))]
        counts, colours = [item.count for item in found], [item.colours for item in found]
    result = counter_agreement(reference.objects, counts, colours)
    result.update(
        context_views=context_views,
        count_histogram=count_histogram(counts),
        colour_histogram=colour_histogram(colours),
        colours=colours,
    )
    if network is not None:
        result["frechet_distance"] = scored["frechet_distance"]
    return result


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """``per_seed`` values with their ``mean``, ``std`` (sample std; NaN for one value), ``min``
    and ``max``."""
    data = np.asarray(values, dtype=np.float64)
    return {
        "per_seed": data.tolist(),
        "mean": float(data.mean()),
        "std": float(data.std(ddof=1)) if data.size > 1 else math.nan,
        "min": float(data.min()),
        "max": float(data.max()),
    }


def real_view_floor(
    network: FeatureNetwork,
    reference: RealViews,
    dataset,
    seeds: Sequence[int],
    renders: int,
    real_features: np.ndarray | None = None,
) -> dict[str, Any]:
    """The noise floor of the Fréchet distance: per seed, the distance between the reference
    views and ``renders`` ID views drawn at random (scene and view, seeded) from another split's
    ``dataset``: two sets of *real* views of the same sizes as a prior's comparison. A prior
    cannot be told from real scenes below it. Take a split the feature network was not trained
    on (val): its training views' features are tighter than those of views it never saw, which
    would inflate the floor."""
    if real_features is None:
        real_features = reference_features(network, reference)
    values = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        scenes = torch.randint(0, len(dataset), (renders,), generator=generator).tolist()
        views = torch.randint(0, dataset.num_id_views, (renders,), generator=generator)
        images = torch.stack(
            [dataset.load_scene(s).images[v] for s, v in zip(scenes, views.tolist())]
        )
        values.append(frechet_distance(image_features(network, images), real_features))
    return {"split": dataset.split, "renders": renders, "frechet_distance": summarise(values)}


def score_priors(
    model: SceneModel,
    priors: Mapping[str, PriorSampler],
    reference: RealViews,
    network: FeatureNetwork,
    seeds: Sequence[int] = (0, 1, 2),
    samples: int = 50,
    counter: ObjectCounterConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Score each named prior over ``seeds``: per seed, ``samples`` latents drawn with
    ``torch.Generator().manual_seed(seed)`` (the same seed for every prior) and scored by
    :func:`score_latents`. Per prior: ``frechet_distance`` (:func:`summarise` over seeds), and
    with a counter the ``count_histogram``, ``empty_fraction``, ``mean_count`` and
    ``colour_histogram`` of all its samples pooled, and the ``counts`` per seed."""
    if samples < 2:
        raise ConfigError(f"sample quality needs at least 2 samples per seed, got {samples}")
    if not seeds:
        raise ConfigError("sample quality needs at least one seed")
    real_features = reference_features(network, reference)
    results = {}
    for name, sample in priors.items():
        distances, counts, colours = [], [], []
        for seed in seeds:
            latents = sample(samples, torch.Generator().manual_seed(seed))
            scored = score_latents(model, latents, reference, network, counter, real_features)
            distances.append(scored["frechet_distance"])
            if scored["counts"] is not None:
                counts.append(scored["counts"])
                colours += scored["colours"]
            if log is not None:
                log(f"sample quality: {name} prior, seed {seed}: FD {distances[-1]:.3f}")
        entry: dict[str, Any] = {"frechet_distance": summarise(distances)}
        if counts:
            pooled = [count for per_seed in counts for count in per_seed]
            entry.update(
                count_histogram=count_histogram(pooled),
                empty_fraction=float(np.mean([count == 0 for count in pooled])),
                mean_count=float(np.mean(pooled)),
                colour_histogram=colour_histogram(colours),
                counts=counts,
            )
        results[name] = entry
    return results
