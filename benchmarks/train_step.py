"""Training-step benchmark: step time, scene-function throughput and achieved FLOP/s per mode.

    python benchmarks/train_step.py [--config small] [--steps 5] [--scenes 8 --rays 256]

For each conditioning mode it times full training steps (encoder + coarse/fine rendering + ELBO +
backward + Adam) on a synthetic batch shaped like the config's, and separately the scene function's
forward+backward on the same number of points. FLOPs are counted by torch's FlopCounterMode, and
the achieved rate is compared with a bf16 (and fp32) matrix product measured in this process.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from nerfvae.geometry import intrinsics_matrix, look_at
from nerfvae.models import NeRFVAE
from nerfvae.training.config import preset


def matmul_rate(dtype: torch.dtype, size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def synthetic_batch(scenes: int, views: int, size: int, rays: int) -> dict[str, torch.Tensor]:
    azimuth = torch.rand(scenes, views) * 6.28
    eye = torch.stack([2.5 * azimuth.cos(), 2.5 * azimuth.sin(), torch.full_like(azimuth, 1.0)], -1)
    c2w = look_at(eye, torch.zeros(3))
    K = intrinsics_matrix(size * 1.1, size * 1.1, size / 2, size / 2).expand(scenes, views, 3, 3)
    directions = torch.nn.functional.normalize(
        -eye[:, :1] + 0.3 * torch.randn(scenes, rays, 3), dim=-1
    )
    return {
        "context_images": torch.rand(scenes, views, size, size, 3),
        "context_K": K,
        "context_c2w": c2w,
        "target_origins": eye[:, :1].expand(scenes, rays, 3).contiguous(),
        "target_directions": directions,
        "target_colours": torch.rand(scenes, rays, 3),
        "target_object_mask": torch.rand(scenes, rays) > 0.7,
    }


def time_call(fn, steps: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=None)
    parser.add_argument("--rays", type=int, default=None)
    parser.add_argument("--size", type=int, default=64, help="image size of the context views")
    parser.add_argument("--modes", default="concat,ain,attention")
    args = parser.parse_args()

    base = preset(args.config)
    scenes = args.scenes or base.scenes_per_batch
    rays = args.rays or base.rays_per_scene
    bf16_peak, fp32_peak = matmul_rate(torch.bfloat16), matmul_rate(torch.float32)
    samples = base.nerfvae.sampling.num_coarse + base.nerfvae.sampling.num_fine
    points = scenes * rays * samples
    print(
        f"threads={torch.get_num_threads()}  batch: {scenes} scenes x {rays} rays x {samples} "
        f"samples = {points} points/step, context views 3 x {args.size}^2"
    )
    print(
        f"reference 1024^3 matmul: bf16 {bf16_peak / 1e9:.1f} GFLOP/s, "
        f"fp32 {fp32_peak / 1e9:.1f} GFLOP/s\n"
    )
    header = (
        "| mode | precision | step s | scene fn fwd+bwd s | points/s (fwd+bwd) | scene fn GFLOP/s "
        "| of matmul peak | params |"
    )
    print(header)
    print("|" + "---|" * 8)
    batch = synthetic_batch(scenes, 3, args.size, rays)
    for mode in args.modes.split(","):
        for bf16 in (False, True):
            row = measure(base, mode, bf16, batch, args.size, args.steps)
            peak = bf16_peak if bf16 else fp32_peak
            print(
                f"| {mode} | {'bf16' if bf16 else 'fp32'} | {row['step_s']:.2f} | "
                f"{row['scene_s']:.2f} | {points / row['scene_s']:,.0f} | "
                f"{row['rate'] / 1e9:.1f} | {row['rate'] / peak:.0%} | {row['params']:,} |"
            )


def measure(base, mode: str, bf16: bool, batch: dict, size: int, steps: int) -> dict[str, float]:
    """Time a full training step and the scene function's forward+backward for one mode."""
    torch.manual_seed(0)
    config = replace(
        base.nerfvae, scene_function=replace(base.nerfvae.scene_function, conditioning=mode)
    )
    model = NeRFVAE(config)
    model.mixed_precision = bf16
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scenes, rays = batch["target_origins"].shape[:2]
    samples = config.sampling.num_coarse + config.sampling.num_fine

    def train_step():
        out = model.loss(batch, target_dims=10 * size**2 * 3)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()

    latent = torch.randn(scenes, config.latent.num_tokens, config.latent.channels)
    xyz = torch.rand(scenes, rays * samples, 3) * 2 - 1
    dirs = torch.nn.functional.normalize(torch.randn(scenes, rays * samples, 3), dim=-1)

    def scene_fn_step():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            density, colour = model.scene_function(xyz, dirs, latent)
        (density.sum() + colour.sum()).backward()

    step_seconds = time_call(train_step, steps)
    with FlopCounterMode(display=False) as counter:
        scene_fn_step()
    scene_seconds = time_call(scene_fn_step, steps)
    return {
        "step_s": step_seconds,
        "scene_s": scene_seconds,
        "rate": counter.get_total_flops() / scene_seconds,
        "params": sum(p.numel() for p in model.parameters()),
    }


if __name__ == "__main__":
    main()
