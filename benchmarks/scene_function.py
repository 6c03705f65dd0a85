"""Scene-function benchmark: every conditioning at the same latent grid, in every native precision.

    python benchmarks/scene_function.py [--json OUT] [--threads N] [--repeats 3]

For each conditioning (concat, ain, attention, planes) and each precision this CPU runs natively
(float32 always, bfloat16 where AVX512-BF16 / AMX is present; ``--precision all`` forces both):

* ``train_points_per_s`` — the scene function's forward + backward at the ``small`` training
  batch (4 scenes × 192 rays × 48 samples = 36,864 points), latent grid 16 × 16 × 16 (the
  shipped model's). For ``planes`` the per-scene decode is included (once per scene, as training
  runs it); the points are the field's points.
* ``render_view_ms`` — one 64 × 64 view rendered as ``nerfvae eval`` does (``render_views``,
  no gradients, encoder excluded), each conditioning with its preset's sampling: ``small``'s
  32 coarse + 16 fine samples for the MLP conditionings, the ``planes`` preset's proposal sampler
  (64 proposal + 24 field samples) for planes.
* ``train_step_rays_per_s`` — target rays per second of a whole training step (encoder,
  rendering, ELBO, backward, Adam) at each conditioning's own preset batch: ``small``'s 4 scenes ×
  192 rays for the MLP conditionings, the ``planes`` preset's 4 × 1,024 rays for planes.
* ``peak_rss_mb`` — peak resident memory of a fresh process that runs the row's training
  step and render once (one child process per row, so rows do not inherit each other's heap).

Timings are taken in this one process, one row after another, and each row's ratio is to the
``attention`` row of the same precision. Like the ``nerfvae`` command, the script re-executes
itself once with glibc's allocator tuned to reuse large blocks (``nerfvae/cli/malloc.py``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from dataclasses import replace

import torch

from nerfvae.cli.malloc import reexec_with_tuned_malloc
from nerfvae.geometry import intrinsics_matrix, look_at
from nerfvae.models import NeRFVAE, NeRFVAEConfig
from nerfvae.precision import cpu_description, cpu_has_native_bf16
from nerfvae.training.config import preset

CONDITIONINGS = ("concat", "ain", "attention", "planes")
SCENES, RAYS, SAMPLES = 4, 192, 48
GRID, CHANNELS = 16, 16
VIEW_SIZE = 64


def model_config(conditioning: str) -> NeRFVAEConfig:
    """The ``small`` preset (or ``planes`` preset) model at the shipped latent grid."""
    base = preset("planes" if conditioning == "planes" else "small").nerfvae
    config = replace(
        base,
        latent=replace(base.latent, grid=GRID, channels=CHANNELS),
        scene_min=(-3.0, -3.0, 0.0),
        scene_max=(3.0, 3.0, 2.5),
    )
    if conditioning != "planes":
        config.scene_function = replace(config.scene_function, conditioning=conditioning)
    return config


def build(conditioning: str, precision: str) -> NeRFVAE:
    torch.manual_seed(0)
    model = NeRFVAE(model_config(conditioning))
    model.mixed_precision = precision == "bf16"
    return model


def scene_function_step(model: NeRFVAE, generator: torch.Generator):
    """One forward + backward of the scene function over the small batch's points."""
    points_per_scene = RAYS * SAMPLES
    latent = torch.randn(SCENES, GRID * GRID, CHANNELS, generator=generator)
    points = torch.rand(SCENES, points_per_scene, 3, generator=generator) * torch.tensor(
        [6.0, 6.0, 2.5]
    ) - torch.tensor([3.0, 3.0, 0.0])
    directions = torch.nn.functional.normalize(
        torch.randn(SCENES, points_per_scene, 3, generator=generator), dim=-1
    )
    latent.requires_grad_(True)

    def step():
        model.zero_grad(set_to_none=True)
        field = model.field(latent)
        density, colour = field(points.unsqueeze(2), directions.unsqueeze(2))
        (density.mean() + colour.mean()).backward()

    return step, SCENES * points_per_scene


def render_view(model: NeRFVAE):
    """Render one 64 × 64 view as evaluation does."""
    model.eval()
    eye = torch.tensor([[[2.0, -2.0, 1.4]]])
    c2w = look_at(eye, torch.tensor([0.0, 0.0, 0.6]))
    K = intrinsics_matrix(VIEW_SIZE * 0.9, VIEW_SIZE * 0.9, VIEW_SIZE / 2, VIEW_SIZE / 2)
    K = K.expand(1, 1, 3, 3)
    latent = torch.randn(1, GRID * GRID, CHANNELS, generator=torch.Generator().manual_seed(1))

    def render():
        # a fresh latent tensor per call, so a per-latent memo of the decode never helps
        model.render_views(latent.clone(), K, c2w, VIEW_SIZE, VIEW_SIZE)

    return render


