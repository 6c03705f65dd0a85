"""The viewer in a real headless browser: Debian's ``chromium`` driven by Playwright (the system
browser; Playwright never downloads one). Skipped when either is missing.

Needs: ``apt-get install -y chromium`` and ``pip install playwright``.
"""

from __future__ import annotations

import math
import shutil
import socket
import time
from pathlib import Path

import pytest

pytest.importorskip("viser")  # the `viewer` extra
playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("no chromium browser installed (apt-get install chromium)", allow_module_level=True)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_S = 30.0


def wait_for(condition, timeout: float = TIMEOUT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def viewer(tiny_dataset, tiny_run):
    """The viewer on the tiny run's test split, on a free localhost port."""
    from nerfvae.data.loader import MultiSceneDataset
    from nerfvae.training.loading import load_trained_model
    from nerfvae.viewer import start_viewer

    model, _, _ = load_trained_model(tiny_run)
    dataset = MultiSceneDataset(tiny_dataset, "test")
    app = start_viewer(model, dataset, port=0, settle_seconds=0.1, verbose=False)
    yield app
    app.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright_api.sync_playwright() as playwright:
        # launch_persistent_context: the only way to give Chromium a fresh --user-data-dir
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1100, "height": 760},
        )
        yield context
        context.close()


@pytest.fixture
def page(viewer, browser):
    """A fresh tab on the viewer, connected and showing its first frame."""
    tab = browser.new_page()
    frames_before = viewer.frames_published()
    clients_before = set(viewer.server.get_clients())
    tab.goto(f"http://127.0.0.1:{viewer.server.get_port()}", timeout=TIMEOUT_S * 1000)
    tab.get_by_text("New prior sample").wait_for(timeout=TIMEOUT_S * 1000)
    wait_for(lambda: set(viewer.server.get_clients()) - clients_before, what="the tab to connect")
    wait_for(lambda: viewer.frames_published() > frames_before, what="a first frame")
    yield tab
    tab.close()


def tab_client(viewer):
    """The newest connected browser tab's viser client."""
    clients = viewer.server.get_clients()
    return clients[max(clients)]


def test_page_loads_with_panel_and_first_frame(viewer, page):
    assert page.get_by_role("combobox", name="Scene").input_value() == "0"
    assert page.get_by_text("posterior mean from views 0, 1, 2").is_visible()
    assert page.locator("canvas").count() >= 1
    assert page.get_by_text("Context views").is_visible()
    assert viewer.errors == []


def test_selecting_a_scene_infers_and_shows_it(viewer, page):
    page.get_by_role("combobox", name="Scene").click()
    page.get_by_role("option", name="1", exact=True).click()
    wait_for(lambda: viewer.session.scene_index == 1, what="scene 1 to be selected")
    page.get_by_text("scene 1 (test-").wait_for(timeout=TIMEOUT_S * 1000)
    assert viewer.errors == []


def test_moving_the_camera_renders_new_frames(viewer, page):
    client = tab_client(viewer)
    wait_for(lambda: client.camera.update_timestamp != 0.0, what="the browser's camera")
    position_before = client.camera.position.copy()
    frames_before = viewer.frames_published()
    box = page.locator("canvas").first.bounding_box()
    x, y = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + 15 * step, y + 3 * step)
    page.mouse.up()
    wait_for(
        lambda: not all(abs(client.camera.position - position_before) < 1e-6),
        what="the camera to move",
    )
    # a preview while moving and a full frame after: at least two new frames
    wait_for(lambda: viewer.frames_published() >= frames_before + 2, what="new frames")
    assert viewer.errors == []


