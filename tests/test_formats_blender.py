"""NeRF-synthetic and nerfstudio readers: conventions, round trip, corrupt inputs, real lego data.

Fixture images mark one known 3D point with a white pixel placed by projecting it with the
format's own convention (OpenGL camera-to-world, camera looking down −z, +y up), coded here with
numpy independently of nerfvae.geometry. After import, the point must project with nerfvae's
cameras onto the marked pixel of every view.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfvae.cli.data_import import run
from nerfvae.data.importers import ImportOptions, import_dataset
from nerfvae.data.storage import read_meta, read_shard_scenes
from nerfvae.errors import ConfigError, DataError
from nerfvae.geometry import opencv_to_opengl, project_points

POINT = np.array([0.2, -0.15, 0.3])
LEGO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lego-100"


def gl_look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world: columns right, up, back (camera looks down −z), world +z up."""
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, back, eye
    return c2w


def gl_project(
    c2w_gl: np.ndarray, fx: float, fy: float, cx: float, cy: float
) -> tuple[float, float]:
    """Continuous pixel (u, v) of POINT; u right, v down, image spanning [0, W] x [0, H]."""
    camera = c2w_gl[:3, :3].T @ (POINT - c2w_gl[:3, 3])
    depth = -camera[2]
    assert depth > 0
    return cx + fx * camera[0] / depth, cy - fy * camera[1] / depth


def random_gl_cameras(count: int, seed: int, radius: float = 4.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    cameras = []
    while len(cameras) < count:
        azimuth, elevation = rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 1.0)
        eye = radius * np.array(
            [
                math.cos(azimuth) * math.cos(elevation),
                math.sin(azimuth) * math.cos(elevation),
                math.sin(elevation),
            ]
        )
        cameras.append(gl_look_at(eye, rng.normal(0, 0.1, 3)))
    return cameras


def marker_image(height: int, width: int, u: float, v: float, rgba: bool) -> np.ndarray:
    """Black (or fully transparent) image with one white opaque pixel containing (u, v)."""
    assert 0 < u < width and 0 < v < height
    # Clear of pixel borders, so float rounding cannot move the expected pixel. (Fractional parts
    # vary across views, so a half-pixel convention error moves some markers to another pixel.)
    assert 1e-3 < u % 1 < 1 - 1e-3 and 1e-3 < v % 1 < 1 - 1e-3, (u, v)
    image = np.zeros((height, width, 4 if rgba else 3), np.uint8)
    image[int(v), int(u)] = 255
    return image


def write_blender_scene(root: Path, size=(20, 24), angle_x=0.7, views=(5, 2, 3), seed=0) -> Path:
    """A NeRF-synthetic scene: transforms_{train,val,test}.json and RGBA PNGs (no extension in
    file_path, as in the original)."""
    height, width = size
    focal = 0.5 * width / math.tan(0.5 * angle_x)
    cameras = iter(random_gl_cameras(sum(views), seed))
    root.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "val", "test"), views):
        (root / split).mkdir(exist_ok=True)
        frames = []
        for index in range(count):
            c2w = next(cameras)
            u, v = gl_project(c2w, focal, focal, width / 2, height / 2)
            Image.fromarray(marker_image(height, width, u, v, rgba=True)).save(
                root / split / f"r_{index}.png"
            )
            frames.append({"file_path": f"./{split}/r_{index}", "transform_matrix": c2w.tolist()})
        (root / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": angle_x, "frames": frames})
        )
    return root


def assert_marker_reprojects(root: Path, point: np.ndarray = POINT) -> int:
    """Every view of every imported scene: the marker is where nerfvae's cameras project POINT."""
    meta = read_meta(root)
    checked = 0
    for split in meta.splits.values():
        for shard in split.shards:
            for scene in read_shard_scenes(root / shard.file):
                brightness = scene.images.float().sum(-1)  # [V, H, W]
                flat = brightness.flatten(1).argmax(-1)
                rows, cols = flat // meta.image_width, flat % meta.image_width
                projected = project_points(
                    torch.tensor(point, dtype=torch.float32).expand(len(rows), 1, 3),
                    scene.K,
                    scene.c2w,
                )[:, 0]
                assert (projected[:, 2] > 0).all()
                np.testing.assert_array_equal(projected[:, 0].floor().long(), cols)
                np.testing.assert_array_equal(projected[:, 1].floor().long(), rows)
                checked += len(rows)
    return checked


