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
    # (every writer's scenes are plain enough that 20 steps cut it by a large margin).
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(row["step"]) for row in rows] == [5, 10, 15, 20]
    first, last = rows[0], rows[-1]
    assert float(last["loss"]) < float(first["loss"]) - 0.5, (first["loss"], last["loss"])
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
