"""Progressive rendering: a quick low-resolution frame as soon as the camera (or what is shown)
changes, the full-resolution frame once it has been still for a moment.

One :class:`ProgressiveRenderer` (one thread) serves one browser tab. A full-resolution render
that a newer request makes pointless stops between ray chunks, so a camera that moves again is
answered with a new preview within about one preview time plus one chunk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from nerfvae.viewer.session import RenderAborted

Request = TypeVar("Request")
Frame = TypeVar("Frame")


@dataclass
class FrameTimes:
    """Seconds spent on the latest and on all finished preview / full frames."""

    preview_last: float = 0.0
    full_last: float = 0.0
    preview_all: list[float] = field(default_factory=list)
    full_all: list[float] = field(default_factory=list)
    aborted: int = 0

    def describe(self) -> str:
        def median(values: list[float]) -> float:
            return sorted(values)[len(values) // 2] if values else 0.0

        return (
            f"preview {1000 * median(self.preview_all):.0f} ms, "
            f"full {1000 * median(self.full_all):.0f} ms (medians over "
            f"{len(self.preview_all)} / {len(self.full_all)} frames; {self.aborted} aborted)"
        )


class ProgressiveRenderer(Generic[Request, Frame]):
    """Renders the newest request: first at ``preview`` quality, then, after the requests have
    stopped for ``settle_seconds``, at full quality.

    Args:
        render: ``(request, full, should_abort) -> frame``; may raise :class:`RenderAborted` when
            ``should_abort()`` turns true.
        publish: ``(frame, full)``, called from the renderer thread with each finished frame.
        settle_seconds: how long the requests must pause before the full-quality render starts.
        render_lock: held during each render, shared by all renderers of a process so that
            browser tabs take turns on the CPU instead of slowing each other down.
        on_error: called with an exception a render raised (the thread keeps running).
    """

    def __init__(
        self,
        render: Callable[[Request, bool, Callable[[], bool]], Frame],
        publish: Callable[[Frame, bool], None],
        settle_seconds: float = 0.25,
        render_lock: threading.Lock | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._render = render
        self._publish = publish
        self.settle_seconds = settle_seconds
        self._render_lock = render_lock or threading.Lock()
        self._on_error = on_error
        self._condition = threading.Condition()
        self._request: Request | None = None
        self._version = 0
        self._changed_at = 0.0
        self._preview_version = 0
        self._full_version = 0
        self._running = True
        self.times = FrameTimes()
        self.frames_published = 0
        self._thread = threading.Thread(target=self._loop, name="nerfvae-render", daemon=True)
        self._thread.start()

    def request(self, request: Request) -> None:
        """Render ``request`` (it replaces any request not yet rendered)."""
        with self._condition:
            self._request = request
            self._version += 1
            self._changed_at = time.monotonic()
            self._condition.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        with self._condition:
            self._running = False
            self._condition.notify_all()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until the newest request has its full-quality frame (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._running and self._full_version != self._version:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def _is_stale(self, version: int) -> bool:
        return not self._running or self._version != version

    def _loop(self) -> None:
        while True:
            with self._condition:
                while self._running and (
                    self._request is None or self._full_version == self._version
                ):
                    self._condition.wait()
                if not self._running:
                    return
                version, request = self._version, self._request
                still_for = time.monotonic() - self._changed_at
                if self._preview_version == version and still_for < self.settle_seconds:
                    # Preview shown; wait for the camera to settle (or for a newer request).
                    self._condition.wait(self.settle_seconds - still_for)
                    continue
            full = self._preview_version == version
            self._render_one(request, version, full)

    def _render_one(self, request: Request, version: int, full: bool) -> None:
        started = time.perf_counter()
        try:
            with self._render_lock:
                # A preview is quick and always finishes (the user sees something move); only
                # the full-quality render gives way to newer requests.
                frame = self._render(
                    request, full, (lambda: self._is_stale(version)) if full else (lambda: False)
                )
        except RenderAborted:
            self.times.aborted += 1
            return
        except Exception as error:  # a failing render must not kill the tab's render thread
            if self._on_error is not None:
                self._on_error(error)
            with self._condition:  # do not retry the same request in a tight loop
                self._preview_version = self._full_version = version
                self._condition.notify_all()
            return
        seconds = time.perf_counter() - started
        self._publish(frame, full)
        with self._condition:
            self.frames_published += 1
            if full:
                self.times.full_last = seconds
                self.times.full_all.append(seconds)
                self._full_version = version
            else:
                self.times.preview_last = seconds
                self.times.preview_all.append(seconds)
                self._preview_version = version
            self._condition.notify_all()