def test_go_to_a_dataset_camera_shows_ground_truth_beside_the_render(viewer, page):
    page.get_by_role("combobox", name="Go to camera").click()
    page.get_by_role("option", name="view 6 (OOD)", exact=True).click()
    page.get_by_text("Camera on view 6 (OOD)").wait_for(timeout=TIMEOUT_S * 1000)
    assert viewer.comparison_image.visible
    comparison = viewer.comparison_image.image  # dataset image | gap | render, enlarged
    height, width = viewer.session.meta.image_height, viewer.session.meta.image_width
    factor = comparison.shape[0] // height
    assert comparison.shape[1] == factor * (2 * width + max(1, width // 16))
    truth = viewer.session.ground_truth(6)
    assert (comparison[::factor, : width * factor : factor] == truth).all()


def test_buttons_draw_samples(viewer, page):
    page.get_by_role("button", name="New posterior sample").click()
    page.get_by_text("posterior sample #").wait_for(timeout=TIMEOUT_S * 1000)
    page.get_by_role("button", name="New prior sample").click()
    page.get_by_text("prior sample #").wait_for(timeout=TIMEOUT_S * 1000)
    page.get_by_role("button", name="Posterior mean").click()
    page.get_by_text("posterior mean from views").wait_for(timeout=TIMEOUT_S * 1000)
    assert viewer.errors == []


def test_server_survives_malformed_requests(viewer, browser):
    import msgspec
    import viser
    from websockets.sync.client import connect

    port = viewer.server.get_port()
    scene_before = viewer.session.scene_index
    # 1. Not HTTP at all.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"\x00\xffGARBAGE\r\n\r\n" * 10)
        raw.settimeout(5)
        try:
            raw.recv(1024)
        except (TimeoutError, ConnectionError):
            pass
    # 2. HTTP requests for paths that are not there or try to leave the web root.
    for path in ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/no-such-file.js"]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            reply = raw.recv(4096)
            assert b"root:" not in reply
    # 3. Websocket frames that are not viser messages, and well-formed messages with absurd values.
    errors_before = len(viewer.errors)
    url = f"ws://127.0.0.1:{port}"
    with connect(url, subprotocols=[f"viser-v{viser.__version__}"]) as websocket:
        nan = math.nan
        camera = {"type": "ViewerCameraMessage", "wxyz": [nan, 0, 0, 0], "position": [0, 0, 0],
                  "fov": nan, "near": 0.01, "far": 100.0, "image_height": 0, "image_width": 10,
                  "look_at": [0, 0, 0], "up_direction": [0, 0, 1]}  # fmt: skip
        websocket.send(msgspec.msgpack.encode(camera))
        bad_scene = {"type": "GuiUpdateMessage", "uuid": viewer.scene_dropdown._impl.uuid,
                     "updates": {"value": "banana"}}  # fmt: skip
        websocket.send(msgspec.msgpack.encode(bad_scene))
        time.sleep(0.5)
    wait_for(lambda: len(viewer.errors) > errors_before, what="the bad messages to be rejected")
    for junk in [b"\x93\x01\x02", b"not msgpack at all", "a text frame"]:
        try:
            with connect(url, subprotocols=[f"viser-v{viser.__version__}"]) as websocket:
                websocket.send(junk)
                time.sleep(0.2)
        except Exception:  # the server may close the connection: that is the right answer
            pass
    with connect(url, subprotocols=["viser-v0.0.0"]) as websocket:  # wrong protocol version
        with pytest.raises(Exception):  # noqa: B017  (closed by the server, any close error)
            websocket.recv(timeout=5)
    # The viewer still serves a working page, on the scene it showed.
    assert viewer.session.scene_index == scene_before
    wait_for(
        lambda: viewer.scene_dropdown.value == str(scene_before),
        what="the scene choice to be restored",
    )
    assert any("no scene 'banana'" in error for error in viewer.errors)
    tab = browser.new_page()
    try:
        frames_before = viewer.frames_published()
        tab.goto(f"http://127.0.0.1:{port}", timeout=TIMEOUT_S * 1000)
        tab.get_by_text("New prior sample").wait_for(timeout=TIMEOUT_S * 1000)
        wait_for(lambda: viewer.frames_published() > frames_before, what="a frame after the junk")
    finally:
        tab.close()
