"""``nerfvae export``: take geometry out of a trained model (``nerfvae export mesh ...``)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Literal

import tyro

from nerfvae.cli.common import (
    TEST_TIME_FLAGS,
    replace_deprecated_flags,
    subcommand_usage,
    usage_exit_status,
)
from nerfvae.errors import ConfigError, DataError, check_at_least
from nerfvae.inference import RefinementConfig
from nerfvae.precision import MachineOptions, use_threads

DESCRIPTION = "export a scene's geometry: `export mesh` writes a coloured PLY/OBJ surface"

SUBCOMMANDS = {"mesh": "marching-cubes surface of an inferred or prior-sampled scene (PLY/OBJ)"}


@dataclass
class MeshArgs:
    """Extract a coloured surface mesh from a trained model: infer a dataset scene from chosen
    context views (or draw a scene from the prior), evaluate the density on a grid in the scene
    box, run marching cubes, colour the vertices from the field and write PLY or OBJ. For the
    built-in rooms it also prints the Chamfer distance to the scene's ground-truth objects."""

    run: str
    """Run directory (from `nerfvae train`)."""
    out: str
    """Output mesh file: .ply (binary, vertex colours) or .obj (vertex colours as `v x y z r g b`)."""
    data: str | None = None
    """Dataset directory (needed with --scene)."""
    split: str = "test"
    """Dataset split the scene comes from."""
    scene: int | None = None
    """Scene index within the split to infer from its context views."""
    context: str = "0,1,2"
    """Comma-separated view indices of the scene used as context, each at most once."""
    prior_sample: int | None = None
    """Export prior sample N instead of a dataset scene (the same scene as sample N of
    `nerfvae sample --seed SEED` with the same --prior)."""
    prior: Literal["auto", "standard", "aggregate", "learned"] = "auto"
    """With --prior-sample: the prior the scene is drawn from. `auto`: the run's learned prior
    (`nerfvae prior fit`) if it has one for the checkpoint, else its aggregate prior, else the
    model's N(0, I) (docs/evaluation.md)."""
    latent: Literal["mean", "sample"] = "mean"
    """With --scene: the posterior mean, or one posterior sample drawn with --seed."""
    seed: int = 0
    """Seed of the posterior or prior sample."""
    test_time: RefinementConfig = field(default_factory=RefinementConfig)
    """With --scene: test-time refinement of the posterior on the context views
    (docs/evaluation.md)."""
    resolution: int = 128
    """Grid nodes along the scene box's longest side."""
    density_threshold: float = 10.0
    """Iso-level of the volume density (1/metre)."""
    crop: str | None = None
    """Export only this part of the scene box: `xmin,ymin,zmin,xmax,ymax,zmax` in world units
    (e.g. `--crop=-2,-2,0,2,2,1.5` keeps the built-in rooms' objects and drops the walls; the `=`
    keeps a leading minus from reading as an option)."""
    preview: str | None = None
    """Also draw the mesh into this PNG (matplotlib, CPU only), with the ground-truth objects as
    red dots where the dataset lists them."""
    chunk_points: int = 65536
    """Grid points per scene-function call."""
    checkpoint: str | None = None
    """Checkpoint JSON to load (default: the run's newest)."""
    device: str = "auto"
    """Torch device (`auto`: CUDA when available, else CPU)."""
    machine: tyro.conf.OmitArgPrefixes[MachineOptions] = field(default_factory=MachineOptions)
    """How the command uses this machine."""


def _usage(prog: str) -> str:
    return subcommand_usage(
        prog, SUBCOMMANDS, placeholder="<what>", heading="what", help_target="mesh"
    )


def run(argv: list[str], prog: str) -> int:
    status = usage_exit_status(argv, _usage(prog))
    if status is not None:
        return status
    if argv[0] not in SUBCOMMANDS:
        print(f"{prog}: unknown export {argv[0]!r}\n\n{_usage(prog)}", file=sys.stderr)
        return 2
    argv = replace_deprecated_flags(argv[1:], TEST_TIME_FLAGS, f"{prog} mesh")
    args = tyro.cli(MeshArgs, args=argv, prog=f"{prog} mesh")
    use_threads(args.machine.threads)
    check_at_least(args.chunk_points, "--chunk-points", 1, "one grid point per call")
    return export_mesh(args)


