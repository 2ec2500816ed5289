"""The camera path editor: keyframes from the browser's view, exported as a path file
for ``tools/render.py`` (see :mod:`nerfreg.viewer.path_file`)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from .camera import ViewPose
from .path_file import write_camera_path


class PathEditor:
    """GUI folder 'Camera path': add the current view as a keyframe, remove the last,
    clear, set frames / fps / size, export to a file (and offer it as a download)."""

    def __init__(self, server: Any, default_file: str | Path = 'camera_path.json',
                 width: int = 640, height: int = 480) -> None:
        self.server = server
        self.keyframes: list[ViewPose] = []
        self._handles: list[Any] = []
        self._lock = threading.Lock()
        gui = server.gui
        with gui.add_folder('Camera path', expand_by_default=False):
            self.add_button = gui.add_button('Add keyframe (current view)')
            self.remove_button = gui.add_button('Remove last keyframe')
            self.clear_button = gui.add_button('Clear keyframes')
            self.frames = gui.add_number('Frames', 120, min=1, max=100_000, step=1)
            self.fps = gui.add_number('FPS', 30.0, min=1.0, max=240.0, step=1.0)
            self.width = gui.add_number('Width', int(width), min=16, max=8192, step=2)
            self.height = gui.add_number('Height', int(height), min=16, max=8192, step=2)
            self.file = gui.add_text('File', str(default_file))
            self.export_button = gui.add_button('Export path')
            self.status = gui.add_markdown('0 keyframes')
        self.add_button.on_click(lambda event: self.add(ViewPose.from_viser(event.client.camera)))
        self.remove_button.on_click(lambda _event: self.remove_last())
        self.clear_button.on_click(lambda _event: self.clear())
        self.export_button.on_click(lambda event: self._export_clicked(event.client))

    def add(self, pose: ViewPose) -> None:
        with self._lock:
            self.keyframes.append(pose)
            i = len(self.keyframes) - 1
            self._handles.append(self.server.scene.add_camera_frustum(
                f'/camera_path/{i:04d}', fov=pose.fov, aspect=pose.aspect, scale=0.05,
                wxyz=np.asarray(pose.wxyz), position=np.asarray(pose.position),
                color=(230, 120, 30)))
        self._status()

    def remove_last(self) -> None:
        with self._lock:
            if self.keyframes:
                self.keyframes.pop()
                self._handles.pop().remove()
        self._status()

    def clear(self) -> None:
        with self._lock:
            self.keyframes.clear()
            for handle in self._handles:
                handle.remove()
            self._handles.clear()
        self._status()

    def export(self, path: str | Path | None = None) -> Path:
        """Write the path file (default: the 'File' field); returns its path."""
        with self._lock:
            keys = list(self.keyframes)
        return write_camera_path(path or self.file.value, keys, int(self.frames.value),
                                 int(self.width.value), int(self.height.value),
                                 float(self.fps.value))

    def _export_clicked(self, client: Any) -> None:
        try:
            path = self.export()
        except (ValueError, OSError) as exc:
            self.status.content = f'**Export failed:** {exc}'
            return
        self.status.content = (f'{len(self.keyframes)} keyframes; wrote `{path}`. Render it with '
                               f'`tools/render.py CONFIG CKPT --path-file {path}`')
        if client is not None:
            client.send_file_download(Path(path).name, Path(path).read_bytes())

    def _status(self) -> None:
        self.status.content = f'{len(self.keyframes)} keyframes'


__all__ = ['PathEditor']
