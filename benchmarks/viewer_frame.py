"""Frame times of the viewer (``nerfvae viewer``) on this machine's CPU.

Run from the repository root: ``python benchmarks/viewer_frame.py`` (about a minute on 2 idle
cores) or with ``--presets tiny`` / ``--repeats 2`` for less. For each model preset (freshly
initialised: a frame's cost depends on the network's size and sample counts, not its weights) it
renders what the viewer renders for one browser tab: the preview frame drawn while the camera
moves (``--preview-scale`` of the full size, at most 16 samples per ray, no fine pass), the
full frame drawn when it stops (the field at a few samples per ray placed by the latent's density
grid, the viewer's default) and, for reference, the same frame with the model's own sampling
(``--density-grid.resolution 0``), in each display mode, through
:meth:`nerfvae.viewer.ViewerSession.render_image`, from a camera of the built-in rooms; and the
density grid's bake, once per latent. Prints a markdown table of median milliseconds, wall-clock
and CPU (all threads). Other processes on the machine slow the wall clock down, so the load
average is printed too. ``--presets`` also takes run directories (``assets/model``): their
network at their trained weights.

Browser mode, on a trained run: ``python benchmarks/viewer_frame.py --run RUN --data DIR
--scene 3 --view 5 --screenshot docs/images/viewer.png`` serves the viewer, drives the page in
headless Chromium (Playwright with the system ``/usr/bin/chromium``), prints the frame times the
page's render thread measured and saves a screenshot (the one in ``docs/viewer.md``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from functools import partial
from types import SimpleNamespace

import numpy as np
import torch

from nerfvae.data.rooms import ID_CAMERAS, sample_cameras
from nerfvae.data.storage import SceneRecord
from nerfvae.models import NeRFVAE
from nerfvae.rendering import DensityGridConfig
from nerfvae.training.config import preset
from nerfvae.viewer import MODES, ViewCamera, ViewerSession

BOUNDS = ((-3.0, -3.0, 0.0), (3.0, 3.0, 2.5))


class OneRoom:
    """A one-scene stand-in dataset: random pixels, cameras of the built-in rooms."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.meta = SimpleNamespace(
            image_height=size, image_width=size, scene_bounds=BOUNDS, near=0.1, far=8.85
        )

    def __len__(self) -> int:
        return 1

    def load_scene(self, index: int) -> SceneRecord:
        rng = np.random.default_rng(index)
        K, c2w = sample_cameras(rng, ID_CAMERAS, 4, self.size, self.size)
        images = rng.integers(0, 256, size=(4, self.size, self.size, 3), dtype=np.uint8)
        return SceneRecord(torch.from_numpy(images), K, c2w, torch.zeros(4, dtype=torch.bool))


