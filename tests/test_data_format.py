"""Dataset format and loader on small synthetic datasets (no renderer needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from nerfvae.data.loader import MultiSceneDataset, batch_seed, training_batches
from nerfvae.data.resume import resume_with_settings
from nerfvae.data.storage import (
    FORMAT_VERSION,
    DatasetMeta,
    DatasetWriter,
    SceneRecord,
    ShardReader,
    SplitMeta,
    read_meta,
)
from nerfvae.errors import DataError
from nerfvae.geometry import intrinsics_matrix, look_at, project_points

H, W = 6, 8
ID_VIEWS, OOD_VIEWS = 4, 2


def make_scene(index: int, views: int = ID_VIEWS + OOD_VIEWS, ood: int = OOD_VIEWS) -> SceneRecord:
    generator = torch.Generator().manual_seed(index)
    angles = torch.arange(views) * (2 * math.pi / views) + 0.1 * index
    eye = torch.stack(
        [3 * torch.cos(angles), 3 * torch.sin(angles), torch.full_like(angles, 1.5)], -1
    )
    c2w = look_at(eye, torch.zeros(views, 3))
    return SceneRecord(
        images=torch.randint(0, 256, (views, H, W, 3), dtype=torch.uint8, generator=generator),
        K=intrinsics_matrix(7.0, 7.0, W / 2, H / 2).expand(views, 3, 3).clone(),
        c2w=c2w,
        view_is_ood=torch.arange(views) >= views - ood,
        depth=1.0 + 4.0 * torch.rand(views, H, W, generator=generator),
        object_mask=torch.randint(0, 3, (views, H, W), dtype=torch.uint8, generator=generator),
        objects=[{"id": 1, "shape": "sphere"}, {"id": 2, "shape": "cube"}],
        scene_id=f"scene-{index}",
        info={"note": index},
    )


def write_dataset(root: Path, scenes_per_split: dict[str, int], shard_size: int = 3) -> DatasetMeta:
    meta = DatasetMeta(
        name="synthetic",
        image_height=H,
        image_width=W,
        scene_bounds=((-2.0, -2.0, -1.0), (2.0, 2.0, 2.0)),
        near=0.5,
        far=8.0,
        splits={
            name: SplitMeta(id_views=ID_VIEWS, ood_views=OOD_VIEWS) for name in scenes_per_split
        },
    )
    writer = DatasetWriter(root, meta)
    for split, count in scenes_per_split.items():
        for shard, first in enumerate(range(0, count, shard_size)):
            scenes = [make_scene(i) for i in range(first, min(first + shard_size, count))]
            writer.write_shard(split, shard, first, scenes)
    return writer.finalize(baselines={"note": "none"})


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_dataset(root, {"train": 7, "test": 2})
    return root


def test_round_trip(dataset_root: Path) -> None:
    meta = read_meta(dataset_root)
    assert meta.format_version == FORMAT_VERSION
    assert meta.split("train").num_scenes == 7
    assert [s.num_scenes for s in meta.split("train").shards] == [3, 3, 1]
    dataset = MultiSceneDataset(dataset_root, "train")
    assert (
        len(dataset) == 7
        and dataset.num_id_views == ID_VIEWS
        and dataset.num_ood_views == OOD_VIEWS
    )
    for index in (0, 4, 6):
        scene, expected = dataset.load_scene(index), make_scene(index)
        for name in ("images", "K", "c2w", "view_is_ood", "depth", "object_mask"):
            assert torch.equal(getattr(scene, name), getattr(expected, name)), name
        assert scene.scene_id == f"scene-{index}"
        assert scene.objects == expected.objects and scene.info == {"note": index}
    with pytest.raises(IndexError):
        dataset.load_scene(7)


def test_shards_are_byte_identical_when_rewritten(tmp_path: Path) -> None:
    write_dataset(tmp_path / "a", {"train": 4})
    write_dataset(tmp_path / "b", {"train": 4})
    for name in ("train/shard-00000.safetensors", "train/shard-00001.safetensors", "dataset.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_missing_shard_is_named(dataset_root: Path) -> None:
    shard = dataset_root / "train" / "shard-00001.safetensors"
    shard.unlink()
    with pytest.raises(DataError, match=r"shard-00001\.safetensors.*missing"):
        MultiSceneDataset(dataset_root, "train")


def test_truncated_shard_is_named(dataset_root: Path) -> None:
    shard = dataset_root / "train" / "shard-00000.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"shard-00000\.safetensors.*truncated"):
        MultiSceneDataset(dataset_root, "train")
    # even without the size check, the safetensors header no longer matches the file
    with pytest.raises(DataError, match=r"shard-00000\.safetensors"):
        ShardReader(shard)


def test_version_mismatch_is_named(dataset_root: Path) -> None:
    path = dataset_root / "dataset.json"
    data = json.loads(path.read_text())
    data["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"dataset\.json.*format_version"):
        MultiSceneDataset(dataset_root, "train")


def _rewrite_scene(root: Path, **changes: torch.Tensor) -> None:
    """Overwrite scene 0 of the train split with bad tensors, keeping the file size in dataset.json."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = root / "train" / "shard-00000.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        metadata = handle.metadata()
    for name, value in changes.items():
        tensors[f"scene0000/{name}"] = value
    size = path.stat().st_size
    save_file(tensors, str(path), metadata=metadata)
    assert path.stat().st_size == size  # same shapes and dtypes: dataset.json still matches


