"""Camera path files written by the viewer's path editor and read by ``tools/render.py``.

A JSON file: the keyframes as the viewer saw them (``wxyz`` camera-to-world rotation in
OpenCV axes, ``position``, vertical ``fov`` in radians) and the dense, already
interpolated ``frames`` (world-to-camera ``R``, ``t`` and pinhole intrinsics), so a reader
needs no interpolation code::

    {"format": "nerfreg-camera-path", "version": 1, "fps": 30.0, "width": 640,
     "height": 480, "keyframes": [...], "frames": [{"R": [[...]], "t": [...], "fx": ...,
     "fy": ..., "cx": ..., "cy": ...}, ...]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch

from ..cameras import Cameras
from ..cameras.paths import interpolate_path
from ..utils.fileio import atomic_write_text
from .camera import ViewPose, pose_to_cameras

FORMAT = 'nerfreg-camera-path'
VERSION = 1


def interpolate_keyframes(keyframes: Sequence[ViewPose], n_frames: int, width: int,
                          height: int) -> Cameras:
    """``n_frames`` cameras through the keyframes in order (Catmull-Rom positions, slerp
    rotations), with the field of view of the first keyframe."""
    if not keyframes:
        raise ValueError('the camera path has no keyframes: add at least one')
    if n_frames < 1:
        raise ValueError(f'a camera path needs at least 1 frame, got {n_frames}')
    keys = Cameras.cat([pose_to_cameras(k, width, height) for k in keyframes])
    return interpolate_path(keys, n_frames, order='given', max_keyframes=len(keyframes))


def camera_path_dict(keyframes: Sequence[ViewPose], n_frames: int, width: int, height: int,
                     fps: float = 30.0) -> dict[str, Any]:
    """The JSON-serialisable content of a path file."""
    cams = interpolate_keyframes(keyframes, n_frames, width, height)
    frames = [dict(R=cams.R[i].tolist(), t=cams.t[i].tolist(), fx=float(cams.fx[i]),
                   fy=float(cams.fy[i]), cx=float(cams.cx[i]), cy=float(cams.cy[i]))
              for i in range(len(cams))]
    keys = [dict(wxyz=list(k.wxyz), position=list(k.position), fov=k.fov) for k in keyframes]
    return dict(format=FORMAT, version=VERSION, fps=float(fps), width=int(width),
                height=int(height), keyframes=keys, frames=frames)


def write_camera_path(path: str | Path, keyframes: Sequence[ViewPose], n_frames: int,
                      width: int, height: int, fps: float = 30.0) -> Path:
    """Write a path file (atomically); returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = camera_path_dict(keyframes, n_frames, width, height, fps)
    atomic_write_text(path, json.dumps(data, indent=1))
    return path


def read_camera_path(path: str | Path) -> tuple[Cameras, float]:
    """``(cameras, fps)`` of a path file written by :func:`write_camera_path`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'camera path file {path} does not exist')
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path} is not JSON ({exc}); export a path from nerfreg-view') from exc
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise ValueError(f'{path} is not a nerfreg camera path (no "format": "{FORMAT}"); '
                         'export one with the path editor of nerfreg-view')
    frames = data.get('frames') or []
    if not frames:
        raise ValueError(f'{path} has no frames')
    missing = [k for k in ('R', 't', 'fx', 'fy', 'cx', 'cy') if k not in frames[0]]
    if missing:
        raise ValueError(f'{path}: frames lack {missing}')
    cams = Cameras(R=torch.tensor([f['R'] for f in frames], dtype=torch.float32),
                   t=torch.tensor([f['t'] for f in frames], dtype=torch.float32),
                   fx=[f['fx'] for f in frames], fy=[f['fy'] for f in frames],
                   cx=[f['cx'] for f in frames], cy=[f['cy'] for f in frames],
                   width=int(data['width']), height=int(data['height']),
                   names=[f'frame_{i:05d}' for i in range(len(frames))])
    return cams, float(data.get('fps', 30.0))


__all__ = ['camera_path_dict', 'interpolate_keyframes', 'read_camera_path',
           'write_camera_path']
