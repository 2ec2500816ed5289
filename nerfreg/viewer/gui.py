"""The viewer's render controls and statistics panel (viser GUI, shared by all browsers)."""

from __future__ import annotations

import threading
from typing import Any, Callable

from .render import RENDER_MODES, ViewSettings


class RenderControls:
    """Render mode, SH degree, resolution cap, background colour and JPEG quality.

    ``on_change`` is called (from viser's threads) whenever a control changes;
    :meth:`settings` returns the current values as a :class:`ViewSettings`.
    """

    def __init__(self, server: Any, on_change: Callable[[], None],
                 max_sh_degree: int | None = None, max_side: int = 640) -> None:
        self._lock = threading.Lock()
        self._on_change = on_change
        gui = server.gui
        with gui.add_folder('Render'):
            self.mode = gui.add_dropdown('Mode', RENDER_MODES, initial_value='RGB')
            self.sh_degree = None
            if max_sh_degree is not None:
                self.sh_degree = gui.add_slider('SH degree', 0, int(max_sh_degree), 1,
                                                int(max_sh_degree))
            self.max_side = gui.add_slider('Resolution cap', 64, 2048, 32, int(max_side),
                                           hint='longer image side when the camera is still')
            self.custom_background = gui.add_checkbox('Custom background', False)
            self.background = gui.add_rgb('Background', (0, 0, 0))
            self.jpeg_quality = gui.add_slider('JPEG quality', 30, 100, 5, 85)
        handles = [self.mode, self.max_side, self.custom_background, self.background,
                   self.jpeg_quality] + ([self.sh_degree] if self.sh_degree else [])
        for handle in handles:
            handle.on_update(lambda _event: self._changed())
        self._settings = self._read()

    def _read(self) -> ViewSettings:
        bg = None
        if self.custom_background.value:
            bg = tuple(float(c) / 255.0 for c in self.background.value)
        return ViewSettings(
            mode=str(self.mode.value),
            sh_degree=None if self.sh_degree is None else int(self.sh_degree.value),
            max_side=int(self.max_side.value), background=bg,
            jpeg_quality=int(self.jpeg_quality.value))

    def _changed(self) -> None:
        with self._lock:
            self._settings = self._read()
        self._on_change()

    def settings(self) -> ViewSettings:
        with self._lock:
            return self._settings


class StatsPanel:
    """A markdown table of named values (step, loss, Gaussians, speed, ...)."""

    def __init__(self, server: Any, title: str = 'Stats') -> None:
        with server.gui.add_folder(title):
            self.markdown = server.gui.add_markdown('')
        self.values: dict[str, Any] = {}

    def update(self, values: dict[str, Any]) -> None:
        self.values = dict(values)
        rows = [f'| {key} | {_fmt(value)} |' for key, value in values.items()]
        self.markdown.content = '| | |\n|---|---|\n' + '\n'.join(rows) if rows else ''


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    if isinstance(value, int):
        return f'{value:,}'
    return str(value)


__all__ = ['RenderControls', 'StatsPanel']
