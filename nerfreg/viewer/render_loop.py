"""Per-browser render thread with progressive resolution.

While the camera moves, frames are rendered at a reduced size chosen from the measured
cost of the previous frames so that about ``target_fps`` frames per second reach the
browser; once the camera has been still for ``still_after`` seconds the view is rendered
again at the full resolution cap. A live scene re-renders when its model changes (the
source's duty-cycle limit keeps rendering from taking the CPU from training).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .camera import ViewPose
from .render import SceneSource, ViewSettings

logger = logging.getLogger(__name__)


@dataclass
class FrameRecord:
    """One frame sent: its pose, size, model version, render time and whether it is a
    reduced-resolution frame of a moving camera (``moving``)."""

    pose: ViewPose
    width: int
    height: int
    version: int
    seconds: float
    moving: bool
    settings: ViewSettings
    image: np.ndarray = field(repr=False)


class MovingResolution:
    """Longer image side for frames rendered while the camera moves.

    Keeps a running estimate of the render time per pixel plus a fixed cost per frame,
    and picks the largest side whose predicted time fits ``1 / target_fps``.
    """

    def __init__(self, target_fps: float = 10.0, min_side: int = 64) -> None:
        self.budget = 1.0 / float(target_fps)
        self.min_side = int(min_side)
        self.fixed = 0.0  # seconds per frame independent of its size
        self.per_pixel: float | None = None

    def update(self, pixels: int, seconds: float) -> None:
        """Record a frame of ``pixels`` that took ``seconds``."""
        if self.per_pixel is None:
            self.fixed = 0.3 * seconds
            self.per_pixel = 0.7 * seconds / max(pixels, 1)
            return
        predicted = self.fixed + self.per_pixel * pixels
        ratio = seconds / max(predicted, 1e-9)
        # blend: the fixed part absorbs what small frames reveal, the per-pixel part the rest
        self.fixed = 0.8 * self.fixed + 0.2 * min(seconds, self.fixed * ratio)
        self.per_pixel = 0.8 * self.per_pixel + 0.2 * max(
            (seconds - self.fixed) / max(pixels, 1), 1e-12)

    def side(self, full_side: int, aspect: float) -> int:
        """The longer side to render at while moving (at most ``full_side``)."""
        if self.per_pixel is None:
            return max(self.min_side, full_side // 2)
        room = max(self.budget - self.fixed, 0.0) / self.per_pixel  # pixels that fit
        # pixels = side^2 / aspect' where aspect' = long / short side ratio
        long_over_short = max(aspect, 1.0 / aspect)
        side = int(np.sqrt(room * long_over_short))
        return int(np.clip(side, self.min_side, full_side))


class ClientRenderLoop:
    """Renders ``source`` for one viser client in a daemon thread.

    ``settings`` is called for the current :class:`ViewSettings`. ``send`` delivers a frame
    (default: the client's scene background image, JPEG). A failing send (the browser went
    away) ends the loop quietly; other clients are unaffected.
    """

    def __init__(self, client: Any, source: SceneSource, settings: Callable[[], ViewSettings],
                 target_fps: float = 10.0, still_after: float = 0.25,
                 send: Callable[[Any, np.ndarray, ViewSettings], None] | None = None) -> None:
        self.client = client
        self.source = source
        self.settings = settings
        self.still_after = float(still_after)
        self.moving = MovingResolution(target_fps)
        self._send = send or _send_background
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_move = 0.0
        self._shown: tuple | None = None  # (pose, settings, version, side) on screen
        self.frames: list[FrameRecord] = []
        self.max_records = 200
        self._cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f'nerfreg-viewer-client-{client.client_id}')

    # ---- control ------------------------------------------------------------------------
    def start(self) -> ClientRenderLoop:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def camera_moved(self) -> None:
        self._last_move = time.monotonic()
        self._wake.set()

    def invalidate(self) -> None:
        """Render again (settings or model changed)."""
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def wait_for_frame(self, predicate: Callable[[FrameRecord], bool],
                       timeout: float = 30.0) -> FrameRecord | None:
        """The first new-or-recorded frame satisfying ``predicate`` (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for record in reversed(self.frames):
                    if predicate(record):
                        return record
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    # ---- loop ---------------------------------------------------------------------------
    def _pose(self) -> ViewPose | None:
        try:
            return ViewPose.from_viser(self.client.camera)
        except (AssertionError, AttributeError):  # the browser has not reported a camera yet
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            if self._stop.is_set():
                break
            pose = self._pose()
            if pose is None:
                continue
            settings = self.settings()
            moving = time.monotonic() - self._last_move < self.still_after
            full = int(settings.max_side)
            side = self.moving.side(full, pose.aspect) if moving else full
            version = self.source.latest_version
            if self._shown is not None:
                s_pose, s_settings, s_version, s_side = self._shown
                if (s_pose, s_settings, s_version) == (pose, settings, version) and s_side >= side:
                    continue
            try:
                # a frame at the full cap is final even if the camera was still moving
                self._render_and_send(pose, settings, side, moving and side < full)
            except Exception as exc:  # noqa: BLE001 (a browser gone mid-send, a render error)
                if self._stop.is_set():
                    break
                logger.warning('viewer: client %s: %s: %s', self.client.client_id,
                               type(exc).__name__, exc)
                self._shown = None
                time.sleep(0.2)

    def _render_and_send(self, pose: ViewPose, settings: ViewSettings, side: int,
                         moving: bool) -> None:
        width, height = pose.image_size(side)
        image, version, seconds = self.source.render(pose, width, height, settings)
        self.moving.update(width * height, seconds)
        if self._stop.is_set():  # the browser left while this frame rendered
            return
        self._send(self.client, image, settings)
        self._shown = (pose, settings, version, side)
        record = FrameRecord(pose, width, height, version, seconds, moving, settings, image)
        with self._cond:
            self.frames.append(record)
            del self.frames[:-self.max_records]
            self._cond.notify_all()


def _send_background(client: Any, image: np.ndarray, settings: ViewSettings) -> None:
    client.scene.set_background_image(image, format='jpeg', jpeg_quality=settings.jpeg_quality)


__all__ = ['ClientRenderLoop', 'FrameRecord', 'MovingResolution']
