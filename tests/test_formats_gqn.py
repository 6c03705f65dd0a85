"""GQN TFRecord import: camera mapping, round trip on test-written records, corrupt inputs.

The records are written here with an independent TFRecord framer (bitwise CRC-32C) and protobuf
encoder (from test_formats_tfrecord). Fixture JPEGs mark a known 3D point at the pixel given by
GQN's (x, y, z, yaw, pitch) camera, projected here by rotating the point into the camera's frame
with Rz(yaw) Ry(-pitch) (forward = x, left = y, up = z before rotation) — coded independently of
the importer's matrix construction.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_formats_tfrecord import encode_example, frame_record

from nerfvae.cli.data_import import run
from nerfvae.data.importers import ImportOptions, gqn_cameras_to_c2w, import_dataset
from nerfvae.data.storage import read_meta, read_shard_scenes
from nerfvae.errors import ConfigError, DataError
from nerfvae.geometry import check_cameras, project_points

POINT = np.array([0.3, -0.2, 0.4])
FOV = math.radians(50.0)


def rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def gqn_project(camera: np.ndarray, size: int) -> tuple[float, float]:
    """Pixel (u right, v down) of POINT for a GQN camera (x, y, z, yaw, pitch)."""
    rotation = rotation_z(camera[3]) @ rotation_y(-camera[4])  # columns: forward, left, up
    forward, left, up = rotation.T @ (POINT - camera[:3])
    assert forward > 0
    focal = 0.5 * size / math.tan(0.5 * FOV)
    return 0.5 * size - focal * left / forward, 0.5 * size - focal * up / forward


def ring_cameras(count: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """Cameras on a ring around the room centre, facing it (with jitter), as rooms_ring_camera."""
    cameras = []
    while len(cameras) < count:
        azimuth = rng.uniform(0, 2 * math.pi)
        radius, height = rng.uniform(2.0, 3.0), rng.uniform(0.6, 1.2)
        position = [radius * math.cos(azimuth), radius * math.sin(azimuth), height]
        yaw = math.atan2(-position[1], -position[0]) + rng.uniform(-0.1, 0.1)
        camera = np.array([*position, yaw, rng.uniform(-0.25, 0.05)])
        u, v = gqn_project(camera, size)
        if 1 < u < size - 1 and 1 < v < size - 1 and 0.05 < u % 1 < 0.95 and 0.05 < v % 1 < 0.95:
            cameras.append(camera)
    return np.array(cameras)


def marker_jpeg(size: int, u: float, v: float) -> bytes:
    image = np.full((size, size, 3), 40, np.uint8)
    image[int(v), int(u)] = 255
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def scene_example(rng: np.random.Generator, views: int, size: int) -> bytes:
    cameras = ring_cameras(views, rng, size)
    frames = [marker_jpeg(size, *gqn_project(camera, size)) for camera in cameras]
    return encode_example(
        {"frames": ("bytes", frames), "cameras": ("float", cameras.ravel().tolist())}
    )


def write_gqn(
    root: Path, name="rooms_ring_camera", size=64, views=10, counts=(2, 1), seed=0
) -> Path:
    """<root>/<name>/{train,test}/NN-of-MM.tfrecord with two scenes per train file."""
    rng = np.random.default_rng(seed)
    for split, files in zip(("train", "test"), counts):
        (root / name / split).mkdir(parents=True)
        for index in range(files):
            records = [scene_example(rng, views, size) for _ in range(2)]
            path = root / name / split / f"{index + 1}-of-{files}.tfrecord"
            path.write_bytes(b"".join(frame_record(record) for record in records))
    return root / name


def assert_marker_reprojects(root: Path) -> int:
    meta = read_meta(root)
    checked = 0
    for split in meta.splits.values():
        for shard in split.shards:
            for scene in read_shard_scenes(root / shard.file):
                flat = scene.images.float().sum(-1).flatten(1).argmax(-1)
                rows, cols = flat // meta.image_width, flat % meta.image_width
                point = torch.tensor(POINT, dtype=torch.float32).expand(len(rows), 1, 3)
                projected = project_points(point, scene.K, scene.c2w)[:, 0]
                np.testing.assert_array_equal(projected[:, 0].floor().long(), cols)
                np.testing.assert_array_equal(projected[:, 1].floor().long(), rows)
                checked += len(rows)
    return checked


def test_camera_mapping_axes():
    cameras = np.array(
        [[0, 0, 0, 0, 0], [1, 2, 3, math.pi / 2, 0], [0, 0, 0, 0, 0.3], [0, 0, 0, 2.0, -1.2]],
        dtype=np.float64,
    )
    c2w = gqn_cameras_to_c2w(cameras)
    check_cameras(torch.eye(3).expand(4, 3, 3), torch.from_numpy(c2w))  # rigid, right-handed
    np.testing.assert_allclose(c2w[0, :3, 2], [1, 0, 0], atol=1e-12)  # yaw 0 looks along +x
    np.testing.assert_allclose(c2w[0, :3, 1], [0, 0, -1], atol=1e-12)  # image down = world -z
    np.testing.assert_allclose(c2w[0, :3, 0], [0, -1, 0], atol=1e-12)  # image right = -y
    np.testing.assert_allclose(c2w[1, :3, 2], [0, 1, 0], atol=1e-12)  # yaw 90° looks along +y
    np.testing.assert_allclose(c2w[1, :3, 3], [1, 2, 3])
    np.testing.assert_allclose(c2w[2, :3, 2], [math.cos(0.3), 0, math.sin(0.3)])  # pitch up
    assert (c2w[:, 2, 0] == 0).all()  # no roll: image rows stay horizontal


def test_gqn_import_round_trip(tmp_path, capsys):
    src = write_gqn(tmp_path / "gqn")
    run(
        [
            str(src),
            "--format",
            "gqn",
            "--out",
            str(tmp_path / "out"),
            "--val-scenes",
            "1",
            "--no-progress",
        ],
        "nerfvae data import",
    )
    meta = read_meta(tmp_path / "out")
    assert {s: (m.num_scenes, m.id_views) for s, m in meta.splits.items()} == {
        "train": (3, 10),
        "val": (1, 10),
        "test": (2, 10),
    }
    assert (meta.image_height, meta.image_width, meta.world_up) == (64, 64, "+z")
    assert assert_marker_reprojects(tmp_path / "out") == 6 * 10
    scene = read_shard_scenes(tmp_path / "out" / meta.splits["train"].shards[0].file)[0]
    focal = 32 / math.tan(0.5 * FOV)
    np.testing.assert_allclose(
        scene.K[0].numpy(), [[focal, 0, 32], [0, focal, 32], [0, 0, 1]], rtol=1e-6
    )
    assert scene.info["record"] == 0 and scene.info["source"].endswith("1-of-2.tfrecord")
    # Inside-out bounds: the box holds every camera and the scene centre; far reaches the corners.
    lo, hi = np.array(meta.scene_bounds[0]), np.array(meta.scene_bounds[1])
    centres = scene.c2w[:, :3, 3].numpy()
    assert (lo < centres).all() and (centres < hi).all() and (lo < POINT).all()
    assert meta.far > np.linalg.norm(hi - lo) / 2 and meta.near > 0
    output = capsys.readouterr().out
    assert "GQN yaw check" in output and "scene box" in output
    miss = meta.generator["optical_axis_miss_from_z_axis"]
    assert miss["p95"] < 0.35  # jitter of ±0.1 rad at radius ≤ 3; a wrong yaw gives ~radius


def test_gqn_unknown_dataset_reads_sizes_and_max_scenes(tmp_path):
    src = write_gqn(tmp_path / "gqn", name="my_rooms", size=16, views=4, counts=(2, 1), seed=1)
    options = ImportOptions(max_scenes=3)
    import_dataset("gqn", src, tmp_path / "out", options, progress=False, log=lambda _: None)
    meta = read_meta(tmp_path / "out")
    assert (meta.image_height, meta.splits["train"].num_scenes, meta.splits["train"].id_views) == (
        16,
        3,
        4,
    )
    assert assert_marker_reprojects(tmp_path / "out") == 5 * 4


def test_bad_crc_names_file(tmp_path):
    src = write_gqn(tmp_path / "gqn", name="custom", size=16, views=4, counts=(1, 1))
    path = src / "train" / "1-of-1.tfrecord"
    blob = bytearray(path.read_bytes())
    blob[-40] ^= 0x10  # inside the last record's data
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"train/1-of-1\.tfrecord: record 1: data CRC mismatch"):
        import_dataset("gqn", src, tmp_path / "out", progress=False)


def test_truncated_record_names_file(tmp_path):
    src = write_gqn(tmp_path / "gqn", name="custom", size=16, views=4, counts=(1, 1))
    path = src / "test" / "1-of-1.tfrecord"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"test/1-of-1\.tfrecord: truncated record 1"):
        import_dataset("gqn", src, tmp_path / "out", progress=False)


def test_nan_camera_names_record(tmp_path):
    src = tmp_path / "gqn" / "shepard_metzler_5_parts" / "train"
    src.mkdir(parents=True)
    cameras = [0.0] * 5 * 15
    cameras[7] = float("nan")
    frames = [marker_jpeg(64, 10.5, 10.5)] * 15
    record = encode_example({"frames": ("bytes", frames), "cameras": ("float", cameras)})
    (src / "1-of-1.tfrecord").write_bytes(frame_record(record))
    with pytest.raises(
        DataError, match=r"1-of-1\.tfrecord: record 0: camera parameters contain NaN"
    ):
        import_dataset("gqn", src.parent, tmp_path / "out", progress=False)


def test_image_size_mismatch_names_frame(tmp_path):
    # rooms_ring_camera frames are 64x64; these are 16x16.
    src = write_gqn(tmp_path / "gqn", size=16, views=10, counts=(1, 1))
    with pytest.raises(
        DataError,
        match=r"record 0 frame 0: image is 16x16 \(HxW\) but the cameras "
        r"describe 64x64",
    ):
        import_dataset("gqn", src, tmp_path / "out", progress=False)


def test_val_split_carved_from_training_scenes_when_the_source_has_none(tmp_path):
    """GQN has train and test only: 5% of >= 10 training scenes (seeded) become val, recorded."""
    from nerfvae.data.importers.importer import carved_val_scenes
    from nerfvae.errors import ConfigError

    assert [carved_val_scenes(n, None) for n in (5, 9, 10, 100, 5000)] == [0, 0, 1, 5, 100]
    assert carved_val_scenes(20, 3) == 3 and carved_val_scenes(20, 0) == 0
    with pytest.raises(ConfigError, match="val_scenes"):
        carved_val_scenes(20, -1)
    src = write_gqn(tmp_path / "gqn", name="my_rooms", size=16, views=4, counts=(6, 1), seed=2)
    summary = import_dataset("gqn", src, tmp_path / "out", ImportOptions(seed=3), progress=False)
    splits = {name: split.num_scenes for name, split in summary.meta.splits.items()}
    assert splits == {"train": 11, "val": 1, "test": 2}
    assert summary.meta.generator["val_from_train"] == {"scenes": 1, "seed": 3}
    # a closed scene (rooms): no background to render, no masks without alpha
    assert summary.meta.background is None and summary.meta.mask_source is None


def test_camera_position_near_float32_limit_names_record(tmp_path):
    src = tmp_path / "gqn" / "shepard_metzler_5_parts" / "train"
    src.mkdir(parents=True)
    cameras = [0.0] * 5 * 15
    cameras[5] = 3e38  # finite in float32, but no ray arithmetic survives it
    frames = [marker_jpeg(64, 10.5, 10.5)] * 15
    record = encode_example({"frames": ("bytes", frames), "cameras": ("float", cameras)})
    (src / "1-of-1.tfrecord").write_bytes(frame_record(record))
    with pytest.raises(DataError, match=r"1-of-1\.tfrecord: record 0 frame 1 camera: .*beyond"):
        import_dataset("gqn", src.parent, tmp_path / "out", progress=False)


def test_field_of_view_option_is_checked(tmp_path):
    src = write_gqn(tmp_path / "gqn", counts=(1, 0))
    with pytest.raises(ConfigError, match="gqn_fov_degrees must be in"):
        import_dataset(
            "gqn", src, tmp_path / "out", ImportOptions(gqn_fov_degrees=0.0), progress=False
        )