def test_blender_import_round_trip_and_reprojection(tmp_path):
    src = write_blender_scene(tmp_path / "scene")
    summary = import_dataset(
        "blender",
        src,
        tmp_path / "out",
        ImportOptions(background="black"),
        progress=False,
        log=lambda _: None,
    )
    meta = read_meta(tmp_path / "out")
    assert (meta.image_height, meta.image_width) == (20, 24)
    assert meta.splits["train"].id_views == 5 and meta.splits["train"].ood_views == 0
    assert (meta.splits["val"].id_views, meta.splits["val"].ood_views) == (5, 2)
    assert (meta.splits["test"].id_views, meta.splits["test"].ood_views) == (5, 3)
    assert meta.has_object_mask and not meta.has_depth
    assert summary.bounds.how == "known" and (meta.near, meta.far) == (2.0, 6.0)
    assert assert_marker_reprojects(tmp_path / "out") == 5 + 7 + 8

    # Round trip: the stored pose converts back to the file's matrix; K is the file's focal.
    test_scene = read_shard_scenes(tmp_path / "out" / meta.splits["test"].shards[0].file)[0]
    files = [json.loads((src / f"transforms_{s}.json").read_text()) for s in ("train", "test")]
    expected = [f["transform_matrix"] for f in files[0]["frames"] + files[1]["frames"]]
    np.testing.assert_allclose(
        opencv_to_opengl(test_scene.c2w).numpy(), np.array(expected), atol=1e-6
    )
    focal = 0.5 * 24 / math.tan(0.35)
    np.testing.assert_allclose(
        test_scene.K[0].numpy(), [[focal, 0, 12], [0, focal, 10], [0, 0, 1]], rtol=1e-6
    )
    assert test_scene.view_is_ood.tolist() == [False] * 5 + [True] * 3
    # Object mask is the alpha channel: exactly the marker pixel.
    assert test_scene.object_mask.flatten(1).sum(-1).tolist() == [1] * 8
    assert test_scene.images.flatten(1).amax(-1).tolist() == [255] * 8


def test_blender_resize_keeps_reprojection(tmp_path):
    src = write_blender_scene(tmp_path / "scene", size=(32, 32), views=(4, 0, 2), seed=3)
    run(
        [
            str(src),
            "--format",
            "blender",
            "--out",
            str(tmp_path / "out"),
            "--image-size",
            "16",
            "16",
            "--background",
            "black",
            "--no-progress",
        ],
        "nerfvae data import",
    )
    meta = read_meta(tmp_path / "out")
    assert (meta.image_height, meta.image_width) == (16, 16)
    assert assert_marker_reprojects(tmp_path / "out") == 4 + 6


