"""Sparse SfM points of a scene: positions, colours and the points each image observed.

Shared by ``ColmapDataset`` (its own model) and ``NGPDataset`` (a model triangulated from the
``transforms.json`` poses, see ``nerfreg-process triangulate``), so that both hand the
splatting init and ``SparseDepthLoss`` the same things in the same frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerfreg.cameras import Cameras
from nerfreg.cameras.conventions import qvec_to_rotmat

from .base import DatasetError
from .colmap_io import ColmapFormatError, ColmapImage, read_model


def read_sparse_model(folder: Path, what: str) -> tuple[dict, dict, Any]:
    """(cameras, images, points) of the COLMAP model in ``folder``, or a ``DatasetError``."""
    if not folder.is_dir():
        raise DatasetError(f'{what}: sparse model folder {folder} does not exist '
                           '(expected COLMAP cameras/images/points3D .bin or .txt)')
    try:
        return read_model(folder)
    except ColmapFormatError as e:
        raise DatasetError(f'{what}: {e}') from e


def sparse_points(points: Any, max_points: int | None = None
                  ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(xyz [P,3], rgb [P,3] in 0..1) of a model's points, at most ``max_points`` of them
    (a seeded random subset, in the original order); (None, None) without points."""
    if not len(points):
        return None, None
    pts = torch.from_numpy(points.xyz).float()
    rgb = torch.from_numpy(points.rgb).float() / 255.0
    if max_points is not None and len(pts) > max_points:
        keep = torch.randperm(len(pts), generator=torch.Generator().manual_seed(0))
        keep = keep[:max_points].sort().values
        pts, rgb = pts[keep], rgb[keep]
    return pts, rgb


def observed_points(entries: list, points: Any, world_transform: torch.Tensor
                    ) -> dict[str, torch.Tensor]:
    """``{image name: [K,3]}`` world positions (in the dataset's frame) of the 3D points each
    image observed (what sparse depth supervision compares against)."""
    if not len(points):
        return {}
    row = {int(i): r for r, i in enumerate(points.ids)}
    tf = world_transform.double().numpy()
    xyz = points.xyz @ tf[:3, :3].T + tf[:3, 3]
    out = {}
    for im in entries:
        rows = [row[int(i)] for i in im.point3D_ids if int(i) in row]
        out[im.name] = torch.from_numpy(xyz[rows]).float()
    return out


def check_same_poses(entries: list[ColmapImage], cameras: Cameras, source: Path,
                     fix: str, rel_tol: float = 1e-3, deg_tol: float = 0.05) -> None:
    """Raise a ``DatasetError`` unless the model images ``entries`` have the poses of
    ``cameras`` (same order): a model made in another frame would put every point in the
    wrong place. Centres are compared relative to the cameras' extent."""
    rot = torch.from_numpy(qvec_to_rotmat(np.stack([im.qvec for im in entries])))
    t = torch.from_numpy(np.stack([im.tvec for im in entries]))
    centres = -(rot.transpose(1, 2) @ t[..., None])[..., 0]
    ref_rot, ref_c = cameras.R.double(), cameras.centers().double()
    extent = float((ref_c - ref_c.mean(0)).norm(dim=-1).max()) or 1.0
    dist = (centres - ref_c).norm(dim=-1) / extent
    cos = ((rot @ ref_rot.transpose(1, 2)).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    angle = torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))
    worst = int(torch.argmax(dist / rel_tol + angle / deg_tol))
    if float(dist[worst]) > rel_tol or float(angle[worst]) > deg_tol:
        raise DatasetError(
            f'{source}: the sparse model was not made with the poses of these frames: image '
            f'{entries[worst].name} is {float(dist[worst]) * 100:.2g}% of the camera extent '
            f'and {float(angle[worst]):.2g} degrees away from its frame (another SfM run or a '
            f're-oriented scene puts the points in another frame). {fix}')