def test_nan_depth_is_named(dataset_root: Path) -> None:
    depth = make_scene(0).depth.clone()
    depth[1, 2, 3] = float("nan")
    _rewrite_scene(dataset_root, depth=depth)
    dataset = MultiSceneDataset(dataset_root, "train")
    with pytest.raises(DataError, match=r"shard-00000\.safetensors scene 0: depth contains NaN"):
        dataset.load_scene(0)
    dataset.load_scene(1)  # other scenes still load


def test_non_orthonormal_rotation_is_named(dataset_root: Path) -> None:
    c2w = make_scene(0).c2w.clone()
    c2w[2, :3, 0] *= 1.5
    _rewrite_scene(dataset_root, c2w=c2w)
    with pytest.raises(DataError, match=r"shard-00000\.safetensors scene 0: .*not orthonormal"):
        MultiSceneDataset(dataset_root, "train").load_scene(0)


def test_wrong_dtype_is_rejected_by_writer(tmp_path: Path) -> None:
    meta = DatasetMeta(
        "x", H, W, ((0, 0, 0), (1, 1, 1)), 0.1, 2.0, {"train": SplitMeta(ID_VIEWS, OOD_VIEWS)}
    )
    scene = make_scene(0)
    scene.images = scene.images.float()
    with pytest.raises(DataError, match="images must be a uint8"):
        DatasetWriter(tmp_path, meta).write_shard("train", 0, 0, [scene])
    scene = make_scene(0)
    scene.view_is_ood = scene.view_is_ood.flip(0)
    with pytest.raises(DataError, match="ID views"):
        DatasetWriter(tmp_path, meta).write_shard("train", 0, 0, [scene])


def _batches(root: Path, count: int, **options: int) -> list[dict[str, torch.Tensor]]:
    settings = dict(scenes_per_batch=3, max_context_views=3, rays_per_scene=50, seed=5)
    settings.update(options)
    iterator = training_batches(root, "train", **settings)
    return [next(iterator) for _ in range(count)]


def test_training_batch_contents(dataset_root: Path) -> None:
    dataset = MultiSceneDataset(dataset_root, "train")
    batch = _batches(dataset_root, 1)[0]
    S, R = 3, 50
    C = batch["context_images"].shape[1]
    assert 1 <= C <= 3
    expected = {
        "context_images": ((S, C, H, W, 3), torch.float32),
        "context_K": ((S, C, 3, 3), torch.float32),
        "context_c2w": ((S, C, 4, 4), torch.float32),
        "target_origins": ((S, R, 3), torch.float32),
        "target_directions": ((S, R, 3), torch.float32),
        "target_colours": ((S, R, 3), torch.float32),
        "target_depth": ((S, R), torch.float32),
        "target_object_mask": ((S, R), torch.bool),
        "scene_index": ((S,), torch.int64),
    }
    assert set(batch) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == shape and batch[key].dtype == dtype, key
    assert torch.allclose(batch["target_directions"].norm(dim=-1), torch.ones(S, R), atol=1e-5)
    assert len(set(batch["scene_index"].tolist())) == S  # distinct scenes
    for row, index in enumerate(batch["scene_index"].tolist()):
        scene = dataset.load_scene(index)
        images = scene.images[:ID_VIEWS].float() / 255
        # context views are ID views of that scene
        for view_image, K, c2w in zip(
            batch["context_images"][row], batch["context_K"][row], batch["context_c2w"][row]
        ):
            matches = [v for v in range(ID_VIEWS) if torch.equal(images[v], view_image)]
            assert (
                len(matches) == 1
                and torch.equal(scene.c2w[matches[0]], c2w)
                and torch.equal(scene.K[matches[0]], K)
            )
        # each target ray goes through a pixel centre of an ID view whose colour/depth/mask it carries
        origins, directions = batch["target_origins"][row], batch["target_directions"][row]
        for ray in range(0, R, 7):
            view = [v for v in range(ID_VIEWS) if torch.allclose(scene.c2w[v, :3, 3], origins[ray])]
            assert len(view) == 1
            v = view[0]
            point = origins[ray] + 2.0 * directions[ray]
            u, pixel_v, _z = project_points(point[None], scene.K[v], scene.c2w[v])[0]
            col, line = int(u), int(pixel_v)
            assert abs(u - (col + 0.5)) < 1e-3 and abs(pixel_v - (line + 0.5)) < 1e-3
            assert torch.equal(batch["target_colours"][row, ray], images[v, line, col])
            assert batch["target_depth"][row, ray] == scene.depth[v, line, col]
            assert bool(batch["target_object_mask"][row, ray]) == bool(
                scene.object_mask[v, line, col] > 0
            )


