"""The viewer session: a viser server on localhost, one render loop per browser, the
render controls, statistics, training-camera frustums and the camera path editor.

viser is imported here only, when a viewer is started, so that nerfreg imports and trains
without it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .camera import ViewPose, world_up
from .frustums import add_camera_frustums, move_client_camera
from .gui import RenderControls, StatsPanel
from .path_editor import PathEditor
from .render import SceneSource, ViewSettings
from .render_loop import ClientRenderLoop

logger = logging.getLogger(__name__)


class PortInUseError(OSError):
    """The viewer's port is taken; the message suggests ``--port``."""


def import_viser() -> Any:
    """The ``viser`` module, or an ImportError saying how to install it."""
    try:
        import viser
    except ImportError as exc:
        raise ImportError('The viewer needs viser, which is not installed. Install the viewer '
                          "extra: pip install -e '.[viewer]' (or pip install viser).") from exc
    return viser


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUseError` when ``host:port`` cannot be bound."""
    if int(port) == 0:
        return
    with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            raise PortInUseError(
                f'port {port} on {host} is already in use ({exc.strerror}); another viewer or '
                f'server is running there. Pass a free one with --port, e.g. --port '
                f'{int(port) + 1} (or port= in the ViewerHook config).') from exc


class ViewerServer:
    """Serve ``source`` to browsers at ``http://host:port``.

    Args:
        source: the scene (static or live) to render.
        host, port: where to listen (default localhost only; port 0 picks a free one).
        cameras, images: training cameras (frustums, click to jump) and their images.
        initial_pose: where a new browser's camera starts (default: the first camera).
        max_sh_degree: range of the SH-degree control (None: no control).
        max_side: initial resolution cap; target_fps: frame rate aimed at while moving.
        max_duty: share of the time render threads may take (live training); None: no cap.
        path_file: default file of the camera path editor.
    """

    def __init__(self, source: SceneSource, host: str = '127.0.0.1', port: int = 8080,
                 cameras: Any = None, images: Any = None, initial_pose: ViewPose | None = None,
                 max_sh_degree: int | None = None, max_side: int = 640,
                 target_fps: float = 10.0, max_duty: float | None = None,
                 title: str = 'nerfreg viewer', path_file: str | Path = 'camera_path.json',
                 still_after: float = 0.25) -> None:
        viser = import_viser()
        check_port_free(host, port)
        self.source = source
        self.host = host
        self.target_fps = float(target_fps)
        if max_duty is not None:
            source.max_duty = float(max_duty)
        self.still_after = float(still_after)
        self.loops: dict[int, ClientRenderLoop] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.server = viser.ViserServer(host=host, port=int(port), label=title, verbose=False)
        self.port = int(self.server.get_port())
        if int(port) != 0 and self.port != int(port):  # viser moved to another port: refuse
            self.server.stop()
            raise PortInUseError(f'port {port} on {host} is already in use. Pass a free one '
                                 f'with --port, e.g. --port {int(port) + 1}.')
        try:
            self._build_scene(cameras, images, initial_pose, max_sh_degree, max_side, path_file)
        except BaseException:
            self.server.stop()  # do not keep the port while failing
            raise
        self.server.on_client_connect(self._on_connect)
        self.server.on_client_disconnect(self._on_disconnect)

    def _build_scene(self, cameras: Any, images: Any, initial_pose: ViewPose | None,
                     max_sh_degree: int | None, max_side: int, path_file: str | Path) -> None:
        """The GUI (controls, stats, path editor) and the training-camera frustums."""
        self.controls = RenderControls(self.server, self.invalidate_all, max_sh_degree, max_side)
        self.stats = StatsPanel(self.server)
        width, height = 640, 480
        if cameras is not None and len(cameras):
            width, height = int(cameras.width[0]), int(cameras.height[0])
        self.path_editor = PathEditor(self.server, path_file, width, height)
        self.frustums: list[Any] = []
        if cameras is not None and len(cameras):
            up = world_up(cameras)
            self.server.scene.set_up_direction(tuple(float(v) for v in up))
            self.frustums = add_camera_frustums(self.server, cameras, images)
            if initial_pose is None:
                from .camera import cameras_to_poses
                initial_pose = cameras_to_poses(cameras[0])[0]
        self.initial_pose = initial_pose

    # ---- properties ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = 'localhost' if self.host in ('127.0.0.1', '0.0.0.0', '::', '::1') else self.host
        return f'http://{host}:{self.port}'

    def settings(self) -> ViewSettings:
        return self.controls.settings()

    # ---- clients ------------------------------------------------------------------------
    def _on_connect(self, client: Any) -> None:
        if self._closed:
            return
        loop = ClientRenderLoop(client, self.source, self.settings, self.target_fps,
                                self.still_after)
        with self._lock:
            self.loops[client.client_id] = loop
        client.camera.on_update(lambda _camera: loop.camera_moved())
        if self.initial_pose is not None:
            move_client_camera(client, self.initial_pose)
        loop.start()

    def _on_disconnect(self, client: Any) -> None:
        with self._lock:
            loop = self.loops.pop(client.client_id, None)
        if loop is not None:
            loop.stop(timeout=0)

    def invalidate_all(self) -> None:
        """Every browser renders again (settings or model changed)."""
        with self._lock:
            loops = list(self.loops.values())
        for loop in loops:
            loop.invalidate()

    @property
    def num_clients(self) -> int:
        with self._lock:
            return len(self.loops)

    def wait_for_client(self, timeout: float = 30.0) -> ClientRenderLoop | None:
        """The render loop of the first browser to connect (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.loops:
                    return next(iter(self.loops.values()))
            time.sleep(0.05)
        return None

    def set_stats(self, values: dict[str, Any]) -> None:
        self.stats.update(values)

    # ---- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop every render loop and the server (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            loops = list(self.loops.values())
            self.loops.clear()
        for loop in loops:
            loop.stop(timeout=2.0)
        self.server.stop()

    def serve_forever(self, poll: float = 0.5) -> None:
        """Block until Ctrl-C, then close cleanly."""
        try:
            while not self._closed:
                time.sleep(poll)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def __enter__(self) -> ViewerServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def look_at_pose(center: np.ndarray, distance: float, fov: float = 0.9,
                 aspect: float = 4 / 3) -> ViewPose:
    """A pose ``distance`` from ``center`` along -z, looking at it (world +z ahead)."""
    position = np.asarray(center, np.float64) - np.array([0.0, 0.0, distance])
    return ViewPose((1.0, 0.0, 0.0, 0.0), tuple(position.tolist()), fov, aspect)


__all__ = ['PortInUseError', 'ViewerServer', 'check_port_free', 'import_viser', 'look_at_pose']
