"""Training cameras shown as frustums with their images; clicking one moves the browser's
camera to it."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..cameras import Cameras
from .camera import ViewPose, cameras_to_poses


def thumbnail(image: torch.Tensor | np.ndarray, max_side: int = 96) -> np.ndarray:
    """uint8 RGB ``[h, w, 3]`` with the longer side at most ``max_side``."""
    import cv2
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    arr = arr[..., :3]
    h, w = arr.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1.0:
        arr = cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(arr)


def frustum_scale(cameras: Cameras) -> float:
    """A frustum size of 5% of the spread of the camera centres."""
    centers = cameras.centers().detach().double().cpu().numpy()
    spread = float(np.linalg.norm(centers - centers.mean(0), axis=1).max()) if len(centers) else 0
    return max(0.05 * spread, 1e-3)


def move_client_camera(client: Any, pose: ViewPose) -> None:
    """Put a browser's viewport at ``pose`` (orientation, position and field of view)."""
    with client.atomic():
        client.camera.wxyz = np.asarray(pose.wxyz)
        client.camera.position = np.asarray(pose.position)
        client.camera.fov = float(pose.fov)


def add_camera_frustums(server: Any, cameras: Cameras,
                        images: Sequence[torch.Tensor] | None = None,
                        max_frustums: int = 300, thumb_side: int = 96) -> list[Any]:
    """A clickable frustum per camera (at most ``max_frustums``, evenly picked), with a
    thumbnail of its image. Returns the frustum handles."""
    n = len(cameras)
    pick = np.unique(np.linspace(0, n - 1, min(n, max_frustums)).round().astype(int)) if n else []
    poses = cameras_to_poses(cameras)
    scale = frustum_scale(cameras)
    handles = []
    for i in pick:
        pose = poses[int(i)]
        image = thumbnail(images[int(i)], thumb_side) if images is not None else None
        handle = server.scene.add_camera_frustum(
            f'/training_cameras/{int(i):05d}', fov=pose.fov, aspect=pose.aspect, scale=scale,
            wxyz=np.asarray(pose.wxyz), position=np.asarray(pose.position), image=image,
            format='jpeg', color=(40, 120, 220))

        def jump(event: Any, pose: ViewPose = pose) -> None:
            move_client_camera(event.client, pose)

        handle.on_click(jump)
        handles.append(handle)
    return handles


__all__ = ['add_camera_frustums', 'frustum_scale', 'move_client_camera', 'thumbnail']
