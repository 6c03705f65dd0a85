"""Time and peak memory of rendering whole views against the chunk size of ``render_in_chunks``.

Run from the repository root: ``python benchmarks/render_chunks.py`` (a few minutes on 2 idle
cores) or ``--chunks 8192 2048 --views 2`` for less. A batch of ``--scenes`` scenes (4: what
``nerfvae eval`` renders together) of a run's model (default ``assets/model``; random latents
from its prior: the cost depends on the network and sample counts, not on the latent) renders
``--views`` 64×64 views of the built-in rooms' ID cameras per scene through
``model.render_views`` with each ``chunk_rays`` (rays rendered at once, over all scenes). Each
chunk size runs in a fresh process so that its peak resident memory is its own. Prints a markdown
table: CPU seconds and wall seconds per view, the process's peak resident memory, and the time
ratio to the default chunk (4096) measured in the same invocation. Other processes on the machine
slow the wall clock down, so the load average is printed; CPU seconds are less affected.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

DEFAULT_CHUNK = 4096


def measure(run: str, chunk: int, scenes: int, views: int, precision: str, threads: int) -> dict:
    """One chunk size, in this process: seconds per view and peak resident memory."""
    from nerfvae.data.rooms import ID_CAMERAS, sample_cameras
    from nerfvae.training.loading import load_trained_model

    torch.set_num_threads(threads)
    model, _, _ = load_trained_model(run, precision=precision)
    K, c2w = sample_cameras(np.random.default_rng(0), ID_CAMERAS, views, 64, 64)
    K, c2w = (x[None].expand(scenes, *x.shape) for x in (K, c2w))
    latent = model.prior(scenes).rsample(torch.Generator().manual_seed(0))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu, wall = time.process_time(), time.perf_counter()
    model.render_views(latent, K, c2w, 64, 64, chunk_rays=chunk)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    count = scenes * views
    return dict(cpu_s=cpu / count, wall_s=wall / count, peak_mb=peak, before_mb=before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="assets/model")
    parser.add_argument("--chunks", type=int, nargs="+", default=[32768, 8192, 4096, 2048, 1024])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = measure(args.run, args.one, args.scenes, args.views, args.precision, args.threads)
        print(json.dumps(result))
        return
    chunks = sorted(set(args.chunks) | {DEFAULT_CHUNK}, reverse=True)
    rows = {}
    for chunk in chunks:
        command = [sys.executable, __file__, "--one", str(chunk)]
        for name in ("run", "scenes", "views", "precision", "threads"):
            command += [f"--{name}", str(getattr(args, name))]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows[chunk] = json.loads(output.strip().splitlines()[-1])
    reference = rows[DEFAULT_CHUNK]
    print(
        f"model {args.run}, {args.precision}, {args.threads} thread(s), {args.scenes} scenes × "
        f"{args.views} views of 64×64, load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| chunk_rays (all scenes) | rays per scene | CPU s / view | wall s / view | "
          "peak RSS MB | CPU time ÷ chunk 4096 |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for chunk, row in rows.items():
        print(
            f"| {chunk} | {max(1, chunk // args.scenes)} | {row['cpu_s']:.3f} | "
            f"{row['wall_s']:.3f} | {row['peak_mb']:.0f} | {row['cpu_s'] / reference['cpu_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
