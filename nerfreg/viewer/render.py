"""One viewer frame: a model and renderer from the registries, a viewport pose, settings.

The viewer knows no method. It calls ``model(batch)`` and ``renderer(render_inputs, batch,
render_mode=...)`` as the trainer does, and reads the generic result keys ``rgb``,
``depth`` and ``alpha``. Two optional ``render_inputs`` keys are overridden when a model
provides them: ``sh_degree`` (capped by the SH-degree control) and ``backgrounds``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .camera import ViewPose, pose_to_cameras

RENDER_MODES = ('RGB', 'depth', 'opacity')
_RENDERER_MODE = {'RGB': 'RGB', 'depth': 'RGB+ED', 'opacity': 'RGB'}


@dataclass(frozen=True)
class ViewSettings:
    """What the GUI controls: render ``mode``, ``sh_degree`` cap (None: the model's),
    ``max_side`` (resolution cap of the longer image side), ``background`` (RGB 0..1 or
    None: the model's), ``jpeg_quality`` of the frames sent."""

    mode: str = 'RGB'
    sh_degree: int | None = None
    max_side: int = 640
    background: tuple[float, float, float] | None = None
    jpeg_quality: int = 85

    def __post_init__(self) -> None:
        if self.mode not in RENDER_MODES:
            raise ValueError(f'render mode must be one of {RENDER_MODES}, got {self.mode!r}')

    def with_(self, **changes: Any) -> ViewSettings:
        return replace(self, **changes)


def view_batch(pose: ViewPose, width: int, height: int,
               device: torch.device | str) -> dict[str, Any]:
    """The batch a renderer takes for one viewport camera (as the datasets build it)."""
    cam = pose_to_cameras(pose, width, height, device)
    return dict(camera=cam, viewmats=cam.viewmats(), Ks=cam.Ks(), width=int(width),
                height=int(height), name=['viewer'])


@torch.no_grad()
def render_view(model: torch.nn.Module, renderer: Any, pose: ViewPose, width: int,
                height: int, settings: ViewSettings = ViewSettings()) -> np.ndarray:
    """Render ``pose`` at ``width x height``; uint8 RGB ``[H, W, 3]``."""
    from ..visualization.images import colorize_depth, to_uint8
    device = next(iter(model.buffers()), None)
    device = device.device if device is not None else next(iter(model.parameters())).device
    batch = view_batch(pose, width, height, device)
    inputs = dict(model(batch))
    if settings.sh_degree is not None and inputs.get('sh_degree') is not None:
        inputs['sh_degree'] = min(int(inputs['sh_degree']), int(settings.sh_degree))
    if settings.background is not None and inputs.get('backgrounds') is not None:
        inputs['backgrounds'] = torch.tensor(settings.background, dtype=torch.float32,
                                             device=device).expand(1, 3)
    results = renderer(inputs, batch, render_mode=_RENDERER_MODE[settings.mode])
    if settings.mode == 'RGB':
        return to_uint8(results['rgb'][0].clamp(0, 1))
    if settings.mode == 'opacity':
        return to_uint8(results['alpha'][0].clamp(0, 1))
    alpha = results.get('alpha')
    return colorize_depth(results['depth'][0], None if alpha is None else alpha[0])


class SceneSource:
    """The model the viewer renders, with a version that changes when it does.

    A static scene never changes. A live scene (training) receives state dicts from the
    training thread through :meth:`post` and loads the newest one into its own copy of the
    model just before rendering, so the trained model itself is never touched by the
    viewer's threads.
    """

    def __init__(self, model: torch.nn.Module, renderer: Any, live: bool = False,
                 max_duty: float | None = None) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.renderer = renderer
        self.live = live
        self.version = 0
        self._pending: dict[str, torch.Tensor] | None = None
        self._pending_version = 0
        self._lock = threading.Lock()
        self.render_lock = threading.Lock()  # one render at a time (shared CPU)
        self.max_duty = max_duty  # share of wall time all renders together may take
        self._next_start = 0.0
        self.stats: dict[str, Any] = {}

    def post(self, state_dict: dict[str, torch.Tensor], stats: dict[str, Any] | None = None
             ) -> None:
        """Hand a new model state over (called from the training thread)."""
        with self._lock:
            self._pending = state_dict
            self._pending_version += 1
            if stats is not None:
                self.stats = dict(stats)

    @property
    def latest_version(self) -> int:
        with self._lock:
            return self._pending_version if self.live else self.version

    def refresh(self) -> int:
        """Load the newest posted state (render threads only, under ``render_lock``)."""
        with self._lock:
            state, self._pending = self._pending, None
            version = self._pending_version
        if state is not None:
            self.model.load_state_dict(state)
            self.model.eval()
            self.version = version
        return self.version

    def render(self, pose: ViewPose, width: int, height: int,
               settings: ViewSettings) -> tuple[np.ndarray, int, float]:
        """``(frame, model version, seconds spent rendering)`` for one viewport camera."""
        with self.render_lock:
            wait = self._next_start - time.monotonic()
            if wait > 0:  # leave the CPU to training for the rest of the duty cycle
                time.sleep(wait)
            start = time.monotonic()
            version = self.refresh()
            image = render_view(self.model, self.renderer, pose, width, height, settings)
            elapsed = time.monotonic() - start
            if self.max_duty:
                self._next_start = time.monotonic() + elapsed * (1.0 / self.max_duty - 1.0)
            return image, version, elapsed


__all__ = ['RENDER_MODES', 'SceneSource', 'ViewSettings', 'render_view', 'view_batch']