def test_multi_scene_root_split_by_scenes_and_resume(tmp_path):
    for index in range(5):
        write_blender_scene(tmp_path / "root" / f"scene{index}", views=(3, 1, 2), seed=index)
    options = ImportOptions(background="black", split_fractions=(0.6, 0.2, 0.2), scenes_per_shard=2)
    import_dataset(
        "blender", tmp_path / "root", tmp_path / "out", options, progress=False, log=lambda _: None
    )
    meta = read_meta(tmp_path / "out")
    assert {s: m.num_scenes for s, m in meta.splits.items()} == {"train": 3, "val": 1, "test": 1}
    assert all(m.id_views == 6 and m.ood_views == 0 for m in meta.splits.values())
    assert assert_marker_reprojects(tmp_path / "out") == 5 * 6
    # Re-running into a finished dataset is refused; --overwrite redoes it.
    with pytest.raises(DataError, match="already holds a finished dataset"):
        import_dataset("blender", tmp_path / "root", tmp_path / "out", options, progress=False)
    # An interrupted import (no dataset.json yet) resumes, skipping finished shards.
    (tmp_path / "out" / "dataset.json").unlink()
    first_shard = tmp_path / "out" / "train" / "shard-00000.safetensors"
    stamp = first_shard.stat().st_mtime_ns
    import_dataset(
        "blender", tmp_path / "root", tmp_path / "out", options, progress=False, log=lambda _: None
    )
    assert first_shard.stat().st_mtime_ns == stamp
    assert read_meta(tmp_path / "out").splits["train"].num_scenes == 3
    # Other options into an unfinished import are refused; --overwrite starts afresh.
    (tmp_path / "out" / "dataset.json").unlink()
    other = ImportOptions(background="black", split_fractions=(0.6, 0.2, 0.2), scenes_per_shard=1)
    with pytest.raises(DataError, match="unfinished import with other options"):
        import_dataset("blender", tmp_path / "root", tmp_path / "out", other, progress=False)
    import_dataset(
        "blender",
        tmp_path / "root",
        tmp_path / "out",
        other,
        overwrite=True,
        progress=False,
        log=lambda _: None,
    )
    assert len(read_meta(tmp_path / "out").splits["train"].shards) == 3
    # A directory that holds something else is never written into.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty and holds no nerfvae import"):
        import_dataset(
            "blender",
            tmp_path / "root",
            tmp_path / "elsewhere",
            other,
            overwrite=True,
            progress=False,
        )


def write_nerfstudio_scene(root: Path, count: int = 10) -> Path:
    """transforms.json with top-level intrinsics and per-frame fl_x / cx / cy overrides, RGB JPGs
    stored losslessly as PNG under names with extensions."""
    height, width = 18, 26
    top = {
        "camera_model": "OPENCV",
        "fl_x": 30.0,
        "fl_y": 28.0,
        "cx": 12.7,
        "cy": 9.4,
        "w": width,
        "h": height,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
    }
    frames = []
    (root / "images").mkdir(parents=True)
    for index, c2w in enumerate(random_gl_cameras(count, seed=11, radius=3.0)):
        frame = {"file_path": f"images/frame_{index:03d}.png", "transform_matrix": c2w.tolist()}
        fx, fy, cx, cy = top["fl_x"], top["fl_y"], top["cx"], top["cy"]
        if index % 2:  # per-frame overrides
            fx, cx = 34.0 + index, 13.3 - 0.1 * index
            frame.update({"fl_x": fx, "cx": cx})
        if index % 3 == 0:
            cy = 8.6
            frame["cy"] = cy
        u, v = gl_project(c2w, fx, fy, cx, cy)
        Image.fromarray(marker_image(height, width, u, v, rgba=False)).save(
            root / frame["file_path"]
        )
        frames.append(frame)
    (root / "transforms.json").write_text(json.dumps({**top, "frames": frames}))
    return root


def test_nerfstudio_per_frame_intrinsics(tmp_path):
    src = write_nerfstudio_scene(tmp_path / "capture")
    run(
        [
            str(src),
            "--format",
            "nerfstudio",
            "--out",
            str(tmp_path / "out"),
            "--holdout-every",
            "4",
            "--no-progress",
        ],
        "nerfvae data import",
    )
    meta = read_meta(tmp_path / "out")
    # Frames 0, 4, 8 held out: 7 training views, 3 test views.
    assert (meta.splits["test"].id_views, meta.splits["test"].ood_views) == (7, 3)
    assert not meta.has_object_mask  # RGB images: no alpha, no mask
    assert assert_marker_reprojects(tmp_path / "out") == 7 + 10
    scene = read_shard_scenes(tmp_path / "out" / meta.splits["test"].shards[0].file)[0]
    # Test views are frames 0, 4, 8 (stored after the 7 training frames 1,2,3,5,6,7,9).
    np.testing.assert_allclose(scene.K[0, 0].tolist(), [35.0, 0, 13.2], rtol=1e-6)  # frame 1
    np.testing.assert_allclose(scene.K[7, 1].tolist(), [0, 28.0, 8.6], rtol=1e-6)  # frame 0
    # Bounds come from the cameras here and are sane: every camera outside the box, near < far.
    lo, hi = np.array(meta.scene_bounds[0]), np.array(meta.scene_bounds[1])
    assert (lo < POINT).all() and (POINT < hi).all() and 0 < meta.near < 3.0 < meta.far


