"""Smooth camera paths derived from training cameras: orbit, forward-facing spiral, and
interpolation through the training poses (positions by Catmull-Rom, rotations by slerp).

Every path returns a ``Cameras`` (OpenCV axes, world-to-camera) with the intrinsics of the
first input camera, optionally re-targeted to another resolution. Geometry is computed in
float64 numpy and returned as float32 on the input cameras' device.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .cameras import Cameras
from .conventions import qvec_to_rotmat, rotmat_to_qvec


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy()


def look_at(eyes: np.ndarray, targets: np.ndarray, up: np.ndarray) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """World-to-camera ``(R [N,3,3], t [N,3])`` in OpenCV axes for cameras at ``eyes``
    looking at ``targets``, with the image's up (-y) as close as possible to ``up``."""
    eyes = np.atleast_2d(np.asarray(eyes, np.float64))
    targets = np.broadcast_to(np.asarray(targets, np.float64), eyes.shape)
    up = _normalize(np.broadcast_to(np.asarray(up, np.float64), eyes.shape))
    z = _normalize(targets - eyes)
    x = np.cross(z, up)
    # looking straight along `up`: pick any perpendicular right vector
    degenerate = np.linalg.norm(x, axis=-1) < 1e-8
    if degenerate.any():
        alt = np.where(np.abs(z[degenerate, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
        x[degenerate] = np.cross(z[degenerate], alt)
    x = _normalize(x)
    y = np.cross(z, x)
    rot = np.stack([x, y, z], axis=1)  # rows: camera axes in world coordinates
    t = -np.einsum('nij,nj->ni', rot, eyes)
    return rot, t


def camera_up(cameras: Cameras) -> np.ndarray:
    """Mean world-space up direction of the cameras (their -y axis), normalised."""
    return _normalize(-_np(cameras.R)[:, 1, :].mean(0))


def camera_forward(cameras: Cameras) -> np.ndarray:
    """Viewing directions (camera +z) in world coordinates ``[N,3]``."""
    return _np(cameras.R)[:, 2, :]


def focus_point(cameras: Cameras) -> np.ndarray | None:
    """The point closest (least squares) to all optical axes, or None when the axes are
    nearly parallel (forward-facing captures) or it lies behind the cameras."""
    centers, dirs = _np(cameras.centers()), _normalize(camera_forward(cameras))
    proj = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]
    a, b = proj.sum(0), np.einsum('nij,nj->i', proj, centers)
    if len(cameras) < 2 or np.linalg.cond(a) > 1e4:
        return None
    point = np.linalg.solve(a, b)
    if np.mean(np.einsum('ni,ni->n', point[None] - centers, dirs)) <= 0:
        return None
    return point


def _intrinsics(cameras: Cameras, resolution: tuple[int, int] | None) -> dict:
    """Intrinsics of camera 0, scaled to ``resolution`` (W, H) keeping the horizontal
    field of view and square pixels."""
    fx, fy = float(cameras.fx[0]), float(cameras.fy[0])
    cx, cy = float(cameras.cx[0]), float(cameras.cy[0])
    w, h = int(cameras.width[0]), int(cameras.height[0])
    if resolution is not None:
        new_w, new_h = (int(v) for v in resolution)
        if new_w <= 0 or new_h <= 0:
            raise ValueError(f'resolution must be positive, got {resolution}')
        s = new_w / w
        fx, fy, cx, cy = fx * s, fy * s, cx * new_w / w, cy * new_h / h
        w, h = new_w, new_h
    return dict(fx=fx, fy=fy, cx=cx, cy=cy, width=w, height=h)


def _make(rot: np.ndarray, t: np.ndarray, like: Cameras,
          resolution: tuple[int, int] | None) -> Cameras:
    n = rot.shape[0]
    dev = like.device
    return Cameras(R=torch.as_tensor(rot, dtype=torch.float32, device=dev),
                   t=torch.as_tensor(t, dtype=torch.float32, device=dev),
                   names=[f'frame_{i:05d}' for i in range(n)], **_intrinsics(like, resolution))


def _basis(up: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane perpendicular to ``up``; the first points along
    ``reference`` projected on that plane."""
    e1 = reference - up * np.dot(reference, up)
    if np.linalg.norm(e1) < 1e-9:
        e1 = np.cross(up, [1.0, 0, 0]) if abs(up[0]) < 0.9 else np.cross(up, [0, 1.0, 0])
    e1 = _normalize(e1)
    return e1, np.cross(up, e1)


def orbit_path(cameras: Cameras, n_frames: int = 120, center: np.ndarray | None = None,
               up: np.ndarray | None = None, radius: float | None = None,
               height: float | None = None, n_rotations: float = 1.0,
               resolution: tuple[int, int] | None = None) -> Cameras:
    """A circle around the axis through ``center`` along ``up``, looking at ``center``.

    Defaults: ``up`` the mean camera up; ``center`` the point the cameras look at
    (:func:`focus_point`), else the mean camera position; ``height`` the training cameras'
    mean height above ``center``; ``radius`` such that the orbit keeps their mean distance
    to ``center`` (the object keeps its size in frame). The first frame is at the azimuth
    of the first training camera.
    """
    centers = _np(cameras.centers())
    up = camera_up(cameras) if up is None else _normalize(np.asarray(up, np.float64))
    if center is None:
        center = focus_point(cameras)
        center = centers.mean(0) if center is None else center
    center = np.asarray(center, np.float64).reshape(3)
    rel = centers - center
    heights = rel @ up
    horizontal = rel - heights[:, None] * up
    height = float(heights.mean()) if height is None else float(height)
    if radius is None:  # keep the training cameras' mean distance to the centre
        distance = float(np.linalg.norm(rel, axis=1).mean()) or 1.0
        radius = float(np.sqrt(max(distance ** 2 - height ** 2, (0.1 * distance) ** 2)))
    e1, e2 = _basis(up, horizontal[0])
    angles = 2 * np.pi * n_rotations * np.arange(n_frames) / max(n_frames, 1)
    eyes = (center + up * height + radius * (np.cos(angles)[:, None] * e1
                                             + np.sin(angles)[:, None] * e2))
    rot, t = look_at(eyes, center, up)
    return _make(rot, t, cameras, resolution)


def spiral_path(cameras: Cameras, n_frames: int = 120, n_rotations: float = 2.0,
                radius_scale: float = 1.0, focus_distance: float | None = None,
                points: np.ndarray | torch.Tensor | None = None, z_rate: float = 0.5,
                resolution: tuple[int, int] | None = None) -> Cameras:
    """A forward-facing spiral (LLFF style) around the mean pose, looking at a focus point.

    The spiral radii are the 90th percentiles of the camera offsets in the mean camera's
    frame (x, y, z) times ``radius_scale``. ``focus_distance`` defaults to a near/far blend
    of the depths of ``points`` in front of the mean camera, else the distance to the
    cameras' :func:`focus_point`, else the spread of the cameras.
    """
    centers = _np(cameras.centers())
    mean_c = centers.mean(0)
    up = camera_up(cameras)
    forward = _normalize(camera_forward(cameras).mean(0))
    rot_avg, _ = look_at(mean_c[None], (mean_c + forward)[None], up)
    axes = rot_avg[0]  # rows: right, down, forward
    offsets = (centers - mean_c) @ axes.T
    if focus_distance is None:
        focus_distance = _focus_distance(mean_c, axes[2], points, cameras, offsets)
    radii = np.percentile(np.abs(offsets), 90, axis=0) * radius_scale
    if not np.any(radii > 1e-9):
        radii = np.array([0.1, 0.1, 0.05]) * focus_distance
    theta = 2 * np.pi * n_rotations * np.arange(n_frames) / max(n_frames, 1)
    local = np.stack([np.cos(theta) * radii[0], -np.sin(theta) * radii[1],
                      -np.sin(theta * z_rate) * radii[2]], axis=1)
    eyes = mean_c + local @ axes
    target = mean_c + axes[2] * focus_distance
    rot, t = look_at(eyes, target, up)
    return _make(rot, t, cameras, resolution)


def _focus_distance(mean_c: np.ndarray, forward: np.ndarray, points, cameras: Cameras,
                    offsets: np.ndarray) -> float:
    if points is not None and len(points):
        pts = _np(points) if isinstance(points, torch.Tensor) else np.asarray(points, float)
        depth = (pts - mean_c) @ forward
        depth = depth[depth > 0]
        if depth.size:
            near, far = np.percentile(depth, 5), np.percentile(depth, 95)
            w = 0.75  # LLFF's blend of near and far disparities
            return float(1.0 / ((1 - w) / near + w / far))
    point = focus_point(cameras)
    if point is not None and float((point - mean_c) @ forward) > 0:
        return float((point - mean_c) @ forward)
    spread = float(np.linalg.norm(offsets, axis=1).max()) if len(offsets) else 0.0
    return max(spread * 3.0, 1.0)


def quat_slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions ``[4]`` (shortest arc) at ``t``."""
    q0, q1 = _normalize(np.asarray(q0, np.float64)), _normalize(np.asarray(q1, np.float64))
    t = np.asarray(t, np.float64)[..., None]
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly identical: linear is exact enough and stable
        return _normalize(q0 + t * (q1 - q0))
    omega = np.arccos(np.clip(dot, -1.0, 1.0))
    return (np.sin((1 - t) * omega) * q0 + np.sin(t * omega) * q1) / np.sin(omega)


def _nearest_neighbour_order(centers: np.ndarray) -> list[int]:
    """A greedy chain through the camera positions starting at camera 0."""
    order, left = [0], set(range(1, len(centers)))
    while left:
        last = centers[order[-1]]
        nxt = min(left, key=lambda i: float(np.sum((centers[i] - last) ** 2)))
        order.append(nxt)
        left.remove(nxt)
    return order


def _catmull_rom(p: np.ndarray, seg: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Uniform Catmull-Rom through the points ``p [M,3]`` on segment ``seg`` at ``u``."""
    m = len(p)
    i0, i1 = np.clip(seg - 1, 0, m - 1), seg
    i2, i3 = np.clip(seg + 1, 0, m - 1), np.clip(seg + 2, 0, m - 1)
    p0, p1, p2, p3 = p[i0], p[i1], p[i2], p[i3]
    u = u[:, None]
    return 0.5 * ((2 * p1) + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u ** 2
                  + (-p0 + 3 * p1 - 3 * p2 + p3) * u ** 3)


def interpolate_path(cameras: Cameras, n_frames: int = 120, order: str = 'nearest',
                     max_keyframes: int | None = None,
                     resolution: tuple[int, int] | None = None) -> Cameras:
    """Through the training poses: positions on a Catmull-Rom spline (through every
    keyframe), rotations by slerp, frames spaced by distance travelled.

    ``order='nearest'`` chains the cameras greedily by proximity (captures are often
    unordered), ``'given'`` keeps their order. At most ``max_keyframes`` poses are used
    (default: one per ~10 frames), evenly picked along the chain.
    """
    if order not in ('nearest', 'given'):
        raise ValueError(f"order must be 'nearest' or 'given', got {order!r}")
    centers = _np(cameras.centers())
    idx = _nearest_neighbour_order(centers) if order == 'nearest' else list(range(len(centers)))
    limit = max_keyframes or max(2, n_frames // 10)
    if len(idx) > limit:
        idx = [idx[int(round(i))] for i in np.linspace(0, len(idx) - 1, limit)]
    keys = centers[idx]
    quats = rotmat_to_qvec(_np(cameras.R)[idx])
    if len(idx) == 1:
        rot = np.repeat(qvec_to_rotmat(quats[:1]), n_frames, 0)
        return _make(rot, -np.einsum('nij,nj->ni', rot, np.repeat(keys, n_frames, 0)),
                     cameras, resolution)
    for i in range(1, len(quats)):  # consistent hemisphere along the chain
        if np.dot(quats[i - 1], quats[i]) < 0:
            quats[i] = -quats[i]
    lengths = np.linalg.norm(np.diff(keys, axis=0), axis=1)
    angles = 2 * np.arccos(np.clip(np.abs(np.sum(quats[1:] * quats[:-1], 1)), 0, 1))
    scale = float(np.mean(np.linalg.norm(keys - keys.mean(0), axis=1))) or 1.0
    lengths = lengths + 0.1 * scale * angles + 1e-9  # pure rotations still take time
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    s = np.linspace(0.0, cum[-1], n_frames)
    seg = np.clip(np.searchsorted(cum, s, side='right') - 1, 0, len(keys) - 2)
    u = np.clip((s - cum[seg]) / lengths[seg], 0.0, 1.0)
    eyes = _catmull_rom(keys, seg, u)
    q = np.stack([quat_slerp(quats[a], quats[a + 1], b) for a, b in zip(seg, u)])
    rot = qvec_to_rotmat(q)
    t = -np.einsum('nij,nj->ni', rot, eyes)
    return _make(rot, t, cameras, resolution)


PATHS: dict[str, Callable[..., Cameras]] = {
    'orbit': orbit_path, 'spiral': spiral_path, 'interpolate': interpolate_path}


def make_camera_path(kind: str, cameras: Cameras, n_frames: int = 120, **kwargs) -> Cameras:
    """``orbit`` | ``spiral`` | ``interpolate`` path of ``n_frames`` from ``cameras``."""
    if kind not in PATHS:
        raise ValueError(f'unknown camera path {kind!r}; choose one of {sorted(PATHS)}')
    if n_frames < 1:
        raise ValueError(f'n_frames must be >= 1, got {n_frames}')
    return PATHS[kind](cameras, n_frames=n_frames, **kwargs)


__all__ = ['PATHS', 'camera_forward', 'camera_up', 'focus_point', 'interpolate_path',
           'look_at', 'make_camera_path', 'orbit_path', 'quat_slerp', 'spiral_path']
