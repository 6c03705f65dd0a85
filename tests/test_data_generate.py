"""Generating the rooms dataset: determinism, resume, contents, CLI (very small: 16x16, 7 scenes)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfvae.data import mitsuba as _mitsuba  # noqa: F401  (sets Mitsuba's LLVM path before import)
from nerfvae.data.generate import GeneratorSettings, generate, make_settings
from nerfvae.data.loader import MultiSceneDataset, training_batches
from nerfvae.data.rooms import ID_CAMERAS, OOD_CAMERAS, ObjectSpec, object_signed_distances
from nerfvae.errors import DataError

pytest.importorskip("mitsuba")

OVERRIDES = dict(
    scenes=3, eval_scenes=2, views=4, ood_views=2, resolution=16, spp=1, shard_size=2, seed=7
)
CLI_OVERRIDES = [
    "--scenes", "3", "--eval-scenes", "2", "--views", "4", "--ood-views", "2",
    "--resolution", "16", "--spp", "1", "--shard-size", "2", "--seed", "7",
]  # fmt: skip


def _settings() -> GeneratorSettings:
    return make_settings("tiny", **OVERRIDES)  # type: ignore[arg-type]


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in (".json", ".safetensors")
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rooms") / "data"
    report = generate(root, _settings(), workers=1, progress=False)
    assert report.rendered_views == 3 * 4 + 2 * 2 * 6 and report.skipped_views == 0
    return root


def test_same_seed_same_bytes_via_cli(generated: Path, tmp_path: Path) -> None:
    from nerfvae.cli.main import main

    out = tmp_path / "again"
    assert (
        main(
            [
                "data",
                "generate",
                "--preset",
                "tiny",
                "--out",
                str(out),
                "--no-progress",
                *CLI_OVERRIDES,
            ]
        )
        == 0
    )
    assert _files(out) == _files(generated)
    assert (
        len(_files(out)) == 2 + 4
    )  # dataset.json, generation.json, 2 train + 1 val + 1 test shards


def test_other_seed_other_data_and_no_mixing(generated: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate(other, make_settings("tiny", **{**OVERRIDES, "seed": 8}), progress=False)  # type: ignore[arg-type]
    a = MultiSceneDataset(generated, "train").load_scene(0)
    b = MultiSceneDataset(other, "train").load_scene(0)
    assert not torch.equal(a.images, b.images)
    with pytest.raises(DataError, match="different settings"):
        generate(other, _settings(), progress=False)


def test_resume_renders_only_unfinished_shards(generated: Path, tmp_path: Path) -> None:
    root = tmp_path / "resumed"
    shutil.copytree(generated, root)
    (root / "dataset.json").unlink()  # as if killed before finishing
    (root / "train" / "shard-00001.safetensors").unlink()  # never written
    val_shard = root / "val" / "shard-00000.safetensors"
    val_shard.write_bytes(val_shard.read_bytes()[:-500])  # half-written by something else
    gone = subprocess.Popen(["true"])  # a process that has exited: its id is free
    gone.wait()
    stale = root / "test" / f".shard-00000.safetensors.tmp-{gone.pid}"  # a killed writer's file
    stale.write_bytes(b"partial")
    # a temporary of a writer that is still running (another generate on this directory) stays
    live = root / "train" / f".shard-00099.safetensors.tmp-{os.getppid()}"
    live.write_bytes(b"being written")
    with pytest.raises(DataError, match="generation has not finished"):
        MultiSceneDataset(root, "train")
    report = generate(root, _settings(), progress=False)
    assert report.rendered_views == 1 * 4 + 2 * 6  # train shard 1 (1 scene) + val shard (2 scenes)
    assert report.skipped_views == 2 * 4 + 2 * 6
    assert not stale.exists() and live.exists()
    live.unlink()
    assert _files(root) == _files(generated)


def test_dataset_description(generated: Path) -> None:
    meta = json.loads((generated / "dataset.json").read_text())
    assert meta["format_version"] == 1 and meta["world_up"] == "+z"
    # closed rooms: no background shows; masks are the renderer's object ids
    assert meta["background"] is None and meta["mask_source"] == "generator"
    assert meta["image_height"] == meta["image_width"] == 16
    assert meta["scene_bounds"] == [[-3.0, -3.0, 0.0], [3.0, 3.0, 2.5]]
    assert 0 < meta["near"] < meta["generator"]["measured_depth_range"][0]
    assert meta["generator"]["measured_depth_range"][1] < meta["far"]
    assert meta["generator"]["seed"] == 7 and meta["generator"]["preset"] == "tiny"
    assert {s: meta["splits"][s]["num_scenes"] for s in ("train", "val", "test")} == {
        "train": 3,
        "val": 2,
        "test": 2,
    }
    assert meta["splits"]["train"]["ood_views"] == 0 and meta["splits"]["test"]["ood_views"] == 2
    cameras = meta["camera_distributions"]
    assert cameras["id"]["elevation_deg"][1] < cameras["ood"]["elevation_deg"][0]
    assert cameras["ood"]["radius"][1] < cameras["id"]["radius"][0]
    for predictor in ("mean_training_image", "context_mean_colour"):
        for targets in ("id_targets", "ood_targets"):
            value = meta["baselines"]["test"][predictor][targets]
            assert math.isfinite(value) and 3.0 < value < 40.0


def _camera_geometry(c2w: torch.Tensor, target_z: float) -> tuple[np.ndarray, np.ndarray]:
    """Elevation (degrees) and distance of cameras from where their axis crosses z = target_z."""
    centre, forward = c2w[:, :3, 3].double(), c2w[:, :3, 2].double()
    t = (target_z - centre[:, 2]) / forward[:, 2]
    radius = t.numpy()
    elevation = np.degrees(np.arcsin(-forward[:, 2].numpy()))
    return elevation, radius


def test_scenes_and_ground_truth(generated: Path) -> None:
    for split in ("train", "val", "test"):
        dataset = MultiSceneDataset(generated, split)
        for index in range(len(dataset)):
            scene = dataset.load_scene(index)
            assert 2 <= len(scene.objects) <= 5
            ids = set(torch.unique(scene.object_mask).tolist())
            assert ids <= set(range(len(scene.objects) + 1)) and len(ids) >= 2
            assert (
                float(scene.depth.min()) >= dataset.near and float(scene.depth.max()) <= dataset.far
            )
            assert scene.num_ood_views == (0 if split == "train" else 2)
            objects = [
                ObjectSpec(**{k: v for k, v in o.items() if k not in ("id", "size")})
                for o in scene.objects
            ]
            for obj, record in zip(objects, scene.objects):
                assert record["shape"] in ("sphere", "cube", "cylinder")
                assert record["material"] in ("matte", "plastic", "metal")
                assert obj.position[2] == pytest.approx(
                    record["size"][2] / 2
                )  # stands on the floor
            for a in range(len(objects)):  # no interpenetration (bounding circles apart)
                for b in range(a):
                    gap = math.dist(objects[a].position[:2], objects[b].position[:2])
                    assert gap > objects[a].footprint_radius + objects[b].footprint_radius
            id_elevation, id_radius = _camera_geometry(
                scene.c2w[: scene.num_id_views], ID_CAMERAS.target[2]
            )
            assert (id_elevation >= ID_CAMERAS.elevation_deg[0] - 1e-3).all()
            assert (id_elevation <= ID_CAMERAS.elevation_deg[1] + 1e-3).all()
            assert np.allclose(id_radius.clip(*ID_CAMERAS.radius), id_radius, atol=1e-4)
            if scene.num_ood_views:
                ood_elevation, ood_radius = _camera_geometry(
                    scene.c2w[scene.num_id_views :], OOD_CAMERAS.target[2]
                )
                assert (ood_elevation >= OOD_CAMERAS.elevation_deg[0] - 1e-3).all()
                assert (ood_radius <= OOD_CAMERAS.radius[1] + 1e-4).all()


def test_training_rays_hit_the_objects_they_are_labelled_with(generated: Path) -> None:
    """End to end: origin + depth * direction of a masked target ray lies on that scene's objects."""
    dataset = MultiSceneDataset(generated, "train")
    batches = training_batches(
        generated, "train", scenes_per_batch=3, max_context_views=2, rays_per_scene=768, seed=0
    )
    batch = next(batches)
    points = batch["target_origins"] + batch["target_depth"][..., None] * batch["target_directions"]
    for row, index in enumerate(batch["scene_index"].tolist()):
        scene = dataset.load_scene(index)
        objects = [
            ObjectSpec(**{k: v for k, v in o.items() if k not in ("id", "size")})
            for o in scene.objects
        ]
        distance = np.abs(object_signed_distances(objects, points[row].double().numpy())).min(
            axis=0
        )
        on_objects = batch["target_object_mask"][row].numpy()
        assert on_objects.any() and (~on_objects).any()
        assert distance[on_objects].max() < 3e-3
        # background rays end on the floor, a wall or the sky plane of the room
        background = points[row][~torch.from_numpy(on_objects)].double()
        on_plane = (
            (background[:, 2].abs() < 1e-3)
            | ((background[:, 2] - 2.5).abs() < 1e-3)
            | ((background[:, :2].abs() - 3.0).abs() < 1e-3).any(dim=-1)
        )
        assert bool(on_plane.all())