def test_batches_deterministic_resumable_and_worker_independent(dataset_root: Path) -> None:
    plain = _batches(dataset_root, 5)
    again = _batches(dataset_root, 5)
    resumed = _batches(dataset_root, 2, start_step=3)
    with_workers = _batches(dataset_root, 5, num_workers=2)
    for key in plain[0]:
        for step in range(5):
            assert torch.equal(plain[step][key], again[step][key])
            assert torch.equal(plain[step][key], with_workers[step][key]), (key, step)
        assert torch.equal(plain[3][key], resumed[0][key]) and torch.equal(
            plain[4][key], resumed[1][key]
        )
    assert not torch.equal(plain[0]["target_origins"], plain[1]["target_origins"])
    context_counts = {b["context_images"].shape[1] for b in _batches(dataset_root, 12)}
    assert context_counts == {1, 2, 3}
    assert batch_seed(5, 3) != batch_seed(5, 4) and batch_seed(5, 3) != batch_seed(6, 3)


def test_errors_in_workers_are_clear(dataset_root: Path) -> None:
    depth = make_scene(0).depth.clone()
    depth[0, 0, 0] = float("inf")
    _rewrite_scene(dataset_root, depth=depth)
    dataset = MultiSceneDataset(dataset_root, "train")
    with pytest.raises(DataError, match="scene 0: depth contains NaN or inf"):
        dataset.load_scene(0)


def test_missing_dataset_json(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset\.json: not found"):
        MultiSceneDataset(tmp_path, "train")
    write_dataset(tmp_path / "d", {"train": 2})
    with pytest.raises(DataError, match="no split 'val'"):
        MultiSceneDataset(tmp_path / "d", "val")


def test_resume_with_settings_records_then_resumes_only_the_same_settings(tmp_path: Path) -> None:
    record = tmp_path / "out" / "job.json"
    settings = {"size": (32, 32), "name": "rooms"}
    words = {"mismatch": "other settings here", "remedy": "delete it"}
    resume_with_settings(record, settings, **words)  # creates the directory and the record
    assert json.loads(record.read_text()) == {"size": [32, 32], "name": "rooms"}
    resume_with_settings(record, settings, **words)  # same settings (tuples read back as lists)
    with pytest.raises(DataError, match=r"job\.json: other settings here"):
        resume_with_settings(record, {**settings, "name": "mazes"}, **words)
    record.write_text("{not json")
    with pytest.raises(DataError, match=r"job\.json: unreadable \(.*\); delete it"):
        resume_with_settings(record, settings, **words)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"background": [1, 1, 1], "mask_source": "alpha"}, ((1.0, 1.0, 1.0), "alpha")),
        ({"background": None, "mask_source": None}, (None, None)),
        # written before the fields existed: the colour an import composited on, alpha masks
        (
            {"generator": {"importer": "x", "options": {"background": "grey"}}},
            ((0.5,) * 3, "alpha"),
        ),
        ({"generator": {}}, (None, "generator")),  # a generated dataset: closed rooms
    ],
)
def test_background_and_mask_source_are_read(dataset_root: Path, changes, expected) -> None:
    path = dataset_root / "dataset.json"
    data = json.loads(path.read_text())
    data.pop("background", None), data.pop("mask_source", None)
    data.update(changes)
    path.write_text(json.dumps(data))
    meta = MultiSceneDataset(dataset_root, "train").meta
    assert (meta.background, meta.mask_source) == expected


