"""Start a viewer server for a loaded scene (used by ``nerfreg-view`` and notebooks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def default_pose(model: Any) -> Any:
    """A view of the whole scene when there are no training cameras: models exposing
    point-like ``params['means']`` are framed from their spread; others get viser's."""
    from .server import look_at_pose
    params = getattr(model, 'params', None)
    means = params.get('means') if hasattr(params, 'get') else None
    if means is None or len(means) == 0:
        return None
    pts = means.detach().float().cpu().numpy()
    center = np.median(pts, axis=0)
    spread = float(np.percentile(np.linalg.norm(pts - center, axis=1), 90))
    return look_at_pose(center, 2.5 * max(spread, 1e-3))


def start_viewer(scene: Any, host: str = '127.0.0.1', port: int = 8080, max_side: int = 640,
                 target_fps: float = 10.0, path_file: str | Path = 'camera_path.json') -> Any:
    """A running :class:`ViewerServer` for a loaded :class:`ViewerScene`."""
    from .render import SceneSource
    from .server import ViewerServer
    source = SceneSource(scene.model, scene.renderer)
    max_sh = getattr(scene.model, 'sh_degree', None)
    initial = None if scene.cameras is not None else default_pose(scene.model)
    return ViewerServer(source, host=host, port=port, cameras=scene.cameras,
                        images=scene.images, initial_pose=initial,
                        max_sh_degree=None if max_sh is None else int(max_sh),
                        max_side=max_side, target_fps=target_fps, path_file=path_file)
