"""Imported datasets train and evaluate through the CLI exactly like the built-in rooms."""

from __future__ import annotations

import csv
import json
import math

import pytest
from test_formats_blender import write_blender_scene, write_nerfstudio_scene
from test_formats_gqn import write_gqn
from test_formats_srn import write_srn

from nerfvae.cli.main import main

WRITERS = {
    "blender": lambda root: write_blender_scene(root, views=(5, 2, 3)),
    "nerfstudio": lambda root: write_nerfstudio_scene(root, count=10),
    "srn": write_srn,
    "gqn": write_gqn,
}


@pytest.mark.parametrize("format_name", sorted(WRITERS))
def test_imported_dataset_trains_and_evaluates(format_name, tmp_path):
    source = WRITERS[format_name](tmp_path / "source")
    data = tmp_path / "data"
    assert main(["data", "import", str(source), "--format", format_name, "--out", str(data),
                 "--no-progress"]) == 0  # fmt: skip
    run = tmp_path / "run"
    code = main(
        ["train", "--config", "tiny", "--data", str(data), "--run", str(run), "--steps", "20",
         "--log-every", "5", "--checkpoint-every", "5", "--keep-checkpoints", "4",
         "--scenes-per-batch", "2", "--rays-per-scene", "32",
         "--validate-every", "0", "--validation-scenes", "1", "--nerfvae.sampling.num-coarse", "8"]
    )  # fmt: skip
    assert code == 0
    assert (run / "checkpoints" / "step_00000020.json").is_file()
    # It learned from the imported images: the loss fell from the first logged steps to the last
    # (every writer's scenes are plain enough that 20 steps cut it by a clear margin).
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(row["step"]) for row in rows] == [5, 10, 15, 20]
    first, last = rows[0], rows[-1]
    assert float(last["loss"]) < float(first["loss"]) - 0.3, (first["loss"], last["loss"])
    assert float(last["psnr"]) > float(first["psnr"]), (first["psnr"], last["psnr"])
    # ... and what it learned carries to held-out views: eval scores the last checkpoint above the
    # first (step 5, barely trained).
    results = {}
    for step in (5, 20):
        out = tmp_path / f"metrics_{step}.json"
        checkpoint = run / "checkpoints" / f"step_{step:08d}.json"
        assert main(["eval", "--run", str(run), "--data", str(data), "--context", "1",
                     "--checkpoint", str(checkpoint), "--out", str(out)]) == 0  # fmt: skip
        results[step] = json.loads(out.read_text())["results"]["1"]
    for cameras, entry in results[20].items():
        assert entry["num_views"] > 0
        for key in ("psnr", "ssim", "mse"):
            assert math.isfinite(entry[key]), (cameras, key)
        assert entry["psnr"] > results[5][cameras]["psnr"], (cameras, entry, results[5][cameras])
    assert math.isfinite(results[20]["id"]["nelbo_bits_per_dim"])


def test_object_dataset_trains_against_its_own_background(tmp_path, capsys):
    """An SRN import records a white background; training takes it with no flag (a model that
    rendered black behind the objects would start near 3 dB on these white images), and a
    contradicting --nerfvae.background is used but warned about."""
    data = tmp_path / "data"
    source = write_srn(tmp_path / "source")
    assert main(["data", "import", str(source), "--format", "srn", "--out", str(data),
                 "--no-progress"]) == 0  # fmt: skip
    common = ["--config", "tiny", "--data", str(data), "--steps", "5", "--log-every", "5",
              "--scenes-per-batch", "2", "--rays-per-scene", "32", "--validate-every", "0",
              "--nerfvae.sampling.num-coarse", "8"]  # fmt: skip
    assert main(["train", "--run", str(tmp_path / "own"), *common]) == 0
    config = json.loads((tmp_path / "own" / "config.json").read_text())
    assert config["nerfvae"]["background"] == [1.0, 1.0, 1.0]
    first = next(csv.DictReader((tmp_path / "own" / "metrics.csv").open()))
    assert float(first["psnr"]) > 10.0, first
    assert "warning" not in capsys.readouterr().err
    assert main(["train", "--run", str(tmp_path / "black"), *common,
                 "--nerfvae.background", "0", "0", "0"]) == 0  # fmt: skip
    assert "contradicts the dataset's background" in capsys.readouterr().err
    config = json.loads((tmp_path / "black" / "config.json").read_text())
    assert config["nerfvae"]["background"] == [0.0, 0.0, 0.0]
    first = next(csv.DictReader((tmp_path / "black" / "metrics.csv").open()))
    assert float(first["psnr"]) < 8.0, first


def test_training_without_a_val_split_says_validation_is_off(tmp_path, capsys):
    """Never validate on the test split: a dataset without val trains with validation off."""
    data = tmp_path / "data"
    source = write_gqn(tmp_path / "source")  # 4 training scenes: too few to carve a val split
    assert main(["data", "import", str(source), "--format", "gqn", "--out", str(data),
                 "--no-progress"]) == 0  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", "--config", "tiny", "--data", str(data), "--run", str(run),
                 "--steps", "2", "--scenes-per-batch", "2", "--rays-per-scene", "16",
                 "--validate-every", "1", "--nerfvae.sampling.num-coarse", "8"]) == 0  # fmt: skip
    assert "no val split: validation is off" in capsys.readouterr().err
    validation = run / "validation.csv"
    assert not validation.exists() or not list(csv.DictReader(validation.open()))
    assert (run / "checkpoints" / "step_00000002.json").is_file()
    assert not list((run / "renders").glob("*.png"))


def test_objects_preset_trains_an_srn_import_with_no_other_flag(tmp_path):
    """`--config objects` on an SRN import: the white background from the data, see-through box
    faces, validation on the import's val split, and eval reports object-pixel PSNR."""
    data = tmp_path / "data"
    source = write_srn(tmp_path / "source")
    assert main(["data", "import", str(source), "--format", "srn", "--out", str(data),
                 "--no-progress"]) == 0  # fmt: skip
    run = tmp_path / "run"
    # only the size is cut for the test; nothing about the background or the box is given
    assert main(["train", "--config", "objects", "--data", str(data), "--run", str(run),
                 "--steps", "4", "--scenes-per-batch", "2", "--rays-per-scene", "32",
                 "--log-every", "2", "--nerfvae.sampling.num-coarse", "16",
                 "--nerfvae.sampling.num-fine", "8"]) == 0  # fmt: skip
    config = json.loads((run / "config.json").read_text())
    assert config["nerfvae"]["background"] == [1.0, 1.0, 1.0]
    assert config["nerfvae"]["sampling"]["opaque_far"] is False
    assert config["nerfvae"]["scene_function"]["conditioning"] == "planes"
    assert list(csv.DictReader((run / "validation.csv").open()))  # validated on val
    out = tmp_path / "metrics.json"
    assert main(["eval", "--run", str(run), "--data", str(data), "--context", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    entry = json.loads(out.read_text())["results"]["1"]["id"]
    assert math.isfinite(entry["object_psnr"]) and math.isfinite(entry["psnr"])