def test_image_size_mismatch_names_file(tmp_path):
    src = write_nerfstudio_scene(tmp_path / "capture", count=4)
    Image.new("RGB", (30, 18)).save(src / "images" / "frame_002.png")
    with pytest.raises(DataError, match=r"frame_002\.png: image is 18x30 .* declares w=26, h=18"):
        import_dataset("nerfstudio", src, tmp_path / "out", progress=False)

    blender = write_blender_scene(tmp_path / "scene", views=(3, 0, 1))
    Image.new("RGBA", (12, 10)).save(blender / "train" / "r_1.png")
    with pytest.raises(DataError, match=r"r_1\.png: image size mismatch: 10x12"):
        import_dataset("blender", blender, tmp_path / "out2", progress=False)


def test_nan_pose_names_file(tmp_path):
    src = write_blender_scene(tmp_path / "scene", views=(3, 0, 1))
    path = src / "transforms_train.json"
    data = json.loads(path.read_text())
    data["frames"][2]["transform_matrix"][0][3] = float("nan")
    path.write_text(json.dumps(data))  # json writes NaN, as numpy-based exporters do
    with pytest.raises(DataError, match=r"transforms_train\.json frame 2 \(r_2\.png\): .*NaN"):
        import_dataset("blender", src, tmp_path / "out", progress=False)


def test_missing_files_name_file(tmp_path):
    src = write_blender_scene(tmp_path / "scene", views=(3, 0, 1))
    (src / "train" / "r_1.png").unlink()
    with pytest.raises(
        DataError, match=r"transforms_train\.json frame 1: image file .*r_1 is missing"
    ):
        import_dataset("blender", src, tmp_path / "out", progress=False)
    (src / "transforms_train.json").unlink()
    with pytest.raises(DataError, match=r"transforms_train\.json: file is missing"):
        import_dataset("blender", src, tmp_path / "out", progress=False)


@pytest.mark.skipif(
    not LEGO.is_dir(), reason="../shared/data/lego-100 (relative to the repo) absent"
)
def test_real_lego_100(tmp_path):
    summary = import_dataset("blender", LEGO, tmp_path / "lego", progress=False, log=lambda _: None)
    meta = read_meta(tmp_path / "lego")
    assert (meta.image_height, meta.image_width) == (100, 100)
    assert (meta.splits["train"].id_views, meta.splits["test"].ood_views) == (80, 20)
    assert summary.bounds.how == "known"
    assert (meta.near, meta.far) == (2.0, 6.0) and meta.scene_bounds == ((-1.5,) * 3, (1.5,) * 3)
    assert meta.world_up == "+z" and meta.has_object_mask
    scene = read_shard_scenes(tmp_path / "lego" / meta.splits["test"].shards[0].file)[0]
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).expand(100, 2, 3)
    projected = project_points(points, scene.K, scene.c2w)
    # Every camera looks at the origin: it projects to the image centre, about 4.03 away...
    assert (projected[:, 0, :2] - 50.0).abs().max() < 0.5
    assert ((projected[:, 0, 2] - 4.031).abs() < 0.01).all()
    # ...world +z is up in every image (v decreases going up; one camera is straight overhead)...
    assert (projected[:, 1, 1] < projected[:, 0, 1] + 1e-3).all()
    assert (projected[:, 1, 1] < projected[:, 0, 1] - 5).float().mean() > 0.95
    # ...and the alpha mask (the lego) covers the image centre in every view.
    assert scene.object_mask[:, 45:55, 45:55].flatten(1).float().mean(-1).min() > 0.5
    # The camera-only estimate agrees with the known NeRF-synthetic box to within 10 %.
    from nerfvae.data.importers.common import estimate_bounds

    estimate = estimate_bounds(scene.K.double().numpy(), scene.c2w.double().numpy(), (100, 100))
    assert estimate.how == "object-centric"
    np.testing.assert_allclose(estimate.box_max, 1.5, rtol=0.1)
    np.testing.assert_allclose(estimate.box_min, -1.5, rtol=0.1)


