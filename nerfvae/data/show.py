"""Contact sheet of a dataset: a few scenes, their ID and OOD views, depth and object masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nerfvae.data.loader import MultiSceneDataset

_MASK_COLOURS = np.array(
    [
        [0, 0, 0],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
    ],
    dtype=np.uint8,
)


def _depth_to_rgb(depth: torch.Tensor, near: float, far: float) -> np.ndarray:
    """``[H, W]`` depth -> ``[H, W, 3]`` uint8 (viridis, log scale between near and far; 0 = black)."""
    from matplotlib import colormaps

    value = depth.numpy().astype(np.float64)
    valid = value > 0
    scaled = (np.log(np.clip(value, near, far)) - np.log(near)) / (np.log(far) - np.log(near))
    rgb = (colormaps["viridis"](scaled)[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def _mask_to_rgb(mask: torch.Tensor) -> np.ndarray:
    ids = mask.numpy().astype(np.int64)
    return _MASK_COLOURS[np.where(ids > 0, (ids - 1) % (len(_MASK_COLOURS) - 1) + 1, 0)]


def contact_sheet(
    root: str | Path,
    out: str | Path,
    split: str = "test",
    num_scenes: int = 4,
    max_id_views: int = 5,
    max_ood_views: int = 3,
    scale: int = 3,
) -> Path:
    """Write a PNG: per scene, a row of colour views (ID then OOD, OOD framed in orange), a row of
    depth maps and a row of object masks. Returns the path written."""
    from PIL import Image, ImageDraw

    dataset = MultiSceneDataset(root, split)
    H, W = dataset.image_height, dataset.image_width
    tile_h, tile_w = H * scale, W * scale
    label_h = 14
    columns = min(max_id_views, dataset.num_id_views) + min(max_ood_views, dataset.num_ood_views)
    count = min(num_scenes, len(dataset))
    sheet = Image.new("RGB", (columns * (tile_w + 4), count * (3 * tile_h + label_h + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    for row in range(count):
        # spread the chosen scenes over the split
        index = row * len(dataset) // count
        scene = dataset.load_scene(index)
        views = list(range(min(max_id_views, scene.num_id_views)))
        views += list(
            range(scene.num_id_views, scene.num_id_views + min(max_ood_views, scene.num_ood_views))
        )
        top = row * (3 * tile_h + label_h + 6)
        shapes = ", ".join(
            f"{o.get('colour_name', '')} {o.get('shape', '')}" for o in scene.objects
        )
        draw.text((2, top), f"{scene.scene_id}: {shapes}"[:160], fill="black")
        for column, view in enumerate(views):
            left = column * (tile_w + 4)
            tiles = [scene.images[view].numpy()]
            if scene.depth is not None:
                tiles.append(_depth_to_rgb(scene.depth[view], dataset.near, dataset.far))
            if scene.object_mask is not None:
                tiles.append(_mask_to_rgb(scene.object_mask[view]))
            for position, tile in enumerate(tiles):
                image = Image.fromarray(tile).resize((tile_w, tile_h), Image.NEAREST)
                y = top + label_h + position * tile_h
                sheet.paste(image, (left + 2, y))
            if bool(scene.view_is_ood[view]):
                y = top + label_h
                draw.rectangle(
                    [left + 1, y - 1, left + tile_w + 2, y + tile_h], outline="orange", width=2
                )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