@pytest.mark.parametrize(
    "changes",
    [
        {"background": [1, 1, 2]},
        {"background": "white"},
        {"background": [0, float("nan"), 0]},
        {"background": [1, True, 1]},
        {"mask_source": "magic"},
    ],
)
def test_bad_background_or_mask_source_is_named(dataset_root: Path, changes) -> None:
    path = dataset_root / "dataset.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"dataset\.json.*(background|mask_source)"):
        MultiSceneDataset(dataset_root, "train")


def _edit_meta(root: Path, edit) -> None:
    path = root / "dataset.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda d: d.update(splits=[1, 2]), r"splits must be an object, got \[1, 2\]"),
        (lambda d: d.update(image_height="6"), r"image_height must be an integer, got '6'"),
        (lambda d: d.update(image_width=0), r"image size 6x0 \(HxW\) is out of range"),
        (lambda d: d.update(image_width=10**9), r"image size 6x1000000000 \(HxW\) is out of"),
        (
            lambda d: d["scene_bounds"][0].__setitem__(1, float("nan")),
            r"scene_bounds value must be a finite",
        ),
        (
            lambda d: d["scene_bounds"][1].__setitem__(2, float("inf")),
            r"scene_bounds value must be a finite",
        ),
        (lambda d: d.pop("world_up"), r"field 'world_up' is missing"),
        (lambda d: d.update(near=float("nan")), r"near must be a finite number, got nan"),
        (lambda d: d["splits"]["train"].update(id_views=True), r"id_views must be an integer"),
        (
            lambda d: d["splits"]["train"]["shards"][0].update(file="../../outside.safetensors"),
            r"shards\[0\]\.file must be a \.safetensors path inside the dataset directory",
        ),
        (lambda d: d["splits"]["train"].update(shards={}), r"shards must be a list"),
    ],
)
def test_malformed_dataset_json_names_file_and_field(dataset_root: Path, edit, problem) -> None:
    _edit_meta(dataset_root, edit)
    with pytest.raises(DataError, match=rf"dataset\.json: .*{problem}"):
        MultiSceneDataset(dataset_root, "train")


def test_deeply_nested_or_non_utf8_dataset_json_is_named(dataset_root: Path) -> None:
    path = dataset_root / "dataset.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=r"dataset\.json: cannot read JSON \(nested too deeply\)"):
        read_meta(dataset_root)
    path.write_bytes(b'{"name": "\xff"}')
    with pytest.raises(DataError, match=r"dataset\.json: cannot read JSON \(not UTF-8"):
        read_meta(dataset_root)
    path.unlink()
    path.mkdir()
    with pytest.raises(DataError, match=r"dataset\.json: not found"):
        read_meta(dataset_root)


def test_object_mask_ids_beyond_the_object_count_are_named(dataset_root: Path) -> None:
    mask = make_scene(0).object_mask.clone()
    mask[0, 0, 0] = 3  # the scene lists 2 objects
    _rewrite_scene(dataset_root, object_mask=mask)
    with pytest.raises(DataError, match=r"scene 0: object_mask holds object id 3 but the scene"):
        MultiSceneDataset(dataset_root, "train").load_scene(0)


def test_principal_point_far_outside_the_image_is_named(dataset_root: Path) -> None:
    K = make_scene(0).K.clone()
    K[1, 0, 2] = 1e5
    _rewrite_scene(dataset_root, K=K)
    with pytest.raises(DataError, match=r"scene 0: principal point \(100000, 3\) lies far outside"):
        MultiSceneDataset(dataset_root, "train").load_scene(0)


def test_wrong_bottom_row_of_intrinsics_is_named(dataset_root: Path) -> None:
    K = make_scene(0).K.clone()
    K[2, 2, :] = torch.tensor([0.0, 0.5, 1.0])
    _rewrite_scene(dataset_root, K=K)
    with pytest.raises(DataError, match=r"scene 0: intrinsics rows 2-3 must be"):
        MultiSceneDataset(dataset_root, "train").load_scene(0)


@pytest.mark.parametrize("scenes", [[1, 2], [{"objects": 5}]])
def test_malformed_shard_header_is_named(dataset_root: Path, scenes) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = dataset_root / "test" / "shard-00000.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        header = json.loads(handle.metadata()["nerfvae"])
    header["scenes"] = scenes
    save_file(tensors, str(path), metadata={"nerfvae": json.dumps(header)})
    _edit_meta(
        dataset_root,
        lambda d: d["splits"]["test"]["shards"][0].update(num_bytes=path.stat().st_size),
    )
    with pytest.raises(DataError, match=r"test/shard-00000\.safetensors: shard header scenes"):
        MultiSceneDataset(dataset_root, "test").load_scene(0)