@pytest.mark.parametrize("angle", [0, 0.0, float("nan"), float("inf"), math.pi, "0.7", True])
def test_bad_camera_angle_names_file(tmp_path, angle):
    src = write_blender_scene(tmp_path / "scene", views=(2, 0, 1))
    for key in ("camera_angle_x", "camera_angle_y"):
        path = src / "transforms_train.json"
        data = json.loads((src / "transforms_test.json").read_text())
        data[key] = angle
        path.write_text(json.dumps({**data, "frames": json.loads(path.read_text())["frames"]}))
        with pytest.raises(DataError, match=rf"transforms_train\.json: {key} must be a field of"):
            import_dataset("blender", src, tmp_path / f"out-{key}", progress=False)


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"w": 0}, r"image size 18x0 \(HxW\) is out of range"),
        ({"h": float("inf")}, r"h must be a finite number"),
        ({"w": "26"}, r"w must be a finite number"),
        ({"w": 26.5}, r"w and h must be whole numbers"),
        ({"camera_angle_x": 0.0, "fl_x": None}, r"camera_angle_x must be a field of view"),
        ({"cx": 1e6}, r"principal point \(1e\+06, [0-9.]+\) lies far outside the 18x26 image"),
        ({"fl_x": 1e9}, r"focal length fx=1e\+09"),
        ({"train_filenames": 3}, r"train_filenames must be a list of file names"),
    ],
)
def test_bad_nerfstudio_intrinsics_name_file(tmp_path, changes, problem):
    src = write_nerfstudio_scene(tmp_path / "capture", count=3)
    path = src / "transforms.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
        for frame in data["frames"]:
            frame.pop(key, None)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"transforms\.json.*{problem}"):
        import_dataset("nerfstudio", src, tmp_path / "out", progress=False)


def set_frame_field(src: Path, index: int, key: str, value) -> None:
    """Set ``key`` of frame ``index`` in ``src/transforms_train.json``."""
    path = src / "transforms_train.json"
    data = json.loads(path.read_text())
    data["frames"][index][key] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("file_path", ["./train/r\x000", "./train/" + "r" * 5000, "./loop"])
def test_unusable_file_path_names_file(tmp_path, file_path):
    src = write_blender_scene(tmp_path / "scene", views=(2, 0, 1))
    (src / "loop").symlink_to("loop")
    set_frame_field(src, 1, "file_path", file_path)
    with pytest.raises(DataError, match=r"transforms_train\.json frame 1: "):
        import_dataset("blender", src, tmp_path / "out", progress=False)