def full_training_step(conditioning: str, precision: str):
    """One full training step (encoder, rendering with the preset's sampler, ELBO, backward,
    Adam) at the preset's own batch: ``small`` for the MLP conditionings (4 scenes × 192 rays),
    ``planes`` for planes (4 scenes × 1,024 rays). Returns ``(step, rays per step)``."""
    config = preset("planes" if conditioning == "planes" else "small")
    model = build(conditioning, precision)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    scenes, rays, views = config.scenes_per_batch, config.rays_per_scene, 3
    eye = torch.stack(
        [torch.tensor([2.5 * (1 - 2 * (v % 2)), -2.0 + v, 1.3]) for v in range(views)]
    )
    c2w = look_at(eye, torch.tensor([0.0, 0.0, 0.6])).expand(scenes, views, 4, 4)
    K = intrinsics_matrix(VIEW_SIZE * 0.9, VIEW_SIZE * 0.9, VIEW_SIZE / 2, VIEW_SIZE / 2)
    origins = eye[:1].expand(scenes, rays, 3).contiguous()
    directions = torch.nn.functional.normalize(
        torch.tensor([0.0, 0.0, 0.6])
        - origins
        + 0.8 * torch.randn(scenes, rays, 3, generator=generator),
        dim=-1,
    )
    batch = {
        "context_images": torch.rand(scenes, views, VIEW_SIZE, VIEW_SIZE, 3, generator=generator),
        "context_K": K.expand(scenes, views, 3, 3),
        "context_c2w": c2w,
        "target_origins": origins,
        "target_directions": directions,
        "target_colours": torch.rand(scenes, rays, 3, generator=generator),
    }

    def step():
        out = model.loss(batch, generator=torch.Generator().manual_seed(1))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()

    return step, scenes * rays


def time_call(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, bfloat16 copy)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(conditioning: str, precision: str, repeats: int) -> dict[str, float]:
    model = build(conditioning, precision)
    model.train()
    step, points = scene_function_step(model, torch.Generator().manual_seed(0))
    train_seconds = time_call(step, repeats)
    render_seconds = time_call(render_view(model), repeats)
    full_step, rays = full_training_step(conditioning, precision)
    step_seconds = time_call(full_step, repeats)
    return {
        "train_points_per_s": points / train_seconds,
        "render_view_ms": 1000.0 * render_seconds,
        "train_step_rays_per_s": rays / step_seconds,
    }


def _peak_child(conditioning: str, precision: str, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    model = build(conditioning, precision)
    model.train()
    step, _ = scene_function_step(model, torch.Generator().manual_seed(0))
    step()
    render_view(model)()
    queue.put(peak_resident_mb())


def peak_resident_mb() -> float:
    """This process's peak resident memory (``VmHWM``; ``ru_maxrss`` would be inherited from
    the parent across fork and exec on Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0  # kB -> MB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_rss_mb(conditioning: str, precision: str, threads: int) -> float:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_peak_child, args=(conditioning, precision, threads, queue))
    child.start()
    peak = queue.get()
    child.join()
    return peak


def main() -> None:
    reexec_with_tuned_malloc()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows to this JSON file")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (best is kept)")
    parser.add_argument(
        "--precision",
        choices=("native", "all"),
        default="native",
        help="native: float32 plus bfloat16 where the CPU runs it natively; all: both always",
    )
    parser.add_argument("--conditionings", default=",".join(CONDITIONINGS))
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cpu = cpu_description()
    precisions = ["fp32"]
    if args.precision == "all" or cpu_has_native_bf16():
        precisions.append("bf16")
    conditionings = [c for c in args.conditionings.split(",") if c]
    print(f"CPU: {cpu['name']} | native bfloat16: {cpu['native_bf16']} | threads: {cpu['threads']}")
    print(
        f"batch: {SCENES} scenes x {RAYS} rays x {SAMPLES} samples; latent {GRID}x{GRID}x"
        f"{CHANNELS}; one {VIEW_SIZE}x{VIEW_SIZE} view"
    )
    rows = []
    for precision in precisions:
        for conditioning in conditionings:
            row = {"conditioning": conditioning, "precision": precision}
            row.update(measure(conditioning, precision, args.repeats))
            row["peak_rss_mb"] = peak_rss_mb(conditioning, precision, cpu["threads"])
            rows.append(row)
    header = (
        f"{'conditioning':<12} {'precision':<9} {'train points/s':>15} {'x attention':>12} "
        f"{'render 64x64 ms':>16} {'x attention':>12} {'step rays/s':>12} {'x attention':>12} "
        f"{'peak RSS MB':>12}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        reference = next(
            (
                r
                for r in rows
                if r["conditioning"] == "attention" and r["precision"] == row["precision"]
            ),
            None,
        )
        ratio = lambda key, higher_is_better=True, row=row, reference=reference: (
            float("nan")
            if reference is None
            else (row[key] / reference[key]) ** (1 if higher_is_better else -1)
        )
        print(
            f"{row['conditioning']:<12} {row['precision']:<9} {row['train_points_per_s']:>15,.0f} "
            f"{ratio('train_points_per_s'):>11.1f}x {row['render_view_ms']:>16.1f} "
            f"{ratio('render_view_ms', False):>11.1f}x {row['train_step_rays_per_s']:>12,.0f} "
            f"{ratio('train_step_rays_per_s'):>11.1f}x {row['peak_rss_mb']:>12.0f}"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"cpu": cpu, "rows": rows}, handle, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
