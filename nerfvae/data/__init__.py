"""Multi-scene datasets: the on-disk format, the built-in rooms generator and the loaders.

Importing this package does not import Mitsuba; only :mod:`nerfvae.data.mitsuba` (used by
``nerfvae data generate``) does. See docs/data.md.
"""

from nerfvae.data.loader import MultiSceneDataset, make_training_batch, training_batches
from nerfvae.data.storage import (
    FORMAT_VERSION,
    DatasetMeta,
    DatasetWriter,
    SceneRecord,
    ShardMeta,
    ShardReader,
    SplitMeta,
    read_meta,
    read_shard_scenes,
    validate_scene,
)

__all__ = [
    "FORMAT_VERSION",
    "DatasetMeta",
    "DatasetWriter",
    "MultiSceneDataset",
    "SceneRecord",
    "ShardMeta",
    "ShardReader",
    "SplitMeta",
    "make_training_batch",
    "read_meta",
    "read_shard_scenes",
    "training_batches",
    "validate_scene",
]