def test_transform_matrix_of_strings_and_deep_json_name_file(tmp_path):
    src = write_blender_scene(tmp_path / "scene", views=(2, 0, 1))
    strings = [[str(v) for v in row] for row in np.eye(4)]
    set_frame_field(src, 0, "transform_matrix", strings)
    path = src / "transforms_train.json"
    with pytest.raises(DataError, match=r"frame 0 .*transform_matrix must be an array of numbers"):
        import_dataset("blender", src, tmp_path / "out", progress=False)
    path.write_text('{"frames": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DataError, match=r"transforms_train\.json: cannot read JSON \(nested too"):
        import_dataset("blender", src, tmp_path / "out2", progress=False)


def test_missing_test_split_file_is_noted(tmp_path):
    src = write_blender_scene(tmp_path / "scene", views=(3, 0, 1))
    (src / "transforms_test.json").unlink()
    messages = []
    import_dataset("blender", src, tmp_path / "out", progress=False, log=messages.append)
    assert any(
        "transforms_test.json is missing: the scene has no test views" in m for m in messages
    )
    # an empty frames list is no split either, and said so
    assert any(
        "transforms_val.json has no frames: the scene has no val views" in m for m in messages
    )


def test_sixteen_bit_grey_png_is_scaled_to_eight_bits(tmp_path):
    src = write_blender_scene(tmp_path / "scene", views=(2, 0, 1))
    grey = np.full((20, 24), 32768, np.uint16)  # mid-grey in 16 bits: 128 in 8 bits, not 255
    Image.fromarray(grey).save(src / "train" / "r_1.png")
    import_dataset("blender", src, tmp_path / "out", ImportOptions(masks=False), progress=False)
    scenes = read_shard_scenes(tmp_path / "out" / "train" / "shard-00000.safetensors")
    assert int(scenes[0].images[1].min()) == int(scenes[0].images[1].max()) == 128


def test_absurd_image_header_is_refused_before_decoding(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    src = write_blender_scene(tmp_path / "scene", views=(2, 0, 1))
    (src / "train" / "r_1.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    )
    with pytest.raises(DataError, match=r"r_1\.png: image size 100000x100000 \(HxW\) is out of"):
        import_dataset("blender", src, tmp_path / "out", progress=False)


def rewrite_with_pixel_intrinsics(src: Path, split: str, top: dict, per_frame: dict) -> None:
    """Replace ``camera_angle_x`` of ``transforms_<split>.json`` by instant-ngp's pixel intrinsics
    ``top`` (``fl_x, fl_y, cx, cy``, ...) and ``per_frame`` ``{index: {key: value}}`` overrides,
    and redraw every marker where those cameras project POINT."""
    path = src / f"transforms_{split}.json"
    data = json.loads(path.read_text())
    del data["camera_angle_x"]
    data.update(top)
    for index, frame in enumerate(data["frames"]):
        frame.update(per_frame.get(index, {}))
        image = src / (frame["file_path"] + ".png")
        height, width = np.asarray(Image.open(image)).shape[:2]
        values = {**top, **per_frame.get(index, {})}
        fx = values["fl_x"]
        u, v = gl_project(
            np.array(frame["transform_matrix"]),
            fx,
            values.get("fl_y", fx),
            values.get("cx", width / 2),
            values.get("cy", height / 2),
        )
        Image.fromarray(marker_image(height, width, u, v, rgba=True)).save(image)
    path.write_text(json.dumps(data))


def test_instant_ngp_and_per_frame_intrinsics_in_blender_files(tmp_path):
    """Exporters (instant-ngp, BlenderNeRF) write fl_x/fl_y/cx/cy/w/h, at the top or per frame,
    into transforms_*.json; they were ignored for camera_angle_x (or refused without it)."""
    src = write_blender_scene(tmp_path / "scene", views=(4, 0, 2))
    top = {"fl_x": 30.0, "fl_y": 27.0, "cx": 11.3, "cy": 10.6, "w": 24, "h": 20}
    rewrite_with_pixel_intrinsics(src, "train", top, {1: {"fl_x": 25.0, "cx": 12.7}})
    # test file: camera_angle_x kept as well, but fl_x wins (instant-ngp's order)
    test_data = json.loads((src / "transforms_test.json").read_text())
    rewrite_with_pixel_intrinsics(src, "test", {"fl_x": 33.0, "fl_y": 33.0}, {})
    data = json.loads((src / "transforms_test.json").read_text())
    (src / "transforms_test.json").write_text(
        json.dumps({**data, "camera_angle_x": test_data["camera_angle_x"]})
    )
    black = ImportOptions(background="black")  # the markers are white on transparent
    import_dataset("blender", src, tmp_path / "out", black, progress=False, log=lambda _: None)
    assert assert_marker_reprojects(tmp_path / "out") == 4 + 6
    meta = read_meta(tmp_path / "out")
    scene = read_shard_scenes(tmp_path / "out" / meta.splits["test"].shards[0].file)[0]
    np.testing.assert_allclose(scene.K[0].numpy(), [[30, 0, 11.3], [0, 27, 10.6], [0, 0, 1]])
    np.testing.assert_allclose(scene.K[1].numpy(), [[25, 0, 12.7], [0, 27, 10.6], [0, 0, 1]])
    np.testing.assert_allclose(scene.K[4].numpy(), [[33, 0, 12], [0, 33, 10], [0, 0, 1]])


def test_per_frame_camera_angle_and_bad_per_frame_focal_name_frame(tmp_path):
    src = write_blender_scene(tmp_path / "scene", views=(3, 0, 1))
    set_frame_field(src, 2, "camera_angle_x", 0.9)
    import_dataset("blender", src, tmp_path / "out", progress=False, log=lambda _: None)
    scene = read_shard_scenes(tmp_path / "out" / "train" / "shard-00000.safetensors")[0]
    focal = 0.5 * 24 / math.tan(0.45)  # frame 2's own angle, not the file's 0.7
    np.testing.assert_allclose(scene.K[2, 0, 0].item(), focal, rtol=1e-6)
    np.testing.assert_allclose(scene.K[1, 0, 0].item(), 0.5 * 24 / math.tan(0.35), rtol=1e-6)
    set_frame_field(src, 1, "fl_x", 0)
    with pytest.raises(
        DataError, match=r"transforms_train\.json frame 1 \(r_1\.png\): focal length must be pos"
    ):
        import_dataset("blender", src, tmp_path / "out2", progress=False)
    set_frame_field(src, 1, "fl_x", 20.0)
    set_frame_field(src, 1, "w", 48)  # images downsampled after export: the pixels no longer fit
    with pytest.raises(DataError, match=r"r_1\.png: image is 20x24 \(HxW\) but transforms_train"):
        import_dataset("blender", src, tmp_path / "out3", progress=False)


def test_windows_file_paths_and_single_transforms_json(tmp_path):
    src = write_blender_scene(tmp_path / "scene", views=(3, 0, 1))
    set_frame_field(src, 1, "file_path", ".\\train\\r_1")
    black = ImportOptions(background="black")  # the markers are white on transparent
    import_dataset("blender", src, tmp_path / "out", black, progress=False, log=lambda _: None)
    assert assert_marker_reprojects(tmp_path / "out") == 3 + 4
    # instant-ngp keeps all frames in one transforms.json: say which reader takes it
    (src / "transforms_train.json").rename(src / "transforms.json")
    for split in ("val", "test"):
        (src / f"transforms_{split}.json").unlink()
    with pytest.raises(DataError, match=r"single transforms\.json: import it with --format nerf"):
        import_dataset("blender", src, tmp_path / "out2", progress=False)


def test_nerfstudio_filename_lists_name_missing_and_unlisted_frames(tmp_path):
    src = write_nerfstudio_scene(tmp_path / "capture", count=4)
    path = src / "transforms.json"
    data = json.loads(path.read_text())
    data["train_filenames"] = ["images\\frame_000.png", "images/frame_001.png"]
    data["test_filenames"] = ["./images/frame_002.png"]
    path.write_text(json.dumps(data))
    summary = import_dataset("nerfstudio", src, tmp_path / "out", progress=False, log=print)
    assert summary.meta.splits["test"].id_views == 2 and summary.meta.splits["test"].ood_views == 1
    assert any("1 of 4 frames are in none of train/val/test_filenames" in n for n in summary.notes)
    data["test_filenames"] = ["images/frame_009.png"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"test_filenames: image file .*frame_009\.png is missing"):
        import_dataset("nerfstudio", src, tmp_path / "out2", progress=False)


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"views": 0}, r"views must be at least 1, got 0"),  # was an IndexError
        ({"max_scenes": 0}, r"max_scenes must be at least 1, got 0"),  # was an IndexError
        ({"scenes_per_shard": -1}, r"scenes_per_shard must be >= 0"),  # was an AssertionError
        ({"holdout_every": -3}, r"holdout_every must be >= 0"),  # was taken as 0
        # was accepted, then exhausted memory allocating the resized images
        ({"image_size": (100_000, 100_000)}, r"image_size: image size 100000x100000 \(HxW\) is"),
        # were found only after every shard was written, naming dataset.json
        ({"near": 5.0, "far": 1.0}, r"--near/--far: need 0 <= near < far <= .*near 5.0, far 1.0"),
        ({"near": float("nan")}, r"--near/--far: need 0 <= near < far <= .*got near nan"),
        # beyond what dataset.json accepts: refused only after the import, before
        (
            {"far": 1e9},
            r"--near/--far: need 0 <= near < far <= 4e\+06, got near None, far 1000000000.0",
        ),
        ({"scene_bounds": (1, 1, 1, 0, 0, 0)}, r"--scene-bounds: scene_bounds must be \(min xyz"),
        ({"scene_bounds": (0, 0, 0, 1e7, 1, 1)}, r"--scene-bounds: .*within 1e\+06"),
        ({"scene_bounds": (0, 0, 0, 1)}, r"--scene-bounds: need six numbers"),
    ],
)
def test_bad_import_options_are_refused_up_front(tmp_path, options, problem):
    src = write_blender_scene(tmp_path / "scene", views=(2, 0, 1))
    with pytest.raises(ConfigError, match=problem):
        import_dataset("blender", src, tmp_path / "out", ImportOptions(**options), progress=False)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_names_it(tmp_path):
    src = write_blender_scene(tmp_path / "scene", views=(2, 0, 1))
    (tmp_path / "out").write_text("not a directory")
    with pytest.raises(DataError, match=r"out: exists and is not a directory"):  # was a traceback
        import_dataset("blender", src, tmp_path / "out", progress=False)


