"""The model shipped in assets/model, which `make demo` loads: it loads, renders, fits in 20 MB,
and its committed logs and eval cover the whole run."""

from __future__ import annotations

import csv
import itertools
import json

import torch
from conftest import REPO_ROOT

from nerfvae.training.checkpoint import list_checkpoints
from nerfvae.training.loading import load_trained_model
from nerfvae.training.warm_start import lineage

SHIPPED = REPO_ROOT / "assets" / "model"
MAX_BYTES = 20 * 1024 * 1024


def test_shipped_model_fits_and_renders():
    checkpoints = list_checkpoints(SHIPPED / "checkpoints")
    assert len(checkpoints) == 1  # only the shipped step travels in the repository
    total = sum(path.stat().st_size for path in SHIPPED.rglob("*") if path.is_file())
    assert total <= MAX_BYTES, f"assets/model is {total / 2**20:.1f} MB"
    model, config, _record = load_trained_model(SHIPPED)
    torch.manual_seed(0)
    images = torch.rand(1, 1, 16, 16, 3)
    K = torch.tensor([[[[20.0, 0.0, 8.0], [0.0, 20.0, 8.0], [0.0, 0.0, 1.0]]]])
    c2w = torch.eye(4).reshape(1, 1, 4, 4).clone()
    c2w[..., :3, 3] = torch.tensor([0.0, -2.5, 1.2])
    posterior = model.infer(images, K, c2w)
    grid = config.nerfvae.latent.grid
    assert posterior.mean.shape == (1, grid * grid, config.nerfvae.latent.channels)
    out = model.render_views(posterior.mean, K, c2w, 16, 16)
    assert torch.isfinite(out["colour"]).all() and out["colour"].shape == (1, 1, 16, 16, 3)


def test_shipped_logs_cover_every_stage_and_eval_has_each_k():
    _, _, record = load_trained_model(SHIPPED)
    stages = lineage(SHIPPED)
    for stage in stages:
        rows = list(csv.DictReader((stage / "metrics.csv").open()))
        # one row every log_every steps from the start: no part of the run is missing
        log_every = json.loads((stage / "config.json").read_text())["log_every"]
        steps = [int(row["step"]) for row in rows]
        assert steps[0] == log_every
        assert all(0 < b - a <= log_every for a, b in itertools.pairwise(steps))
        assert (stage / "validation.csv").exists()
    final_steps = int(list(csv.DictReader((SHIPPED / "metrics.csv").open()))[-1]["step"])
    assert final_steps == record["step"]
    for parent in stages[1:]:
        init = json.loads((parent / "init.json").read_text())
        assert (
            int(list(csv.DictReader((parent / "metrics.csv").open()))[-1]["step"]) == init["step"]
        )
    metrics = json.loads((SHIPPED / "eval" / "metrics.json").read_text())
    assert metrics["checkpoint_step"] == record["step"]
    for k in ("1", "2", "3", "5"):
        assert {"id", "ood"} <= set(metrics["results"][k])
