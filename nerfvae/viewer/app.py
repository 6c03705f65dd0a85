"""The browser front end of the viewer, built with viser (the library nerfstudio's viewer uses).

The page's 3D viewport is viser's orbit / pan / zoom camera; every camera change goes to the tab's
:class:`~nerfvae.viewer.progressive.ProgressiveRenderer`, whose frames become the viewport's
background image. The side panel holds the scene choice, context-view thumbnails, display mode,
latent buttons and, when the camera sits on a dataset camera, the ground truth beside a render of
that exact view. Context cameras are drawn as frusta (with their images) in the 3D scene.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass

import numpy as np

from nerfvae.metrics import psnr
from nerfvae.viewer.camera_control import (
    ViewCamera,
    matching_view,
    pose_of,
    vertical_fov,
    viewport_camera,
)
from nerfvae.viewer.progressive import ProgressiveRenderer
from nerfvae.viewer.session import MODES, ViewerSession

CONTEXT_COLOUR = (255, 140, 0)
OTHER_CAMERA_COLOUR = (120, 120, 120)
FREE_CAMERA = "free camera"


def enlarge(image: np.ndarray, min_height: int = 96) -> np.ndarray:
    """Nearest-neighbour upscaling of a small uint8 image ``[H, W, 3]`` by a whole factor so it
    is at least ``min_height`` pixels high (the browser would blur a small image)."""
    factor = max(1, -(-min_height // image.shape[0]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


@dataclass
class ViewerOptions:
    """Rendering settings of the page."""

    render_height: int = 64
    """Height in pixels of the full-resolution frame (width follows the browser's aspect)."""
    preview_scale: float = 0.25
    """Resolution of the quick frame drawn while the camera moves, relative to the full frame."""
    settle_seconds: float = 0.25
    """The camera must be still this long before the full-resolution frame is rendered."""
    jpeg_quality: int = 90
    """Quality of the frames sent to the browser."""


@dataclass(frozen=True)
class FrameRequest:
    """What one tab wants drawn: its viewport camera and the session state version."""

    camera: ViewCamera
    version: int


@dataclass
class _Tab:
    """Per-browser-tab state."""

    renderer: ProgressiveRenderer


class ViewerApp:
    """Wires a :class:`ViewerSession` to a viser server's page."""

    def __init__(self, session: ViewerSession, server, options: ViewerOptions) -> None:
        self.session = session
        self.server = server
        self.options = options
        self.errors: list[str] = []
        self._tabs: dict[int, _Tab] = {}
        self._tabs_lock = threading.Lock()
        self._frames_total = 0
        # One render at a time in the whole process: two tabs would only slow each other down.
        self._render_lock = threading.Lock()
        self._context_handles: list = []
        self._frustum_handles: list = []
        self._building = False
        server.scene.set_up_direction("+z")
        self._build_panel()
        self._show_scene()
        server.on_client_connect(self._on_connect)
        server.on_client_disconnect(self._on_disconnect)

    # -- panel -------------------------------------------------------------------------------
    def _build_panel(self) -> None:
        gui = self.server.gui
        session = self.session
        gui.add_markdown("**nerfvae** — NeRF-VAE scene viewer")
        labels = [self._scene_label(i) for i in range(len(session.dataset))]
        self.scene_dropdown = gui.add_dropdown("Scene", labels, initial_value=labels[0])
        self.scene_dropdown.on_update(lambda _: self._guard(self._on_scene_chosen))
        self.mode_dropdown = gui.add_dropdown("Show", list(MODES), initial_value=MODES[0])
        self.mode_dropdown.on_update(lambda _: self._guard(self._on_mode_chosen))
        self.mean_button = gui.add_button("Posterior mean")
        self.mean_button.on_click(lambda _: self._guard(self._changed, session.show_posterior_mean))
        self.posterior_button = gui.add_button("New posterior sample")
        self.posterior_button.on_click(
            lambda _: self._guard(self._changed, session.new_posterior_sample)
        )
        self.prior_button = gui.add_button(f"New prior sample ({session.prior.name} prior)")
        self.prior_button.on_click(lambda _: self._guard(self._changed, session.new_prior_sample))
        self.status = gui.add_markdown("")
        self.goto_dropdown = gui.add_dropdown("Go to camera", [FREE_CAMERA])
        self.goto_dropdown.on_update(lambda _: self._guard(self._on_goto))
        self.all_cameras_checkbox = gui.add_checkbox("All cameras", initial_value=False)
        self.all_cameras_checkbox.on_update(lambda _: self._guard(self._draw_frusta))
        with gui.add_folder("Ground truth"):
            self.match_text = gui.add_markdown("Move to a dataset camera (Go to camera, or click a "
                                               "frustum) to compare with its image.")  # fmt: skip
            blank = np.zeros((8, 8, 3), dtype=np.uint8)
            self.comparison_image = gui.add_image(
                blank, label="dataset image | render", visible=False
            )
        self.context_folder = gui.add_folder("Context views")
        self.timing = gui.add_markdown("")

    def _scene_label(self, index: int) -> str:
        return f"{index}"

    def _scene_from_label(self, label: str) -> int:
        try:
            index = int(label)
        except (TypeError, ValueError):
            raise ValueError(f"no scene {label!r}") from None
        if not 0 <= index < len(self.session.dataset):
            raise ValueError(f"no scene {label!r}")
        return index

    def _guard(self, action, *args) -> None:
        """Run a GUI callback; a failure becomes a notification, never a dead page."""
        try:
            action(*args)
        except Exception as error:
            self.errors.append(f"{type(error).__name__}: {error}")
            traceback.print_exc()
            for client in self.server.get_clients().values():
                client.add_notification("Error", str(error), auto_close_seconds=8.0, color="red")

    def _changed(self, change=None) -> None:
        """State changed (latent, mode, scene): update the texts and redraw every tab."""
        if change is not None:
            change()
        self.status.content = self.session.describe()
        self._redraw_all()

    def _on_scene_chosen(self) -> None:
        try:
            index = self._scene_from_label(self.scene_dropdown.value)
        except ValueError:
            self.scene_dropdown.value = self._scene_label(self.session.scene_index)
            raise
        if index != self.session.scene_index:
            self.session.select_scene(index)
            self._show_scene()

    def _on_mode_chosen(self) -> None:
        self.session.set_mode(self.mode_dropdown.value)
        self._changed()

    def _show_scene(self) -> None:
        """Rebuild everything that depends on the scene: thumbnails, frusta, camera list."""
        session = self.session
        scene = session.scene
        self._building = True
        try:
            for handle in self._context_handles:
                handle.remove()
            self._context_handles = []
            with self.context_folder:
                for view in range(scene.num_views):
                    kind = "OOD" if bool(scene.view_is_ood[view]) else "ID"
                    checkbox = self.server.gui.add_checkbox(
                        f"view {view} ({kind})", initial_value=view in session.context
                    )
                    checkbox.on_update(lambda _: self._guard(self._on_context_changed))
                    thumbnail = self.server.gui.add_image(
                        enlarge(session.ground_truth(view)), label=None, format="png"
                    )
                    self._context_handles += [checkbox, thumbnail]
            self.goto_dropdown.options = [FREE_CAMERA] + [
                f"view {v} ({'OOD' if bool(scene.view_is_ood[v]) else 'ID'})"
                for v in range(scene.num_views)
            ]
            self.goto_dropdown.value = FREE_CAMERA
        finally:
            self._building = False
        self._draw_frusta()
        self._changed()

    def _context_checkboxes(self) -> list:
        return self._context_handles[0::2]

    def _on_context_changed(self) -> None:
        if self._building:
            return
        chosen = [v for v, box in enumerate(self._context_checkboxes()) if box.value]
        if not chosen:
            # Inference needs at least one view: undo the last untick.
            self._building = True
            try:
                for view, box in enumerate(self._context_checkboxes()):
                    box.value = view in self.session.context
            finally:
                self._building = False
            raise ValueError("keep at least one context view")
        self.session.set_context(chosen)
        self._draw_frusta()
        self._changed()

    def _draw_frusta(self) -> None:
        """Context cameras as orange frusta showing their images; with "All cameras" ticked, the
        scene's other views as grey frusta too."""
        for handle in self._frustum_handles:
            handle.remove()
        self._frustum_handles = []
        session = self.session
        scene = session.scene
        height, width = session.meta.image_height, session.meta.image_width
        lo, hi = (np.asarray(bound, dtype=np.float64) for bound in session.meta.scene_bounds)
        size = 0.04 * float(np.linalg.norm(hi - lo))
        for view in range(scene.num_views):
            wxyz, position = pose_of(scene.c2w[view])
            is_context = view in session.context
            if not is_context and not self.all_cameras_checkbox.value:
                continue
            handle = self.server.scene.add_camera_frustum(
                f"/cameras/view_{view:03d}",
                fov=vertical_fov(scene.K[view], height),
                aspect=width / height,
                scale=size,
                thickness=3.0 if is_context else 1.5,
                thickness_units="screen",
                color=CONTEXT_COLOUR if is_context else OTHER_CAMERA_COLOUR,
                image=session.ground_truth(view) if is_context else None,
                format="jpeg",
                wxyz=wxyz,
                position=position,
            )
            handle.on_click(lambda event, view=view: self._guard(self._go_to_view, view))
            self._frustum_handles.append(handle)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])  # fmt: skip
        edges = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5),
                 (2, 6), (3, 7)]  # fmt: skip
        self._frustum_handles.append(
            self.server.scene.add_line_segments(
                "/scene_box",
                points=corners[np.array(edges)],
                colors=(90, 90, 200),
                thickness=2.0,
                thickness_units="screen",
            )
        )

    def _on_goto(self) -> None:
        value = self.goto_dropdown.value
        if self._building or value == FREE_CAMERA:
            return
        try:
            view = int(value.split()[1])
        except (IndexError, ValueError):
            raise ValueError(f"no camera {value!r}") from None
        if not 0 <= view < self.session.scene.num_views:
            raise ValueError(f"no camera {value!r}")
        self._go_to_view(view)
        # Back to "free camera", so that choosing the same view again (after orbiting away)
        # is a change the page reports.
        self._building = True
        try:
            self.goto_dropdown.value = FREE_CAMERA
        finally:
            self._building = False

    def _go_to_view(self, view: int) -> None:
        """Put every tab's camera on dataset view ``view`` (pose and vertical field of view)."""
        scene = self.session.scene
        wxyz, position = pose_of(scene.c2w[view])
        fov = vertical_fov(scene.K[view], self.session.meta.image_height)
        for client in self.server.get_clients().values():
            with client.atomic():
                client.camera.fov = fov
                client.camera.position = position
                client.camera.wxyz = wxyz

    # -- tabs and frames ---------------------------------------------------------------------
    def _on_connect(self, client) -> None:
        renderer = ProgressiveRenderer(
            render=lambda request, full, abort: self._render(client, request, full, abort),
            publish=lambda frame, full: self._publish(client, frame, full),
            settle_seconds=self.options.settle_seconds,
            render_lock=self._render_lock,
            on_error=lambda error: self.errors.append(f"render: {type(error).__name__}: {error}"),
        )
        with self._tabs_lock:
            self._tabs[client.client_id] = _Tab(renderer)
        client.camera.on_update(lambda camera: self._guard(self._on_camera, client))
        if client.camera.update_timestamp != 0.0:
            self._guard(self._on_camera, client)

    def _on_disconnect(self, client) -> None:
        with self._tabs_lock:
            tab = self._tabs.pop(client.client_id, None)
        if tab is not None:
            tab.renderer.stop(timeout=0.0)

    def _tab(self, client) -> _Tab | None:
        with self._tabs_lock:
            return self._tabs.get(client.client_id)

    def _on_camera(self, client) -> None:
        tab = self._tab(client)
        if tab is None:
            return
        camera = client.camera
        view_camera = viewport_camera(
            camera.wxyz, camera.position, camera.fov, camera.aspect, self.options.render_height
        )
        tab.renderer.request(FrameRequest(view_camera, self.session.version))

    def _redraw_all(self) -> None:
        for client in list(self.server.get_clients().values()):
            if self._tab(client) is not None and client.camera.update_timestamp != 0.0:
                self._guard(self._on_camera, client)

    def _render(self, client, request: FrameRequest, full: bool, should_abort) -> dict:
        """One frame for ``client``: the viewport image and, for a full frame on a dataset
        camera, that view rendered at the dataset's exact intrinsics and size."""
        session = self.session
        snapshot = session.snapshot()
        camera = request.camera if full else request.camera.scaled(self.options.preview_scale)
        image = session.render_image(camera, snapshot, should_abort, preview=not full)
        frame = {"image": image, "view": None}
        view = matching_view(request.camera.c2w, session.scene.c2w)
        if full and view is not None:
            frame["view"] = view
            # the model's own sampling: the PSNR beside the ground truth is the model's
            frame["view_image"] = session.render_image(
                session.dataset_camera(view), snapshot, should_abort, exact=True
            )
        return frame

    def _publish(self, client, frame: dict, full: bool) -> None:
        if self._tab(client) is None:  # the tab closed while this frame rendered
            return
        with self._tabs_lock:
            self._frames_total += 1
        client.scene.set_background_image(
            frame["image"], format="jpeg", jpeg_quality=self.options.jpeg_quality
        )
        if full:
            self._show_match(frame)
            tab = self._tab(client)
            if tab is not None:
                self.timing.content = f"Frame time: {tab.renderer.times.describe()}"

    def _show_match(self, frame: dict) -> None:
        view = frame["view"]
        if view is None:
            self.match_text.content = "The camera is not on a dataset camera."
            self.comparison_image.visible = False
            return
        truth = self.session.ground_truth(view)
        render = frame["view_image"]
        kind = "OOD" if bool(self.session.scene.view_is_ood[view]) else "ID"
        context = " (a context view)" if view in self.session.context else ""
        text = f"Camera on **view {view}** ({kind}){context}."
        if self.session.mode == "RGB":
            import torch

            score = psnr(
                torch.from_numpy(render).float() / 255, torch.from_numpy(truth).float() / 255
            )
            text += f" PSNR {float(score):.2f} dB"
        self.match_text.content = text
        gap = np.full((truth.shape[0], max(1, truth.shape[1] // 16), 3), 255, dtype=np.uint8)
        self.comparison_image.image = enlarge(np.concatenate([truth, gap, render], axis=1))
        self.comparison_image.visible = True

    def frames_published(self) -> int:
        """Frames sent to all tabs, closed ones included, since the start (tests, benchmarks)."""
        with self._tabs_lock:
            return self._frames_total

    def stop(self) -> None:
        with self._tabs_lock:
            tabs = list(self._tabs.values())
            self._tabs.clear()
        for tab in tabs:
            tab.renderer.stop()
        self.server.stop()
