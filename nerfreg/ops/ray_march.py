"""Rays from cameras, ray-box intersection and marching through an occupancy grid.

An occupancy grid of ``res^3`` cells covers the unit cube of *normalised* coordinates:
``mode='aabb'``: ``u = (x - lo) / (hi - lo)``; ``mode='contract'``: the mip-NeRF 360
contraction of ``y = (x - center) / radius`` (identity inside the unit ball, ``(2 - 1/|y|)
y/|y|`` outside, so all of space lands in the ball of radius 2), then ``u = (y + 2) / 4``.
Marching steps ``dt = clamp(t * cone_angle, dt_min, dt_max)`` from ``t_near`` (plus a jitter
of ``jitter * dt`` on the first step) to ``t_far`` and keeps the intervals whose midpoint
lies in an occupied cell. In 'contract' mode with ``shell_step > 0`` a step that starts
outside the unit ball, at ``n`` radii from the centre, is at least ``shell_step * n^2`` long:
the contraction squeezes the radius by ``1/n^2`` there, so this keeps a fixed number of
samples per grid cell across the shell (sampling linear in disparity, as mip-NeRF 360's far
samples) instead of the hundreds per cell that cone steps take far out. Backends: 'cpu'
(Numba, ``volume_cpu.py``) and 'torch' (the reference and the CUDA path); both run in
float64 and produce the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .hash_encoding import set_numba_threads


@dataclass
class GridSpec:
    """Where the occupancy grid sits and how the marcher steps."""

    mode: str  # 'aabb' | 'contract'
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    center: tuple[float, float, float]
    radius: float
    res: int
    dt_min: float
    dt_max: float
    cone_angle: float
    shell_step: float = 0.0


def pixel_rays(cameras, width: int, height: int, pixels: Tensor | None = None,
               cam_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """World-space ray origins and unit directions through pixel centres.

    With ``pixels [R,2]`` (x, y integer pixel coordinates) and ``cam_index [R]``: those rays;
    otherwise all pixels of every camera, ``[N*H*W, 3]`` in row-major order.
    """
    device = cameras.R.device
    if pixels is None:
        ys, xs = torch.meshgrid(torch.arange(height, device=device),
                                torch.arange(width, device=device), indexing='ij')
        n = len(cameras)
        pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).repeat(n, 1)
        cam_index = torch.arange(n, device=device).repeat_interleave(height * width)
    px = pixels.to(cameras.R.dtype) + 0.5
    fx, fy = cameras.fx[cam_index], cameras.fy[cam_index]
    cx, cy = cameras.cx[cam_index], cameras.cy[cam_index]
    d_cam = torch.stack([(px[:, 0] - cx) / fx, (px[:, 1] - cy) / fy, torch.ones_like(fx)], 1)
    rot = cameras.R[cam_index]
    d = torch.einsum('rji,rj->ri', rot, d_cam)  # R^T d_cam
    origins = cameras.centers()[cam_index]
    return origins, d / d.norm(dim=1, keepdim=True)


def ray_aabb(origins: Tensor, dirs: Tensor, lo: Tensor, hi: Tensor,
             near: float = 0.0) -> tuple[Tensor, Tensor]:
    """Entry and exit distances of rays through the box (``t_far <= t_near``: a miss)."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    a, b = (lo - origins) * inv, (hi - origins) * inv
    t_near = torch.minimum(a, b).amax(1).clamp_min(near)
    t_far = torch.maximum(a, b).amin(1)
    return t_near, t_far


def _step(t: Tensor, spec: GridSpec, o: Tensor, d: Tensor) -> Tensor:
    """Step length at ``t`` along rays ``o + t d`` (see the module docstring)."""
    dt = (t * spec.cone_angle).clamp(spec.dt_min, spec.dt_max)
    if spec.mode != 'contract' or spec.shell_step <= 0:
        return dt
    p = o + t[:, None] * d - torch.tensor(spec.center, dtype=o.dtype, device=o.device)
    # n^2 in the same operations, in the same order, as the Numba marcher
    n2 = (p[:, 0] * p[:, 0] + p[:, 1] * p[:, 1] + p[:, 2] * p[:, 2]) * (
        1.0 / (spec.radius * spec.radius))
    return torch.where(n2 > 1, torch.maximum(dt, spec.shell_step * n2), dt)


def normalise_points(x: Tensor, spec: GridSpec) -> Tensor:
    """World points -> grid coordinates ``u`` (inside the grid when in [0,1)^3)."""
    if spec.mode == 'aabb':
        lo = torch.tensor(spec.lo, dtype=x.dtype, device=x.device)
        hi = torch.tensor(spec.hi, dtype=x.dtype, device=x.device)
        return (x - lo) / (hi - lo)
    y = (x - torch.tensor(spec.center, dtype=x.dtype, device=x.device)) / spec.radius
    n = y.norm(dim=-1, keepdim=True)
    y = torch.where(n > 1, (2.0 - 1.0 / n.clamp_min(1.0)) / n.clamp_min(1.0) * y, y)
    return (y + 2.0) * 0.25


def unnormalise_points(u: Tensor, spec: GridSpec) -> Tensor:
    """Inverse of :func:`normalise_points` (points of the contracted ball's rim go far)."""
    if spec.mode == 'aabb':
        lo = torch.tensor(spec.lo, dtype=u.dtype, device=u.device)
        hi = torch.tensor(spec.hi, dtype=u.dtype, device=u.device)
        return lo + u * (hi - lo)
    y = u * 4.0 - 2.0
    n = y.norm(dim=-1, keepdim=True).clamp(1e-9, 2.0 - 1e-4)
    y = torch.where(n > 1, y / n / (2.0 - n), y)
    return y * spec.radius + torch.tensor(spec.center, dtype=u.dtype, device=u.device)


