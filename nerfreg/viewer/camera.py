"""Conversion between a viser viewport camera and nerfreg ``Cameras``.

viser reports a camera as ``wxyz`` (rotation camera-to-world, OpenCV axes: +z looks ahead,
-y is up), ``position`` (camera centre in world coordinates) and ``fov`` (vertical field
of view, radians). nerfreg stores world-to-camera ``R, t`` in the same OpenCV axes, so the
conversion is an inverse rigid transform plus a pinhole with square pixels and a centred
principal point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..cameras import Cameras, qvec_to_rotmat, rotmat_to_qvec


@dataclass(frozen=True)
class ViewPose:
    """A viewport camera: ``wxyz`` camera-to-world rotation, ``position``, vertical ``fov``
    (radians) and ``aspect`` (width / height), as viser reports it."""

    wxyz: tuple[float, float, float, float]
    position: tuple[float, float, float]
    fov: float
    aspect: float

    @classmethod
    def from_viser(cls, camera) -> ViewPose:
        """Snapshot of a ``viser.CameraHandle`` (read once, so the fields are consistent)."""
        return cls(wxyz=tuple(float(v) for v in camera.wxyz),
                   position=tuple(float(v) for v in camera.position),
                   fov=float(camera.fov), aspect=float(camera.aspect))

    def image_size(self, max_side: int) -> tuple[int, int]:
        """``(W, H)`` with this aspect ratio and the longer side ``max_side``."""
        max_side = max(int(max_side), 8)
        if self.aspect >= 1.0:
            return max_side, max(1, round(max_side / self.aspect))
        return max(1, round(max_side * self.aspect)), max_side


def pose_to_cameras(pose: ViewPose, width: int, height: int,
                    device: torch.device | str = 'cpu') -> Cameras:
    """One ``Cameras`` rendering what the viewport shows, at ``width x height`` pixels."""
    c2w = qvec_to_rotmat(np.asarray(pose.wxyz, np.float64))
    rot = c2w.T
    t = -rot @ np.asarray(pose.position, np.float64)
    focal = 0.5 * height / math.tan(0.5 * pose.fov)
    return Cameras(R=torch.as_tensor(rot[None], dtype=torch.float32, device=device),
                   t=torch.as_tensor(t[None], dtype=torch.float32, device=device),
                   fx=focal, fy=focal, cx=0.5 * width, cy=0.5 * height,
                   width=int(width), height=int(height), names=['viewer'])


def cameras_to_poses(cameras: Cameras) -> list[ViewPose]:
    """Viewport poses of every camera (vertical fov from ``fy``; principal point offsets
    and non-square pixels are not representable in the viewport and are dropped)."""
    rot = cameras.R.detach().double().cpu().numpy()
    quats = rotmat_to_qvec(np.transpose(rot, (0, 2, 1)))
    centers = cameras.centers().detach().double().cpu().numpy()
    poses = []
    for i in range(len(cameras)):
        h, w = float(cameras.height[i]), float(cameras.width[i])
        fov = 2.0 * math.atan(0.5 * h / float(cameras.fy[i]))
        poses.append(ViewPose(wxyz=tuple(quats[i].tolist()), position=tuple(centers[i].tolist()),
                              fov=fov, aspect=w / h))
    return poses


def world_up(cameras: Cameras) -> np.ndarray:
    """Mean up direction (-y axis) of the cameras in world coordinates, normalised."""
    up = -cameras.R.detach().double().cpu().numpy()[:, 1, :].mean(0)
    norm = float(np.linalg.norm(up))
    return up / norm if norm > 1e-9 else np.array([0.0, 0.0, 1.0])


__all__ = ['ViewPose', 'cameras_to_poses', 'pose_to_cameras', 'world_up']