def test_show_writes_a_contact_sheet(generated: Path, tmp_path: Path) -> None:
    from PIL import Image

    from nerfvae.cli.main import main

    out = tmp_path / "sheet.png"
    assert (
        main(["data", "show", str(generated), "--out", str(out), "--scenes", "2", "--scale", "2"])
        == 0
    )
    image = np.asarray(Image.open(out))
    assert image.shape[1] == 6 * (32 + 4) and image.shape[0] == 2 * (3 * 32 + 14 + 6)
    assert image.std() > 10  # not blank


def test_objects_preset_renders_objects_before_a_white_background(tmp_path: Path) -> None:
    """`--preset objects`: an open scene — white where rays miss, objects masked and with depth,
    OOD cameras above the ID ones — whose dataset.json says so."""
    from nerfvae.data.rooms import OBJECT_ID_CAMERAS, OBJECT_OOD_CAMERAS

    settings = make_settings("objects", **OVERRIDES)  # type: ignore[arg-type]
    generate(tmp_path / "objects", settings, workers=1, progress=False)
    dataset = MultiSceneDataset(tmp_path / "objects", "test")
    meta = dataset.meta
    assert meta.name == "objects" and meta.background == (1.0, 1.0, 1.0)
    assert meta.mask_source == "generator" and meta.scene_bounds == ((-1, -1, 0), (1, 1, 1.2))
    assert meta.camera_distributions["ood"]["elevation_deg"] == list(
        OBJECT_OOD_CAMERAS.elevation_deg
    )
    for index in range(len(dataset)):
        scene = dataset.load_scene(index)
        images, depth, mask = scene.images.float(), scene.depth, scene.object_mask
        assert 1 <= len(scene.objects) <= 3 and int(mask.max()) <= len(scene.objects)
        missed = depth == 0
        assert missed.any() and (mask[missed] == 0).all() and (mask[~missed] > 0).all()
        # the background is white (pixels whose centre misses may be partly covered at an edge)
        assert images[missed].mean() > 245 and images[~missed].mean() < 200
        assert (depth[~missed] > meta.near).all() and (depth < meta.far).all()
        # cameras look down at their elevation: ID at most 40 degrees, OOD at least 55
        elevation = torch.rad2deg(torch.asin(-scene.c2w[:, 2, 2]))
        ood = scene.view_is_ood
        assert (elevation[~ood] <= OBJECT_ID_CAMERAS.elevation_deg[1] + 1e-3).all()
        assert (elevation[ood] >= OBJECT_OOD_CAMERAS.elevation_deg[0] - 1e-3).all()