def time_ms(fn, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds (all threads of this process) of ``fn()``. On a
    busy machine the wall time grows with the load while the CPU time stays near what the call
    costs; on an idle machine wall ~ CPU / threads."""
    fn()  # warm-up (allocations, lazy initialisation, the latent's density grid)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(1000 * (time.perf_counter() - start))
        cpu.append(1000 * (time.process_time() - start_cpu))
    return statistics.median(wall), statistics.median(cpu)


def load_model(name: str, precision: str | None):
    """A preset's freshly initialised model in the rooms' box (float32), or a run directory's
    model in ``precision`` (default: the run's)."""
    if os.path.isdir(name):
        from nerfvae.training.loading import load_trained_model

        model, config, _ = load_trained_model(name, precision=precision)
        return model, f"{name} ({config.precision})"
    torch.manual_seed(0)
    config = replace(preset(name).nerfvae, scene_min=BOUNDS[0], scene_max=BOUNDS[1])
    return NeRFVAE(config).eval(), name


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def browser_session(args: argparse.Namespace) -> None:
    """Open the viewer on a trained run in headless Chromium (Playwright, system browser), go to
    one dataset camera, orbit a little, return to it, print the frame times the page's render
    thread measured and save a screenshot."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.training.loading import load_trained_model
    from nerfvae.viewer import start_viewer

    model, _, record = load_trained_model(args.run)
    dataset = MultiSceneDataset(args.data, args.split)
    app = start_viewer(
        model, dataset, args.split, port=0, render_height=args.render_height, verbose=False
    )
    url = f"http://127.0.0.1:{app.server.get_port()}"
    timeout_ms = 300_000
    try:
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=args.chromium, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 800},
            )  # fmt: skip
            page = context.new_page()
            page.goto(url, timeout=timeout_ms)
            page.get_by_text("New prior sample").wait_for(timeout=timeout_ms)
            if args.scene:
                page.get_by_role("combobox", name="Scene").click()
                page.get_by_role("option", name=str(args.scene), exact=True).click()
                page.get_by_text(f"scene {args.scene} (").wait_for(timeout=timeout_ms)
            canvas = page.locator("canvas").first.bounding_box()
            for _ in range(args.moves):  # orbit: previews while dragging, a full frame after
                page.mouse.move(canvas["x"] + 300, canvas["y"] + 400)
                page.mouse.down()
                for step in range(10):
                    page.mouse.move(canvas["x"] + 300 + 8 * step, canvas["y"] + 400)
                page.mouse.up()
                time.sleep(1.0)
            page.get_by_role("combobox", name="Go to camera").click()
            page.get_by_role("option", name=f"view {args.view} (").first.click()
            page.get_by_text(f"Camera on view {args.view}").wait_for(timeout=timeout_ms)
            tab = app._tabs[max(app._tabs)]
            tab.renderer.wait_idle(timeout_ms / 1000)
            time.sleep(1.0)
            try:  # the "software WebGL" notice of a GPU-less browser
                page.locator(".mantine-Notification-closeButton").first.click(timeout=2000)
            except Exception:
                pass
            time.sleep(0.5)
            if args.screenshot:
                page.screenshot(path=args.screenshot)
                print(f"wrote {args.screenshot}")
            context.close()
        print(
            f"run {args.run} (step {record.get('step')}), load average "
            f"{os.getloadavg()[0]:.2f}, full frames {args.render_height or dataset.meta.image_height}"
            f" px high: {tab.renderer.times.describe()}"
        )
    finally:
        app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="browser mode: a trained run directory")
    parser.add_argument("--data", help="browser mode: its dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--scene", type=int, default=0)
    parser.add_argument("--view", type=int, default=0, help="dataset camera to end on")
    parser.add_argument("--moves", type=int, default=3, help="camera drags before that")
    parser.add_argument("--render-height", type=int, default=None)
    parser.add_argument("--screenshot", help="browser mode: save the page as this PNG")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--height", type=int, default=64, help="full frame height (pixels)")
    parser.add_argument("--aspect", type=float, default=1.5, help="browser viewport width/height")
    parser.add_argument("--preview-scale", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--std-samples", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--precision", help="run directories: auto, fp32 or bf16 (default: run's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run:
        browser_session(args)
        return

    width = round(args.height * args.aspect)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.2f}; full frame {args.height}x{width}, preview "
        f"x{args.preview_scale}, std mode over {args.std_samples} samples; median of "
        f"{args.repeats}\n"
    )
    print(
        "| model | mode | preview ms wall / CPU | full ms wall / CPU | own sampling ms wall "
        "/ CPU | x faster | grid bake ms wall |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.presets:
        model, label = load_model(name, args.precision)
        session = ViewerSession(model, OneRoom(args.height), std_samples=args.std_samples)
        own = ViewerSession(
            model, OneRoom(args.height), std_samples=args.std_samples,
            density_grid=DensityGridConfig(resolution=0),
        )  # fmt: skip
        dataset_camera = session.dataset_camera(0)
        # the dataset camera's focal length on a wider viewport, as the browser shows it
        K = dataset_camera.K.clone()
        K[0, 2] = width / 2
        camera = ViewCamera(K, dataset_camera.c2w, args.height, width)
        preview = camera.scaled(args.preview_scale)
        for mode in MODES:
            session.set_mode(mode)
            own.set_mode(mode)
            render = session.render_image
            preview_wall, preview_cpu = time_ms(
                partial(render, preview, preview=True), args.repeats
            )
            full_wall, full_cpu = time_ms(partial(render, camera), args.repeats)
            own_wall, own_cpu = time_ms(partial(own.render_image, camera), args.repeats)
            # the latent's grid; the std mode's samples share their posterior mean's grid
            snapshot = session.snapshot()
            std_mode = mode == MODES[3]
            source = snapshot.spread_grid_latent if std_mode else snapshot.latent
            bake = "–"  # a model with its own proposal density bakes no grid
            if model.grid_sampling(source, session.density_grid):
                fresh = partial(model.grid_sampling, source, session.density_grid)
                bake = f"{time_ms(fresh, args.repeats)[0]:.0f}"
            print(
                f"| {label} | {mode} | {preview_wall:.0f} / {preview_cpu:.0f} | {full_wall:.0f} / "
                f"{full_cpu:.0f} | {own_wall:.0f} / {own_cpu:.0f} | {own_wall / full_wall:.1f} "
                f"| {bake} |"
            )


if __name__ == "__main__":
    main()
