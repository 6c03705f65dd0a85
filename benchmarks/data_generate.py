"""Rendering speed of the rooms generator per preset (views/s, wall clock and CPU).

    .venv/bin/python benchmarks/data_generate.py [--scenes 6] [--presets tiny small default]

Renders the first training scenes of each preset in this process (one render thread, as each
`--workers` process does) after a warm-up scene (kernel compilation), and prints views per second
of wall-clock time and per second of this process's CPU time (the latter is what a dedicated core
would give when other jobs share the machine). Prints the projected time of the whole preset.
"""

from __future__ import annotations

import argparse
import time

from nerfvae.data.generate import PRESETS, make_settings, render_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    args = parser.parse_args()
    print(
        f"{'preset':<8} {'image':>6} {'spp':>4} {'views/s wall':>13} {'views/s cpu':>12} "
        f"{'preset views':>13} {'projected min (cpu)':>20}"
    )
    for preset in args.presets:
        settings = make_settings(preset)
        render_scene(settings, "train", 0)  # warm-up: Mitsuba setup and kernel compilation
        views = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for index in range(1, args.scenes + 1):
            views += render_scene(settings, "train", index).num_views
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total = settings.total_views
        print(
            f"{preset:<8} {settings.resolution:>4}px {settings.spp:>4} {views / wall:>13.1f} "
            f"{views / cpu:>12.1f} {total:>13} {total / (views / cpu) / 60:>20.1f}"
        )


if __name__ == "__main__":
    main()