def parse_crop(text: str | None):
    """``"x0,y0,z0,x1,y1,z1"`` -> ``((x0, y0, z0), (x1, y1, z1))`` with min < max per axis."""
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"--crop {text!r}: expected six numbers xmin,ymin,zmin,xmax,ymax,zmax")
    low, high = tuple(values[:3]), tuple(values[3:])
    if any(a >= b for a, b in zip(low, high)):
        raise ConfigError(f"--crop {text!r}: each minimum must be below its maximum")
    return low, high


def export_mesh(args: MeshArgs) -> int:
    crop = parse_crop(args.crop)
    if args.preview is not None and not args.preview.lower().endswith(".png"):
        raise ConfigError(f"--preview {args.preview}: the preview is a .png file")
    if (args.scene is None) == (args.prior_sample is None):
        raise ConfigError("give exactly one of --scene ID (with --data) or --prior-sample N")
    if args.scene is not None and args.data is None:
        raise ConfigError("--scene needs --data DIR (the dataset the scene comes from)")

    import numpy as np
    import torch

    from nerfvae.evaluation.scene_priors import prior_sample, scene_prior
    from nerfvae.evaluation.views import parse_view_indices
    from nerfvae.export import (
        MeshExtractionConfig,
        extract_mesh,
        inside_box,
        mesh_object_chamfer,
        sample_object_surfaces,
        write_mesh,
    )
    from nerfvae.inference import check_scene_index, infer_scene
    from nerfvae.training.loading import load_trained_model

    # Check what needs no model first, so typos fail fast.
    scene = None
    if args.scene is not None:
        from nerfvae.data.loader import MultiSceneDataset

        dataset = MultiSceneDataset(args.data, args.split)
        check_scene_index(args.scene, len(dataset), args.split)
        scene = dataset.load_scene(args.scene)
        context = parse_view_indices(args.context, scene.num_views, "--context")
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    model, _, record = load_trained_model(
        args.run, args.checkpoint, args.machine.precision, device=device
    )
    model.to(device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    if scene is not None:
        posterior = infer_scene(
            model, scene.images, scene.K, scene.c2w, context, args.test_time, generator
        )
        latent = posterior.mean if args.latent == "mean" else posterior.rsample(generator)
        what = f"scene {args.scene} ({scene.scene_id or args.split}) from views {context}"
    else:
        prior = scene_prior(args.run, model, record, args.prior)
        latent = prior_sample(prior, args.prior_sample, args.seed).to(device)
        what = f"prior sample {args.prior_sample} (seed {args.seed}) of {prior.describe()}"
    config = MeshExtractionConfig(
        resolution=args.resolution,
        density_threshold=args.density_threshold,
        chunk_points=args.chunk_points,
        crop=crop,
    )
    mesh = extract_mesh(model, latent, config)
    path = write_mesh(mesh, args.out)
    print(f"wrote {path}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces of {what}")
    if args.preview is not None:
        from nerfvae.export.preview import write_mesh_preview

        box = crop or (model.scene_min.tolist(), model.scene_max.tolist())
        reference = None
        if scene is not None and scene.objects:
            try:  # the ground-truth objects as red dots, where the dataset knows their shapes
                reference = sample_object_surfaces(
                    scene.objects, 4000, np.random.default_rng(args.seed)
                )
                reference = reference[inside_box(reference, *(np.asarray(b) for b in box))]
            except DataError:
                reference = None
        picture = write_mesh_preview(
            mesh, args.preview, box=box, title=what, reference_points=reference
        )
        print(f"wrote {picture}")
    if scene is not None and scene.objects:
        try:
            score = mesh_object_chamfer(mesh, scene.objects, seed=args.seed)
        except DataError as error:  # objects without analytic shapes: nothing to compare
            print(f"no Chamfer distance: {error}")
        else:
            print(
                f"Chamfer distance to the ground-truth objects: {score['chamfer']:.4f} m "
                f"(accuracy {score['accuracy']:.4f} m, completeness {score['completeness']:.4f} m)"
            )
    return 0