def cell_index(u: Tensor, res: int) -> Tensor:
    """Flat cell of grid coordinates (-1 outside)."""
    inside = ((u >= 0) & (u < 1)).all(-1)
    c = (u * res).long().clamp(0, res - 1)
    flat = (c[..., 0] * res + c[..., 1]) * res + c[..., 2]
    return torch.where(inside, flat, torch.full_like(flat, -1))


def march_torch(origins: Tensor, dirs: Tensor, t_near: Tensor, t_far: Tensor,
                jitter: Tensor, grid: Tensor, spec: GridSpec,
                max_samples: int) -> tuple[Tensor, Tensor, Tensor]:
    """Reference marcher (float64, vectorised over rays, one step per iteration)."""
    o, d = origins.double(), dirs.double()
    t, far = t_near.double().clone(), t_far.double()
    t = t + jitter.double() * _step(t, spec, o, d)
    count = torch.zeros(len(t), dtype=torch.long, device=t.device)
    starts, ends, rays = [], [], []
    active = (t < far)
    while bool(active.any()):
        dt = _step(t, spec, o, d)
        cell = cell_index(normalise_points(o + (t + 0.5 * dt)[:, None] * d, spec), spec.res)
        hit = active & (cell >= 0)
        hit &= grid.reshape(-1)[cell.clamp_min(0)].bool()
        hit &= count < max_samples
        idx = torch.nonzero(hit).squeeze(1)
        starts.append(t[idx])
        ends.append((t + dt)[idx])
        rays.append(idx)
        count += hit.long()
        t = t + dt
        active = active & (t < far) & (count < max_samples)
    ray = torch.cat(rays) if rays else torch.zeros(0, dtype=torch.long, device=t.device)
    t0 = torch.cat(starts) if starts else t.new_zeros(0)
    t1 = torch.cat(ends) if ends else t.new_zeros(0)
    order = torch.sort(ray, stable=True).indices  # steps were emitted step-major
    offsets = torch.zeros(len(t_near) + 1, dtype=torch.long, device=t.device)
    offsets[1:] = torch.cumsum(count, 0)
    return offsets, t0[order].to(origins.dtype), t1[order].to(origins.dtype)


#: cells per side of the coarse blocks the Numba marcher skips at once when they are empty
COARSE = 8
_grid_cache: dict[str, tuple] = {}


def _grid_arrays(grid: Tensor, res: int, factor: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The grid as uint8 cells and its ``factor^3``-cell blocks (any cell occupied), kept
    while the grid tensor is unchanged (same storage and version)."""
    key = (grid.data_ptr(), grid._version, res, factor)
    hit = _grid_cache.get('grid')
    if hit is not None and hit[0] == key:
        return hit[1]
    cells = grid.reshape(-1).to(torch.uint8).contiguous()
    cf = factor if factor > 0 and res % factor == 0 else (1 if factor > 0 else 0)
    if cf > 1:
        c = res // cf
        coarse = cells.reshape(c, cf, c, cf, c, cf).amax(dim=(1, 3, 5)).reshape(-1)
    else:
        coarse = cells
    out = (cells.numpy(), coarse.contiguous().numpy(), cf)
    _grid_cache['grid'] = (key, out)
    return out


def march_cpu(origins: Tensor, dirs: Tensor, t_near: Tensor, t_far: Tensor, jitter: Tensor,
              grid: Tensor, spec: GridSpec, max_samples: int,
              skip_empty: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Numba marcher (same samples as :func:`march_torch`). ``skip_empty``: steps whose
    midpoint stays in an empty cell (or empty ``COARSE^3`` block) are taken without a grid
    look-up; False looks every step up (for tests)."""
    from . import volume_cpu as K
    set_numba_threads(64 * len(origins))  # hundreds of steps per ray
    args = [x.detach().double().contiguous().numpy() for x in (origins, dirs, t_near, t_far,
                                                                jitter)]
    g, coarse, cf = _grid_arrays(grid, int(spec.res), COARSE if skip_empty else 0)
    mode = 0 if spec.mode == 'aabb' else 1
    geo = (g, coarse, cf, int(spec.res), mode, np.asarray(spec.lo, np.float64),
           np.asarray(spec.hi, np.float64), np.asarray(spec.center, np.float64),
           float(spec.radius), float(spec.dt_min), float(spec.dt_max),
           float(spec.cone_angle), float(spec.shell_step) if mode == 1 else 0.0,
           int(max_samples))
    counts = np.empty(len(args[0]), np.int64)
    K.march_count(*args, *geo, counts, np.empty(0, np.float64))
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    t0 = np.empty(int(offsets[-1]), np.float64)
    t1 = np.empty_like(t0)
    K.march_fill(*args, *geo, offsets, t0, t1)
    dtype = origins.dtype
    return torch.from_numpy(offsets), torch.from_numpy(t0).to(dtype), \
        torch.from_numpy(t1).to(dtype)


def march_rays(origins: Tensor, dirs: Tensor, t_near: Tensor, t_far: Tensor, jitter: Tensor,
               grid: Tensor, spec: GridSpec, max_samples: int = 1024,
               backend: str = 'auto') -> tuple[Tensor, Tensor, Tensor]:
    """``(offsets [R+1], t0 [S], t1 [S])`` of the occupied intervals along each ray."""
    if backend == 'auto':
        backend = 'cpu' if origins.device.type == 'cpu' else 'torch'
    if backend == 'cpu':
        return march_cpu(origins, dirs, t_near, t_far, jitter, grid, spec, max_samples)
    if backend != 'torch':
        raise ValueError(f"marching backend must be 'auto', 'torch' or 'cpu', got {backend!r}")
    return march_torch(origins, dirs, t_near, t_far, jitter, grid, spec, max_samples)
