"""Periodic validation during training: a few held-out scenes, metrics and a render sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nerfvae.data.loader import MultiSceneDataset
from nerfvae.metrics import psnr
from nerfvae.models import SceneModel
from nerfvae.training.config import TrainConfig
from nerfvae.visualise import depth_to_image, to_uint8

CONTEXT_VIEWS = 3


def validation_dataset(training: MultiSceneDataset) -> MultiSceneDataset | None:
    """The ``val`` split of the dataset ``training`` was read from, or None when it has none (or
    it is empty): training never validates on the test split, kept for the final evaluation."""
    split = training.meta.splits.get("val")
    if split is None or split.num_scenes == 0:
        return None
    return MultiSceneDataset(training.root, "val")


@torch.no_grad()
def validate(
    model: SceneModel, dataset: MultiSceneDataset, config: TrainConfig, image_path: Path
) -> dict[str, float]:
    """Infer each validation scene from its first ID views (posterior mean), render one held-out ID
    view and one OOD view (if any), return PSNR / object-pixel PSNR, mean opacity and depth MAE
    (where the data has depth), and write a PNG sheet (per row: context views | target | render |
    rendered depth, for ID then OOD)."""
    count = min(config.validation_scenes, len(dataset))
    scenes = [dataset.load_scene(index) for index in range(count)]
    height, width = dataset.meta.image_height, dataset.meta.image_width
    num_context = min(CONTEXT_VIEWS, min(s.num_id_views for s in scenes) - 1)
    context = list(range(num_context))
    id_target = num_context
    device = next(model.parameters()).device
    images = torch.stack([s.images.float() / 255.0 for s in scenes]).to(device)
    K = torch.stack([s.K for s in scenes]).float().to(device)
    c2w = torch.stack([s.c2w for s in scenes]).float().to(device)
    posterior = model.infer(images[:, context], K[:, context], c2w[:, context])
    latent = posterior.mean

    targets = {"id": [id_target] * count}
    if all(s.num_ood_views > 0 for s in scenes):
        targets["ood"] = [s.num_id_views for s in scenes]  # first OOD view
    results: dict[str, float] = {}
    rows = [[to_uint8(images[i, v]) for v in context] for i in range(count)]
    for kind, view_index in targets.items():
        select = torch.tensor(view_index, device=device)
        scene_index = torch.arange(count, device=device)
        rendered = model.render_views(
            latent,
            K[scene_index, select][:, None],
            c2w[scene_index, select][:, None],
            height,
            width,
        )
        truth = images[scene_index, select]
        prediction = rendered["colour"][:, 0]
        results[f"psnr_{kind}"] = psnr(prediction, truth)
        if scenes[0].object_mask is not None:
            masks = torch.stack([s.object_mask[v] > 0 for s, v in zip(scenes, view_index)])
            masks = masks.to(device)
            results[f"object_psnr_{kind}"] = psnr(prediction, truth, masks)
        # How much of each ray the model absorbs, and whether it puts the surfaces where they are
        # (both are blind spots of PSNR: a hazy volume can match colours with the wrong geometry).
        results[f"opacity_{kind}"] = float(rendered["opacity"].mean())
        if scenes[0].depth is not None:
            true_depth = torch.stack([s.depth[v] for s, v in zip(scenes, view_index)]).to(device)
            results[f"depth_mae_{kind}"] = float(
                (rendered["depth"][:, 0] - true_depth).abs().mean()
            )
        for i in range(count):
            rows[i] += [
                to_uint8(truth[i]),
                to_uint8(prediction[i]),
                to_uint8(depth_to_image(rendered["depth"][i, 0], dataset.meta.far)),
            ]
    sheet = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(image_path)
    return results
