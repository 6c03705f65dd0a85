"""ShapeNet-SRN reader (pixelNeRF layout): split directories, conventions, corrupt inputs.

SRN poses are OpenCV camera-to-world; fixture images mark a known 3D point projected with SRN's
own pinhole model (``u = f x / z + cx`` in the camera frame ``R^T (p - t)``), coded here with numpy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfvae.cli.data_import import run
from nerfvae.data.importers import ImportOptions, import_dataset
from nerfvae.data.storage import read_meta, read_shard_scenes
from nerfvae.errors import DataError
from nerfvae.geometry import project_points

POINT = np.array([0.05, 0.1, -0.08])
SIZE = 24
FOCAL, CX, CY = 26.25, 12.0, 12.5


def cv_look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world (x right, y down, z forward), world +y up like ShapeNet."""
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def srn_project(c2w: np.ndarray) -> tuple[float, float]:
    camera = c2w[:3, :3].T @ (POINT - c2w[:3, 3])
    assert camera[2] > 0
    return FOCAL * camera[0] / camera[2] + CX, FOCAL * camera[1] / camera[2] + CY


def write_instance(directory: Path, views: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    (directory / "rgb").mkdir(parents=True)
    (directory / "pose").mkdir()
    # SRN's intrinsics.txt: "f cx cy 0", grid barycentre, scale, a flag line, "H W".
    (directory / "intrinsics.txt").write_text(
        f"{FOCAL} {CX} {CY} 0.\n0. 0. 0.\n1.\n0\n{SIZE} {SIZE}\n"
    )
    for index in range(views):
        azimuth, elevation = rng.uniform(0, 2 * math.pi), rng.uniform(-0.3, 1.0)
        eye = 1.3 * np.array(
            [
                math.cos(azimuth) * math.cos(elevation),
                math.sin(elevation),
                math.sin(azimuth) * math.cos(elevation),
            ]
        )
        c2w = cv_look_at(eye, rng.normal(0, 0.05, 3))
        u, v = srn_project(c2w)
        assert 1e-3 < u % 1 < 1 - 1e-3 and 1e-3 < v % 1 < 1 - 1e-3
        image = np.full((SIZE, SIZE, 3), 255, np.uint8)  # SRN: white background
        image[int(v), int(u)] = (255, 0, 0)
        Image.fromarray(image).save(directory / "rgb" / f"{index:06d}.png")
        (directory / "pose" / f"{index:06d}.txt").write_text(
            " ".join(f"{x:.9f}" for x in c2w.ravel())
        )


def write_srn(root: Path, counts=(("train", 3, 6), ("val", 1, 6), ("test", 2, 9))) -> Path:
    """srn_cars/cars_{train,val,test}/<instance>/..., fewer views per instance than the real 50/251."""
    for split_number, (split, instances, views) in enumerate(counts):
        for index in range(instances):
            seed = 100 * split_number + index
            write_instance(root / f"cars_{split}" / f"{split}{index:04x}", views, seed)
    return root


def assert_marker_reprojects(root: Path) -> int:
    meta = read_meta(root)
    checked = 0
    for split in meta.splits.values():
        for shard in split.shards:
            for scene in read_shard_scenes(root / shard.file):
                # The marker is the only pixel that is not white: it has the least green.
                flat = scene.images[..., 1].flatten(1).argmin(-1)
                rows, cols = flat // meta.image_width, flat % meta.image_width
                point = torch.tensor(POINT, dtype=torch.float32).expand(len(rows), 1, 3)
                projected = project_points(point, scene.K, scene.c2w)[:, 0]
                np.testing.assert_array_equal(projected[:, 0].floor().long(), cols)
                np.testing.assert_array_equal(projected[:, 1].floor().long(), rows)
                checked += len(rows)
    return checked


def test_srn_import_keeps_pixelnerf_split_and_poses(tmp_path):
    src = write_srn(tmp_path / "srn_cars")
    run(
        [str(src), "--format", "srn", "--out", str(tmp_path / "out"), "--no-progress"],
        "nerfvae data import",
    )
    meta = read_meta(tmp_path / "out")
    assert {s: (m.num_scenes, m.id_views, m.ood_views) for s, m in meta.splits.items()} == {
        "train": (3, 6, 0),
        "val": (1, 6, 0),
        "test": (2, 9, 0),
    }
    assert assert_marker_reprojects(tmp_path / "out") == 3 * 6 + 6 + 2 * 9
    # Known pixelNeRF near/far for cars; world up found from the cameras (+y here).
    assert (meta.near, meta.far) == (0.8, 1.8) and meta.world_up == "+y"
    # White background recorded, so training renders it; masks are the non-background pixels
    # (here exactly the marker pixel of each view).
    assert meta.background == (1.0, 1.0, 1.0)
    assert meta.has_object_mask and meta.mask_source == "background"
    scene = read_shard_scenes(tmp_path / "out" / meta.splits["train"].shards[0].file)[0]
    marker = scene.images[..., 1].flatten(1).argmin(-1)
    expected = torch.zeros_like(scene.object_mask.flatten(1))
    expected[torch.arange(len(marker)), marker] = 1
    assert torch.equal(scene.object_mask.flatten(1), expected)
    # trivial-predictor baselines are part of an import too (test views beyond the 3 context ones)
    baselines = meta.baselines["test"]
    assert 0 < baselines["context_mean_colour"]["id_targets"] < 100
    instance = tmp_path / "srn_cars" / "cars_train" / "train0000"
    stored = np.loadtxt(instance / "pose" / "000002.txt").reshape(4, 4)
    np.testing.assert_allclose(scene.c2w[2].numpy(), stored, atol=1e-6)  # used as stored
    np.testing.assert_allclose(scene.K[0].numpy(), [[FOCAL, 0, CX], [0, FOCAL, CY], [0, 0, 1]])
    assert scene.info["source_scene"] == "train0000" and scene.info["category"] == "cars"


def test_srn_prefix_path_and_resize(tmp_path):
    """pixelNeRF passes 'srn_cars/cars' and appends _train etc.; resizing rescales K."""
    src = write_srn(tmp_path / "srn_cars", counts=(("train", 2, 4), ("test", 1, 4)))
    options = ImportOptions(image_size=(12, 12))
    import_dataset("srn", src / "cars", tmp_path / "out", options, progress=False, log=print)
    meta = read_meta(tmp_path / "out")
    assert set(meta.splits) == {"train", "test"} and meta.image_height == 12
    assert assert_marker_reprojects(tmp_path / "out") == 3 * 4
    # One split directory alone: its instances are split by fractions.
    import_dataset("srn", src / "cars_train", tmp_path / "one", progress=False, log=print)
    assert sum(m.num_scenes for m in read_meta(tmp_path / "one").splits.values()) == 2


def test_missing_pose_file_names_file(tmp_path):
    src = write_srn(tmp_path / "srn_cars", counts=(("train", 1, 3),))
    (src / "cars_train" / "train0000" / "pose" / "000001.txt").unlink()
    with pytest.raises(DataError, match=r"rgb/000001\.png: has no pose file .*pose/000001\.txt"):
        import_dataset("srn", src, tmp_path / "out", progress=False)


def test_nan_pose_names_file(tmp_path):
    src = write_srn(tmp_path / "srn_cars", counts=(("train", 1, 3),))
    pose = src / "cars_train" / "train0000" / "pose" / "000002.txt"
    pose.write_text(pose.read_text().replace(pose.read_text().split()[5], "nan", 1))
    with pytest.raises(DataError, match=r"pose/000002\.txt: camera pose contains NaN"):
        import_dataset("srn", src, tmp_path / "out", progress=False)


def test_image_size_mismatch_names_file(tmp_path):
    src = write_srn(tmp_path / "srn_cars", counts=(("train", 1, 3),))
    bad = src / "cars_train" / "train0000" / "rgb" / "000000.png"
    Image.new("RGB", (SIZE * 2, SIZE * 2), "white").save(bad)
    with pytest.raises(
        DataError,
        match=r"rgb/000000\.png: image is 48x48 \(HxW\) but the cameras "
        r"describe 24x24",
    ):
        import_dataset("srn", src, tmp_path / "out", progress=False)


def test_bad_intrinsics_names_file(tmp_path):
    src = write_srn(tmp_path / "srn_cars", counts=(("train", 1, 2),))
    intrinsics = src / "cars_train" / "train0000" / "intrinsics.txt"
    intrinsics.write_text("not numbers\n")
    with pytest.raises(DataError, match=r"train0000/intrinsics\.txt: expected 'f cx cy"):
        import_dataset("srn", src, tmp_path / "out", progress=False)


@pytest.mark.parametrize(
    "text, problem",
    [
        (f"{FOCAL} {CX} {CY} 0.\n0 0\n", r"image size 0x0 \(HxW\) is out of range"),
        (f"{FOCAL} {CX} {CY} 0.\ninf 24\n", r"image size infx24.0 must be whole numbers"),
        (f"{FOCAL} {CX} {CY} 0.\n1e9 1e9\n", r"image size 1000000000x1000000000"),
        (f"{FOCAL} {CX} {CY} 0.\n24.5 24\n", r"must be whole numbers"),
        (f"0 {CX} {CY} 0.\n24 24\n", r"focal length must be positive"),
        (f"nan {CX} {CY} 0.\n24 24\n", r"intrinsics contain NaN or inf"),
        (f"{FOCAL} 1e7 {CY} 0.\n24 24\n", r"principal point .* far outside the 24x24 image"),
    ],
)
def test_bad_intrinsics_values_name_file(tmp_path, text, problem):
    src = write_srn(tmp_path / "srn_cars", counts=(("train", 1, 2),))
    (src / "cars_train" / "train0000" / "intrinsics.txt").write_text(text)
    with pytest.raises(DataError, match=rf"train0000/intrinsics\.txt: .*{problem}"):
        import_dataset("srn", src, tmp_path / "out", progress=False)


def test_camera_near_float32_limit_names_file(tmp_path):
    src = write_srn(tmp_path / "srn_cars", counts=(("train", 1, 2),))
    pose = src / "cars_train" / "train0000" / "pose" / "000001.txt"
    values = pose.read_text().split()
    values[3] = "3e38"
    pose.write_text(" ".join(values))
    with pytest.raises(DataError, match=r"pose/000001\.txt: camera position .* beyond 1e\+06"):
        import_dataset("srn", src, tmp_path / "out", progress=False)


def test_three_by_four_poses_and_hidden_files(tmp_path):
    """12-number (3x4) poses are read with the row [0, 0, 0, 1] added; macOS "._*" files in rgb/
    and pose/ are not views."""
    src = write_srn(tmp_path / "srn_cars", counts=(("train", 2, 3),))
    instance = src / "cars_train" / "train0000"
    for pose in (instance / "pose").glob("*.txt"):
        values = pose.read_text().split()[:12]  # three rows of four, as such exporters write
        pose.write_text("\n".join(" ".join(values[row : row + 4]) for row in (0, 4, 8)) + "\n")
    (instance / "rgb" / "._000000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (instance / "pose" / "._000000.txt").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    import_dataset("srn", src, tmp_path / "out", progress=False, log=print)
    assert assert_marker_reprojects(tmp_path / "out") == 2 * 3
    (instance / "pose" / "000001.txt").write_text(" ".join(["0"] * 15))
    with pytest.raises(DataError, match=r"pose/000001\.txt: pose must be 16 numbers .* found 15"):
        import_dataset("srn", src, tmp_path / "out2", progress=False)


@pytest.mark.parametrize(
    "text, problem",
    [
        (f"{FOCAL} {CX} {CY} 0.\n0. 0. 0.\n0.\n1.\n{SIZE} {SIZE}\n0\n", None),  # SRN's own flag
        (f"{FOCAL} {CX} {CY}\n{SIZE} {SIZE}\n", None),
        (
            f"{FOCAL} {CX} {CY} 0.\n0. 0. 0.\n0.\n1.\n{SIZE} {SIZE}\n1\n",
            r"world2cam_poses flag is 1 \(poses stored world-to-camera\)",
        ),
        (f"{FOCAL} {CX} {CY} 0.\n", r"expected 'f cx cy \.\.\.' .* \(found 1 line\(s\)\)"),
    ],
)
def test_intrinsics_line_layouts(tmp_path, text, problem):
    """H W is the last line, or the one before SRN's optional world2cam_poses flag (which was read
    as the size); a one-line file was read as 'f cx' being 'H W'."""
    src = write_srn(tmp_path / "srn_cars", counts=(("train", 1, 2),))
    (src / "cars_train" / "train0000" / "intrinsics.txt").write_text(text)
    if problem is None:
        import_dataset("srn", src, tmp_path / "out", progress=False, log=print)
        assert assert_marker_reprojects(tmp_path / "out") == 2
    else:
        with pytest.raises(DataError, match=rf"train0000/intrinsics\.txt: {problem}"):
            import_dataset("srn", src, tmp_path / "out", progress=False)
