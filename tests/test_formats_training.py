"""Imported datasets train and evaluate through the CLI exactly like the built-in rooms."""

from __future__ import annotations

import json

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
        ["train", "--config", "tiny", "--data", str(data), "--run", str(run), "--steps", "2",
         "--scenes-per-batch", "2", "--rays-per-scene", "32", "--validate-every", "0",
         "--validation-scenes", "1", "--nerfvae.sampling.num-coarse", "8"]
    )  # fmt: skip
    assert code == 0
    assert (run / "checkpoints" / "step_00000002.json").is_file()
    out = tmp_path / "metrics.json"
    assert main(["eval", "--run", str(run), "--data", str(data), "--context", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["results"]["1"]["id"]["num_views"] > 0
    assert 0 < result["results"]["1"]["id"]["psnr"] < 60
