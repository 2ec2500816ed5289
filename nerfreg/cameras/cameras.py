"""``Cameras``: a batch of pinhole cameras in OpenCV axes, the one camera type of nerfreg."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Union

import numpy as np
import torch

from .conventions import (
    opencv_w2c_to_opengl_c2w,
    opengl_c2w_to_opencv_w2c,
    qvec_to_rotmat,
    rotmat_to_qvec,
)

Index = Union[int, slice, Sequence[int], torch.Tensor, np.ndarray]
_Num = Union[float, Sequence[float], np.ndarray, torch.Tensor]


def _vec(x: _Num, n: int, dtype: torch.dtype) -> torch.Tensor:
    """Broadcast a scalar or sequence to a 1-D tensor of length ``n``."""
    v = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return v.to(dtype).reshape(-1).expand(n).clone() if v.numel() == 1 else v.to(dtype).reshape(n)


@dataclass
class Cameras:
    """N pinhole cameras, world-to-camera in OpenCV axes (x right, y down, z forward).

    A world point X maps to camera coordinates ``R @ X + t`` and to pixel
    ``(fx * x / z + cx, fy * y / z + cy)``, where pixel (i, j) has its centre at
    (i + 0.5, j + 0.5) (the COLMAP / gsplat convention; OpenCV functions put it at (i, j)).
    ``dist`` holds OpenCV-order distortion (k1 k2 p1 p2 [k3 ...]) or None; the datasets
    undistort their images, so their cameras have ``dist=None``.
    """

    R: torch.Tensor
    t: torch.Tensor
    fx: torch.Tensor
    fy: torch.Tensor
    cx: torch.Tensor
    cy: torch.Tensor
    width: torch.Tensor
    height: torch.Tensor
    dist: torch.Tensor | None = None
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.R.shape[0]
        if self.R.shape != (n, 3, 3) or self.t.shape != (n, 3):
            raise ValueError(f'Cameras expects R [N,3,3] and t [N,3], got {tuple(self.R.shape)} '
                             f'and {tuple(self.t.shape)}')
        for name in ('fx', 'fy', 'cx', 'cy'):
            setattr(self, name, _vec(getattr(self, name), n, self.R.dtype).to(self.R.device))
        for name in ('width', 'height'):
            setattr(self, name, _vec(getattr(self, name), n, torch.long).to(self.R.device))
        if self.dist is not None:
            self.dist = torch.as_tensor(self.dist, dtype=self.R.dtype, device=self.R.device)
            self.dist = self.dist.reshape(n, -1)
        if not self.names:
            self.names = [f'{i:05d}' for i in range(n)]
        if len(self.names) != n:
            raise ValueError(f'Cameras got {len(self.names)} names for {n} cameras')

    # ---- basic container protocol -------------------------------------------------------
    def __len__(self) -> int:
        return self.R.shape[0]

    @property
    def device(self) -> torch.device:
        return self.R.device

    def __getitem__(self, idx: Index) -> Cameras:
        """Subset by int, slice, index list / tensor; always returns a ``Cameras``."""
        if isinstance(idx, int):
            idx = [idx % len(self)]
        if isinstance(idx, slice):
            sel = list(range(len(self)))[idx]
        else:
            sel = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx)
            if sel.dtype == torch.bool:  # boolean mask
                sel = sel.reshape(-1).nonzero()[:, 0]
            sel = sel.reshape(-1).long().tolist()
        ti = torch.as_tensor(sel, dtype=torch.long, device=self.device)
        return Cameras(
            R=self.R[ti], t=self.t[ti], fx=self.fx[ti], fy=self.fy[ti], cx=self.cx[ti],
            cy=self.cy[ti], width=self.width[ti], height=self.height[ti],
            dist=None if self.dist is None else self.dist[ti],
            names=[self.names[i] for i in sel])

    def to(self, device: Union[str, torch.device]) -> Cameras:
        """Copy with every tensor on ``device``."""
        return Cameras(
            R=self.R.to(device), t=self.t.to(device), fx=self.fx.to(device),
            fy=self.fy.to(device), cx=self.cx.to(device), cy=self.cy.to(device),
            width=self.width.to(device), height=self.height.to(device),
            dist=None if self.dist is None else self.dist.to(device), names=list(self.names))

    @staticmethod
    def cat(cams: Sequence[Cameras]) -> Cameras:
        """Concatenate camera batches (the distortion is dropped unless all have the same k)."""
        dists = [c.dist for c in cams]
        dist = None
        if all(d is not None for d in dists) and len({d.shape[1] for d in dists}) == 1:
            dist = torch.cat(dists)
        return Cameras(
            R=torch.cat([c.R for c in cams]), t=torch.cat([c.t for c in cams]),
            fx=torch.cat([c.fx for c in cams]), fy=torch.cat([c.fy for c in cams]),
            cx=torch.cat([c.cx for c in cams]), cy=torch.cat([c.cy for c in cams]),
            width=torch.cat([c.width for c in cams]), height=torch.cat([c.height for c in cams]),
            dist=dist, names=[n for c in cams for n in c.names])

    # ---- matrices -------------------------------------------------------------------------
    def viewmats(self) -> torch.Tensor:
        """World-to-camera matrices [N,4,4]."""
        vm = torch.zeros(len(self), 4, 4, dtype=self.R.dtype, device=self.device)
        vm[:, :3, :3] = self.R
        vm[:, :3, 3] = self.t
        vm[:, 3, 3] = 1.0
        return vm

    def Ks(self) -> torch.Tensor:  # noqa: N802 (contract name)
        """Intrinsic matrices [N,3,3]."""
        k = torch.zeros(len(self), 3, 3, dtype=self.R.dtype, device=self.device)
        k[:, 0, 0], k[:, 1, 1] = self.fx, self.fy
        k[:, 0, 2], k[:, 1, 2] = self.cx, self.cy
        k[:, 2, 2] = 1.0
        return k

    def centers(self) -> torch.Tensor:
        """Camera positions in world coordinates [N,3] (``-R^T t``)."""
        return -(self.R.transpose(1, 2) @ self.t[..., None])[..., 0]

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pinhole projection (no distortion) of world points [P,3] -> (uv [N,P,2], depth [N,P])."""
        cam = torch.einsum('nij,pj->npi', self.R, points.to(self.R)) + self.t[:, None]
        z = cam[..., 2]
        u = self.fx[:, None] * cam[..., 0] / z + self.cx[:, None]
        v = self.fy[:, None] * cam[..., 1] / z + self.cy[:, None]
        return torch.stack([u, v], -1), z

    # ---- resizing -------------------------------------------------------------------------
    def resized(self, width: _Num, height: _Num) -> Cameras:
        """Cameras for the same views rendered at another image size (per-axis scale).

        With pixel centres at (i + 0.5, j + 0.5), a resize by s maps continuous coordinate
        u to s * u, so fx, cx scale by w'/w and fy, cy by h'/h (this is what
        ``cv2.resize(..., INTER_AREA)`` does to the image content).
        """
        w_new = _vec(width, len(self), torch.long).to(self.device)
        h_new = _vec(height, len(self), torch.long).to(self.device)
        sx = w_new.to(self.R.dtype) / self.width.to(self.R.dtype)
        sy = h_new.to(self.R.dtype) / self.height.to(self.R.dtype)
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                       width=w_new, height=h_new, names=list(self.names))

    def scaled(self, factor: float) -> Cameras:
        """Downscale by ``factor`` (int or float): new size ``round(w / factor)``."""
        if factor <= 0:
            raise ValueError(f'downscale factor must be > 0, got {factor}')
        w = torch.round(self.width.double() / factor).long().clamp(min=1)
        h = torch.round(self.height.double() / factor).long().clamp(min=1)
        return self.resized(w, h)

    # ---- conventions ----------------------------------------------------------------------
    @classmethod
    def from_opengl_c2w(cls, c2w: torch.Tensor | np.ndarray, fx: _Num, fy: _Num, cx: _Num,
                        cy: _Num, width: _Num, height: _Num,
                        dist: torch.Tensor | np.ndarray | None = None,
                        names: Sequence[str] | None = None) -> Cameras:
        """From OpenGL camera-to-world matrices [N,4,4] / [N,3,4] (Blender, instant-ngp)."""
        c2w = torch.as_tensor(np.asarray(c2w) if not isinstance(c2w, torch.Tensor) else c2w)
        rot, t = opengl_c2w_to_opencv_w2c(c2w.double())
        return cls(R=rot.float(), t=t.float(), fx=fx, fy=fy, cx=cx, cy=cy, width=width,
                   height=height, dist=dist, names=list(names or []))

    def to_opengl_c2w(self) -> torch.Tensor:
        """OpenGL camera-to-world matrices [N,4,4] (inverse of ``from_opengl_c2w``)."""
        return opencv_w2c_to_opengl_c2w(self.R.double(), self.t.double()).to(self.R.dtype)

    @classmethod
    def from_colmap(cls, qvec_wxyz: torch.Tensor | np.ndarray, tvec: torch.Tensor | np.ndarray,
                    fx: _Num, fy: _Num, cx: _Num, cy: _Num, width: _Num, height: _Num,
                    dist: torch.Tensor | np.ndarray | None = None,
                    names: Sequence[str] | None = None) -> Cameras:
        """From COLMAP world-to-camera poses: quaternions [N,4] (w, x, y, z) and t [N,3]."""
        q = np.asarray(qvec_wxyz.cpu() if isinstance(qvec_wxyz, torch.Tensor) else qvec_wxyz)
        tv = np.asarray(tvec.cpu() if isinstance(tvec, torch.Tensor) else tvec, np.float64)
        rot = torch.from_numpy(qvec_to_rotmat(q.reshape(-1, 4))).float()
        return cls(R=rot, t=torch.from_numpy(tv.reshape(-1, 3)).float(), fx=fx, fy=fy, cx=cx,
                   cy=cy, width=width, height=height, dist=dist, names=list(names or []))

    def to_colmap(self) -> tuple[np.ndarray, np.ndarray]:
        """COLMAP poses (qvec [N,4] wxyz with w >= 0, tvec [N,3]) as float64 arrays."""
        rot = self.R.detach().double().cpu().numpy()
        return rotmat_to_qvec(rot), self.t.detach().double().cpu().numpy()

    def __repr__(self) -> str:
        sizes = sorted({(int(w), int(h)) for w, h in zip(self.width, self.height)})
        return (f'Cameras(n={len(self)}, sizes={sizes[:3]}{"..." if len(sizes) > 3 else ""}, '
                f'device={self.device}, dist={"None" if self.dist is None else "yes"})')
