"""Fly-through videos of a trained model along a camera path.

The path is derived from the training cameras (``nerfreg.cameras.paths``): an ``orbit``
around the point the cameras look at, a forward-facing ``spiral``, or ``interpolate``
through the training poses (slerp). Frames are written with OpenCV, H.264 (``avc1``) when
this OpenCV build can encode it, else MPEG-4 Part 2 (``mp4v``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .inference import LoadedModel


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence native libraries (FFmpeg probing encoders) writing to fd 2."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def open_video_writer(path: str | Path, fps: float, size: tuple[int, int]) -> tuple[Any, str]:
    """An opened ``cv2.VideoWriter`` for ``size`` (W, H): H.264 if possible, else mp4v."""
    import cv2
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codecs = ['avc1', 'mp4v'] if size[0] % 2 == 0 and size[1] % 2 == 0 else ['mp4v']
    for codec in codecs:
        with _quiet_stderr():
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), float(fps),
                                     (int(size[0]), int(size[1])))
        if writer.isOpened():
            return writer, codec
        writer.release()
    raise RuntimeError(f'OpenCV cannot write {path} with codecs {codecs}; try another '
                       'resolution or an .avi suffix')


def depth_range(means: torch.Tensor, cams: Any, opacities: torch.Tensor | None = None,
                samples: int = 16) -> tuple[float, float]:
    """Near/far (2nd/98th percentiles) of Gaussian centre depths over sampled frames, so
    that the depth video has one colour scale."""
    pick = np.unique(np.linspace(0, len(cams) - 1, min(samples, len(cams))).round()).astype(int)
    keep = means if opacities is None else means[opacities > 0.1]
    keep = keep if len(keep) else means
    depths = []
    for i in pick:
        z = (keep @ cams.R[i].T + cams.t[i])[:, 2]
        depths.append(z[z > 0.01].float().cpu())
    z = torch.cat(depths) if depths else torch.zeros(0)
    if z.numel() < 2:
        return 0.1, 10.0
    near, far = (float(v) for v in torch.quantile(z[:1_000_000], torch.tensor([0.02, 0.98])))
    return max(near, 1e-3), max(far, near * 1.01)


def render_path_video(model: torch.nn.Module, renderer: Any, cams: Any, out: Path,
                      fps: float, depth_out: Path | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Render every camera of ``cams`` into ``out`` (and a depth video). Returns a summary."""
    import cv2

    from ..visualization.images import colorize_depth, to_uint8
    width, height = int(cams.width[0]), int(cams.height[0])
    device = next(iter(model.parameters())).device
    cams = cams.to(device)
    writer, codec = open_video_writer(out, fps, (width, height))
    depth_writer = None
    near = far = None
    if depth_out is not None:
        depth_writer, _ = open_video_writer(depth_out, fps, (width, height))
        if callable(getattr(model, 'depth_range', None)):  # a model that knows its bounds
            near, far = model.depth_range(cams)
        else:  # Gaussians: the depth range of their centres
            p = model.params
            near, far = depth_range(p['means'].detach(), cams, torch.sigmoid(p['opacities']))
    mode = 'RGB+ED' if depth_writer is not None else 'RGB'
    columns: list[Any] = []
    if progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        columns = [TextColumn('[bold]render'), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn()]
    from rich.progress import Progress
    try:
        with torch.no_grad(), Progress(*columns, disable=not progress) as bar:
            task = bar.add_task('render', total=len(cams))
            for i in range(len(cams)):
                cam = cams[i]
                batch = dict(camera=cam, viewmats=cam.viewmats(), Ks=cam.Ks(), width=width,
                             height=height, name=list(cam.names))
                results = renderer(model(batch), batch, render_mode=mode)
                frame = to_uint8(results['rgb'][0].clamp(0, 1))
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                if depth_writer is not None:
                    colour = colorize_depth(results['depth'][0], results['alpha'][0],
                                            near=near, far=far)
                    depth_writer.write(cv2.cvtColor(colour, cv2.COLOR_RGB2BGR))
                bar.advance(task)
    finally:
        writer.release()
        if depth_writer is not None:
            depth_writer.release()
    return dict(out=str(out), depth=None if depth_out is None else str(depth_out),
                frames=len(cams), width=width, height=height, fps=fps, codec=codec)


def render_path(loaded: LoadedModel, out: str | Path, path: str = 'orbit', frames: int = 120,
                fps: float = 30.0, resolution: tuple[int, int] | None = None,
                depth: bool = False, cameras: Any = None, progress: bool = False
                ) -> dict[str, Any]:
    """Render a camera path of ``loaded`` to the video ``out`` (and ``<out>_depth.mp4`` with
    ``depth``). ``cameras`` overrides the path (any ``Cameras``). Returns a summary dict."""
    from ..cameras.paths import make_camera_path
    if frames < 1:
        raise ValueError(f'frames must be >= 1, got {frames}')
    if fps <= 0:
        raise ValueError(f'fps must be > 0, got {fps}')
    if cameras is None:
        scene = loaded.scene()
        kwargs: dict[str, Any] = dict(resolution=resolution)
        if path == 'spiral' and getattr(scene, 'points', None) is not None:
            kwargs['points'] = scene.points
        cameras = make_camera_path(path, scene.train.cameras, frames, **kwargs)
    out = Path(out)
    depth_out = out.with_name(f'{out.stem}_depth{out.suffix or ".mp4"}') if depth else None
    summary = render_path_video(loaded.model, loaded.renderer, cameras, out, fps, depth_out,
                                progress=progress)
    summary.update(path=path, step=loaded.step)
    return summary


__all__ = ['depth_range', 'open_video_writer', 'render_path', 'render_path_video']
