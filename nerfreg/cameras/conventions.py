"""Rotation and axis conventions shared by the scene readers.

nerfreg stores cameras as world-to-camera in OpenCV axes (x right, y down, z forward),
the convention of COLMAP and gsplat. Blender / instant-ngp / nerfstudio files store
camera-to-world in OpenGL axes (x right, y up, z backward): the two differ by a flip of the
camera's y and z axes. COLMAP quaternions are scalar-first (w, x, y, z).
"""

from __future__ import annotations

import numpy as np
import torch

#: Right-multiplying an OpenGL camera-to-world by this flips the camera's y and z axes.
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def qvec_to_rotmat(qvec: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] from unit quaternions [..., 4] in (w, x, y, z) order.

    Written out rather than using scipy (not a dependency) or pycolmap (optional, and its
    4.x ``Rotation3d.quat`` is xyzw, an easy source of bugs).
    """
    q = np.asarray(qvec, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rot = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1)
    return rot.reshape(q.shape[:-1] + (3, 3))


def rotmat_to_qvec(rot: np.ndarray) -> np.ndarray:
    """Unit quaternions [..., 4] (w, x, y, z) with w >= 0 from rotation matrices [..., 3, 3].

    Uses the symmetric-matrix eigenvector method (robust for every rotation, no branches).
    """
    r = np.asarray(rot, dtype=np.float64)
    batch = r.shape[:-2]
    r = r.reshape(-1, 3, 3)
    # r_ab below is R[b, a] (column-major naming of Bar-Itzhack, J. Guid. Control Dyn. 2000)
    rxx, ryx, rzx = r[:, 0, 0], r[:, 0, 1], r[:, 0, 2]
    rxy, ryy, rzy = r[:, 1, 0], r[:, 1, 1], r[:, 1, 2]
    rxz, ryz, rzz = r[:, 2, 0], r[:, 2, 1], r[:, 2, 2]
    k = np.stack([
        np.stack([rxx - ryy - rzz, ryx + rxy, rzx + rxz, ryz - rzy], -1),
        np.stack([ryx + rxy, ryy - rxx - rzz, rzy + ryz, rzx - rxz], -1),
        np.stack([rzx + rxz, rzy + ryz, rzz - rxx - ryy, rxy - ryx], -1),
        np.stack([ryz - rzy, rzx - rxz, rxy - ryx, rxx + ryy + rzz], -1),
    ], -2) / 3.0
    _, vecs = np.linalg.eigh(k)
    q = vecs[:, [3, 0, 1, 2], -1]  # eigenvector of the largest eigenvalue, as (w, x, y, z)
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.reshape(batch + (4,))


def opengl_c2w_to_opencv_w2c(c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenGL camera-to-world [N,4,4] / [N,3,4] -> OpenCV world-to-camera (R [N,3,3], t [N,3])."""
    rot_c2w = c2w[:, :3, :3] * c2w.new_tensor([1.0, -1.0, -1.0])  # flip camera y and z columns
    rot = rot_c2w.transpose(1, 2)
    t = -(rot @ c2w[:, :3, 3:4])[..., 0]
    return rot, t


def opencv_w2c_to_opengl_c2w(rot: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """OpenCV world-to-camera (R [N,3,3], t [N,3]) -> OpenGL camera-to-world [N,4,4]."""
    c2w = torch.zeros(rot.shape[0], 4, 4, dtype=rot.dtype, device=rot.device)
    rot_c2w = rot.transpose(1, 2)
    c2w[:, :3, :3] = rot_c2w * rot.new_tensor([1.0, -1.0, -1.0])
    c2w[:, :3, 3] = -(rot_c2w @ t[..., None])[..., 0]
    c2w[:, 3, 3] = 1.0
    return c2w
