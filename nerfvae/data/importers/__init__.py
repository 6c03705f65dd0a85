"""Readers for standard multi-view dataset formats and their conversion to nerfvae's format.

* :mod:`~nerfvae.data.importers.blender` — NeRF-synthetic (Blender) and nerfstudio / instant-ngp
  ``transforms.json``;
* :mod:`~nerfvae.data.importers.srn` — ShapeNet-SRN in pixelNeRF's layout;
* :mod:`~nerfvae.data.importers.gqn` — DeepMind GQN TFRecords (framing, CRC-32C and
  ``tf.train.Example`` parsing in :mod:`~nerfvae.data.importers.tfrecord`, no TensorFlow);
* :mod:`~nerfvae.data.importers.importer` — :func:`import_dataset`, used by
  ``nerfvae data import``.

Every reader maps cameras to nerfvae's OpenCV convention; see docs/formats.md.
"""

from nerfvae.data.importers.blender import read_blender, read_nerfstudio
from nerfvae.data.importers.common import Bounds, SourceScene, SourceView, estimate_bounds
from nerfvae.data.importers.gqn import GQN_DATASETS, gqn_cameras_to_c2w, iter_gqn, scan_gqn
from nerfvae.data.importers.importer import FORMATS, ImportOptions, ImportSummary, import_dataset
from nerfvae.data.importers.srn import read_srn
from nerfvae.data.importers.tfrecord import crc32c, iter_tfrecord, masked_crc32c, parse_example

__all__ = [
    "FORMATS",
    "GQN_DATASETS",
    "Bounds",
    "ImportOptions",
    "ImportSummary",
    "SourceScene",
    "SourceView",
    "crc32c",
    "estimate_bounds",
    "gqn_cameras_to_c2w",
    "import_dataset",
    "iter_gqn",
    "iter_tfrecord",
    "masked_crc32c",
    "parse_example",
    "read_blender",
    "read_nerfstudio",
    "read_srn",
    "scan_gqn",
]
