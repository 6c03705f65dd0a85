"""The model shipped in assets/model, which `make demo` loads: it fits in 20 MB, infers and renders
a held-out room far better than a trivial predictor (and than its own config untrained), and its
committed logs and eval cover the whole run."""

from __future__ import annotations

import csv
import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT

from nerfvae.data.generate import make_settings, render_scene
from nerfvae.data.storage import SceneRecord
from nerfvae.metrics import psnr
from nerfvae.training.checkpoint import list_checkpoints
from nerfvae.training.loading import load_trained_model
from nerfvae.training.warm_start import lineage

SHIPPED = REPO_ROOT / "assets" / "model"
MAX_BYTES = 20 * 1024 * 1024


# The shipped model is trained on the `small` rooms (64×64); its scene box and cameras are theirs.
SHIPPED_DATA_PRESET = "small"
# PSNR (dB) by which held-out views must beat a constant image of the context views' mean colour.
# Trained models clear it by 5-7 dB on the scene below; untrained weights fall ~10 dB short of it.
MARGIN_OVER_TRIVIAL_DB = 3.0


def held_out_view_psnr(model: torch.nn.Module, scene: SceneRecord) -> tuple[float, float]:
    """Infer ``scene`` from its first 3 views and render its next two (an ID and an OOD view) at
    half resolution, to keep the test fast: ``(model PSNR, mean-context-colour PSNR)``, each the
    mean over the two views."""
    images = (scene.images.float() / 255.0)[None]  # [1, V, H, W, 3]
    K, c2w = scene.K[None], scene.c2w[None]
    context, targets = slice(0, 3), slice(3, 5)
    # Half resolution: pixel-area means of the ground truth, intrinsics of a camera half as fine.
    truth = F.avg_pool2d(images[0, targets].permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    target_K = K[:, targets].clone()
    target_K[..., :2, :] /= 2
    height, width = truth.shape[1:3]
    with torch.no_grad():
        posterior = model.infer(images[:, context], K[:, context], c2w[:, context])
        views = model.render_views(posterior.mean, target_K, c2w[:, targets], height, width)
    rendered = views["colour"][0]  # [2, h, w, 3]
    mean_colour = images[0, context].mean(dim=(0, 1, 2)).expand_as(truth)
    model_psnr = sum(psnr(rendered[v], truth[v]) for v in range(2)) / 2
    trivial_psnr = sum(psnr(mean_colour[v], truth[v]) for v in range(2)) / 2
    return model_psnr, trivial_psnr


def test_shipped_model_fits_and_renders():
    pytest.importorskip("mitsuba")
    checkpoints = list_checkpoints(SHIPPED / "checkpoints")
    assert len(checkpoints) == 1  # only the shipped step travels in the repository
    total = sum(path.stat().st_size for path in SHIPPED.rglob("*") if path.is_file())
    assert total <= MAX_BYTES, f"assets/model is {total / 2**20:.1f} MB"
    model, _config, _record = load_trained_model(SHIPPED)
    # Test scene 0 of the training data's preset: a room the model never saw, of its distribution.
    settings = make_settings(SHIPPED_DATA_PRESET, eval_scenes=1, views=4, ood_views=1)
    scene = render_scene(settings, "test", 0)
    model_psnr, trivial_psnr = held_out_view_psnr(model, scene)
    assert model_psnr > trivial_psnr + MARGIN_OVER_TRIVIAL_DB, (model_psnr, trivial_psnr)
    # The floor is one broken weights would fail: the same architecture, untrained, misses it.
    torch.manual_seed(0)
    untrained = type(model)(model.config).eval()
    untrained_psnr, _ = held_out_view_psnr(untrained, scene)
    assert untrained_psnr < trivial_psnr + MARGIN_OVER_TRIVIAL_DB, (untrained_psnr, trivial_psnr)


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
