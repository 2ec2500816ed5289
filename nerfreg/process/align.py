"""Comparing recovered camera poses with a reference after a similarity alignment.

A reconstruction is only defined up to a similarity (scale, rotation, translation), so the
camera centres are first aligned to the reference by the least-squares similarity of
Umeyama (IEEE PAMI 1991); then centre errors are reported relative to the reference's
extent (diagonal of the bounding box of its camera centres) and rotation errors in degrees.
A second alignment (``compare_poses(..., orientation_weight=w)``) fits the rotation to the
camera orientations as well as to the centres, so that a reconstruction whose centres and
orientations disagree slightly with the reference is not charged twice for one global
rotation; both are reported, labelled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfreg.cameras.conventions import opengl_c2w_to_opencv_w2c, qvec_to_rotmat
from nerfreg.datasets.blender import frame_c2w, read_json
from nerfreg.datasets.colmap_io import read_model

#: name -> (world-to-camera rotation [3,3], camera centre [3]), OpenCV axes.
Poses = dict[str, tuple[np.ndarray, np.ndarray]]


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising ``sum ||dst_i - (s R src_i + t)||^2`` ([N,3] each)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or len(src) < 3:
        raise ValueError(f'umeyama needs two [N,3] arrays with N >= 3, got {src.shape} and '
                         f'{dst.shape}')
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # keep a proper rotation
        fix[-1, -1] = -1
    rot = u @ fix @ vt
    var_s = (xs ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ fix) / var_s)
    return scale, rot, mu_d - scale * rot @ mu_s


def pose_similarity(c_src: np.ndarray, r_src: np.ndarray, c_dst: np.ndarray,
                    r_dst: np.ndarray, orientation_weight: float = 1.0
                    ) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) mapping source poses onto destination poses, with R fitted to
    the camera centres (normalised to unit RMS spread) and, with weight
    ``orientation_weight`` per camera, to the camera-to-world rotations; s and t then fit
    the centres given R. ``c_*``: [N,3] centres; ``r_*``: [N,3,3] world-to-camera rotations.
    Weight 0 gives Umeyama's centre-only rotation."""
    xs, xd = c_src - c_src.mean(0), c_dst - c_dst.mean(0)
    ns, nd = np.sqrt((xs ** 2).sum(1).mean()), np.sqrt((xd ** 2).sum(1).mean())
    # camera-to-world rotations satisfy C2W_dst ~= R @ C2W_src, i.e. R ~= r_dst^T r_src
    cov = (xd / nd).T @ (xs / ns) / len(xs)
    cov = cov + orientation_weight * np.einsum('nji,njk->ik', r_dst, r_src) / (3 * len(xs))
    u, _, vt = np.linalg.svd(cov)
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ fix @ vt
    a = xs @ rot.T
    scale = float((a * xd).sum() / (a * a).sum())
    return scale, rot, c_dst.mean(0) - scale * rot @ c_src.mean(0)


def rotation_angle_deg(rel: np.ndarray) -> np.ndarray:
    """Angle in degrees of rotation matrices [..., 3, 3]."""
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def compare_poses(est: Poses, ref: Poses, orientation_weight: float = 0.0) -> dict[str, float]:
    """Align ``est`` to ``ref`` on their common names; return error figures.

    ``orientation_weight`` 0 (default): Umeyama on the camera centres alone; > 0: the
    rotation is fitted to centres and orientations together (:func:`pose_similarity`)."""
    names = sorted(set(est) & set(ref))
    if len(names) < 3:
        raise ValueError(f'only {len(names)} images are in both pose sets; need 3')
    c_est = np.stack([est[n][1] for n in names])
    c_ref = np.stack([ref[n][1] for n in names])
    r_est = np.stack([est[n][0] for n in names])
    r_ref = np.stack([ref[n][0] for n in names])
    if orientation_weight > 0:
        s, rot, t = pose_similarity(c_est, r_est, c_ref, r_ref, orientation_weight)
    else:
        s, rot, t = umeyama(c_est, c_ref)
    c_aligned = c_est @ (s * rot).T + t
    err = np.linalg.norm(c_aligned - c_ref, axis=1)
    extent = float(np.linalg.norm(c_ref.max(0) - c_ref.min(0)))
    # world-to-camera rotation in the reference frame: R_est @ rot^T
    ang = rotation_angle_deg(r_est @ rot.T @ np.transpose(r_ref, (0, 2, 1)))
    return dict(num_common=len(names), scene_extent=extent,
                centre_rms=float(np.sqrt((err ** 2).mean())),
                centre_rms_rel=float(np.sqrt((err ** 2).mean()) / extent),
                centre_max_rel=float(err.max() / extent),
                rotation_median_deg=float(np.median(ang)),
                rotation_max_deg=float(ang.max()), scale=s)


def colmap_poses(model_dir: Path | str) -> Poses:
    """Poses of the registered images of a COLMAP model (binary or text)."""
    _, images, _ = read_model(Path(model_dir))
    out = {}
    for im in images.values():
        rot = qvec_to_rotmat(im.qvec)
        out[im.name] = (rot, -rot.T @ im.tvec)
    return out


def ngp_poses(transforms: Path | str) -> Poses:
    """Poses of an instant-ngp / nerfstudio ``transforms.json`` (OpenGL camera-to-world),
    keyed by image file name, converted to OpenCV world-to-camera."""
    import torch

    path = Path(transforms)
    meta = read_json(path)
    out = {}
    for i, frame in enumerate(meta['frames']):
        c2w = torch.from_numpy(frame_c2w(frame, path, i))[None]
        rot, t = opengl_c2w_to_opencv_w2c(c2w)
        rot, t = rot[0].numpy(), t[0].numpy()
        out[Path(str(frame['file_path'])).name] = (rot, -rot.T @ t)
    return out