def test_intrinsics_declared_for_larger_images_are_scaled_to_them(tmp_path):
    """A downsampled copy of a dataset keeps the original's transforms file: pixel intrinsics
    declared for w × h are scaled to the images' size (same aspect ratio), with a note."""
    src = write_blender_scene(tmp_path / "scene", views=(3, 0, 1))
    # the markers are drawn for the 20 x 24 images' own intrinsics ...
    small = {"fl_x": 30.0, "fl_y": 27.0, "cx": 11.3, "cy": 10.6}
    for split in ("train", "test"):
        rewrite_with_pixel_intrinsics(src, split, small, {})
        path = src / f"transforms_{split}.json"
        data = json.loads(path.read_text())
        # ... and the file declares them for 2.5 × larger images, as the original capture had
        data.update({key: 2.5 * value for key, value in small.items()} | {"w": 60, "h": 50})
        path.write_text(json.dumps(data))
    black = ImportOptions(background="black")
    summary = import_dataset("blender", src, tmp_path / "out", black, progress=False, log=len)
    notes = summary.notes
    assert assert_marker_reprojects(tmp_path / "out") == 3 + (3 + 1)  # test keeps train views
    scene = read_shard_scenes(tmp_path / "out" / "train" / "shard-00000.safetensors")[0]
    np.testing.assert_allclose(scene.K[0].numpy(), [[30, 0, 11.3], [0, 27, 10.6], [0, 0, 1]])
    assert any("declares 50x60 (HxW) images but they are 20x24" in note for note in notes)
    # another aspect ratio is not a resize: refused, naming the image
    data = json.loads((src / "transforms_test.json").read_text())
    (src / "transforms_test.json").write_text(json.dumps({**data, "w": 72}))
    with pytest.raises(DataError, match=r"r_0\.png: image is 20x24 .*not the same aspect ratio"):
        import_dataset("blender", src, tmp_path / "out2", progress=False)


def test_transforms_file_with_byte_order_mark_imports(tmp_path):
    """Windows tools write UTF-8 with a byte-order mark; it is still the same JSON."""
    src = write_blender_scene(tmp_path / "scene", views=(3, 0, 1))
    path = src / "transforms_train.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    black = ImportOptions(background="black")  # the markers are white on transparent
    import_dataset("blender", src, tmp_path / "out", black, progress=False, log=len)
    assert assert_marker_reprojects(tmp_path / "out") == 3 + (3 + 1)
