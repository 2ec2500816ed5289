"""Initialisation helpers for Gaussian models (no external dependencies)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..ops.sh import SH_C0


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """Degree-0 SH coefficient reproducing colour ``rgb`` (inverse of ``SH_C0*c + 0.5``)."""
    return (rgb - 0.5) / SH_C0


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Squared distances by differences: cdist's default matrix-product form loses the
    small distances to cancellation, and its BLAS rounding can vary between processes."""
    return torch.cdist(a, b, compute_mode='donot_use_mm_for_euclid_dist').pow(2)


def _knn_exact(points: Tensor, k: int, chunk_elems: int = 1 << 24) -> Tensor:
    """Squared distances ``[P, k]`` to the k nearest other points, by chunked cdist."""
    p = points.shape[0]
    rows = max(1, chunk_elems // max(p, 1))
    out = []
    idx = torch.arange(p, device=points.device)
    for start in range(0, p, rows):
        d2 = _sq_dists(points[start:start + rows], points)
        d2[torch.arange(d2.shape[0], device=points.device), idx[start:start + rows]] = float('inf')
        out.append(d2.topk(min(k, p - 1), dim=1, largest=False).values)
    return torch.cat(out)


def _morton_codes(points: Tensor, shift: float = 0.0, bits: int = 21) -> Tensor:
    """Z-order (Morton) codes of points quantised to ``2**bits`` cells per axis, after
    shifting them by ``shift`` times the bounding cube size (a different curve)."""
    lo = points.min(0).values
    span = (points.max(0).values - lo).max().clamp_min(1e-12) * (1.0 + shift)
    q = ((points - lo + shift * span / (1.0 + shift)) / span * (2 ** bits - 1)).long()
    code = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
    for b in range(bits):
        for axis in range(3):
            code |= ((q[:, axis] >> b) & 1) << (3 * b + axis)
    return code


def _knn_morton_pass(points: Tensor, k: int, shift: float, block: int = 512,
                     chunk_blocks: int = 16) -> tuple[Tensor, Tensor]:
    """Squared distances and indices ``[P, k]`` of the nearest points among the same and
    the two adjacent blocks of ``block`` points along one Morton curve."""
    p = points.shape[0]
    order = torch.argsort(_morton_codes(points, shift))
    nb = (p + block - 1) // block
    pad = nb * block - p
    ids_sorted = torch.cat([order, order.new_full((pad,), -1)])
    padded = torch.cat([points[order], points.new_zeros((pad, 3))])
    blocks = padded.view(nb, block, 3)
    bids = ids_sorted.view(nb, block)
    out_d = points.new_empty(nb, block, k)
    out_i = order.new_empty(nb, block, k)
    for b0 in range(0, nb, chunk_blocks):
        ids = torch.arange(b0, min(nb, b0 + chunk_blocks), device=points.device)
        nbr = torch.stack([(ids - 1).clamp_min(0), ids, (ids + 1).clamp_max(nb - 1)], 1)
        cand = blocks[nbr].reshape(len(ids), 3 * block, 3)
        cand_ids = bids[nbr].reshape(len(ids), 3 * block).clone()
        # Clamped neighbours at the ends repeat the block itself: drop them.
        cand_ids[:, :block].masked_fill_((nbr[:, 0] == nbr[:, 1])[:, None], -1)
        cand_ids[:, 2 * block:].masked_fill_((nbr[:, 2] == nbr[:, 1])[:, None], -1)
        d2 = _sq_dists(blocks[ids], cand)
        bad = (cand_ids[:, None, :] < 0) | (cand_ids[:, None, :] == bids[ids][:, :, None])
        d2 = d2.masked_fill(bad, float('inf'))
        vals, pos = d2.topk(k, dim=-1, largest=False)
        out_d[ids] = vals
        out_i[ids] = torch.gather(cand_ids[:, None, :].expand(-1, block, -1), 2, pos)
    dist = points.new_empty(p, k)
    idx = order.new_empty(p, k)
    dist[order] = out_d.view(-1, k)[:p]
    idx[order] = out_i.view(-1, k)[:p]
    return dist, idx


def _knn_morton(points: Tensor, k: int, shifts: tuple[float, ...] = (0.0, 0.37)) -> Tensor:
    """Approximate squared k-NN distances: the best of block searches along Morton curves
    of differently shifted grids (a neighbour missed at a block border of one curve is
    usually found by the other); duplicates across passes are counted once."""
    dists, idxs = zip(*(_knn_morton_pass(points, k, s) for s in shifts))
    d = torch.cat(dists, 1)
    i = torch.cat(idxs, 1)
    d, order = d.sort(dim=1)
    i = torch.gather(i, 1, order)
    m = i.shape[1]
    earlier = torch.ones(m, m, dtype=torch.bool, device=d.device).tril(-1)
    dup = ((i[:, :, None] == i[:, None, :]) & earlier).any(-1)
    d = d.masked_fill(dup, float('inf'))
    return d.topk(k, dim=1, largest=False).values


@torch.no_grad()
def knn_mean_sq_dist(points: Tensor, k: int = 3, exact_max: int = 8192) -> Tensor:
    """Mean squared distance ``[P]`` of each point to its ``k`` nearest neighbours.

    Exact (chunked ``cdist``) up to ``exact_max`` points; above, Morton-order block
    searches on two shifted grids (approximate, like 3DGS's simple-knn) keep time and
    memory linear in P.
    """
    points = points.float()
    p = points.shape[0]
    if p <= 1:
        return torch.ones(p, device=points.device)
    k = min(k, p - 1)
    d2 = _knn_exact(points, k) if p <= exact_max else _knn_morton(points, k)
    d2 = torch.where(torch.isfinite(d2), d2, torch.nan)
    return d2.nanmean(dim=1).nan_to_num(1.0)


# ---------------------------------------------------------------------- camera-aware init
def _camera_coords(points: Tensor, cameras: Any) -> tuple[Tensor, ...]:
    """Camera-space ``x, y, z [C, P]`` of ``points [P, 3]`` and ``fx, fy, cx, cy, w, h [C, 1]``."""
    dev, dt = points.device, points.dtype
    rot = cameras.R.to(dev, dt)
    cam = torch.einsum('cij,pj->cpi', rot, points) + cameras.t.to(dev, dt)[:, None, :]
    intr = [getattr(cameras, k).to(dev, dt)[:, None]
            for k in ('fx', 'fy', 'cx', 'cy', 'width', 'height')]
    return (*cam.unbind(-1), *intr)


@torch.no_grad()
def count_views(points: Tensor, cameras: Any, near: float = 0.01,
                chunk_elems: int = 1 << 23) -> Tensor:
    """Number of ``cameras`` (a :class:`~nerfreg.cameras.Cameras`) in front of which each
    point ``[P, 3]`` projects inside the image: ``[P]`` long."""
    points = points.float()
    out = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
    step = max(1, chunk_elems // max(len(cameras), 1))
    for s in range(0, points.shape[0], step):
        x, y, z, fx, fy, cx, cy, w, h = _camera_coords(points[s:s + step], cameras)
        zs = z.clamp_min(near)
        u, v = fx * x / zs + cx, fy * y / zs + cy
        seen = (z > near) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        out[s:s + step] = seen.sum(0)
    return out


@torch.no_grad()
def footprint_max_scale(points: Tensor, cameras: Any, max_radius: float, eps2d: float = 0.3,
                        near: float = 0.01, chunk_elems: int = 1 << 23) -> Tensor:
    """Largest isotropic scale ``[P]`` (world units) at which a Gaussian at each point has a
    screen radius of at most ``max_radius`` pixels in every camera it is in front of.

    The radius is the rasterizer's: ``3 sqrt(largest eigenvalue of J J^T s^2 + eps2d)`` with
    the pinhole Jacobian ``J`` at the clamped view direction (``projection.project_gaussians``).
    Points in front of no camera get ``inf``.
    """
    if max_radius <= 3.0 * eps2d ** 0.5:
        raise ValueError(f'init max_radius={max_radius} px is below the {3 * eps2d ** 0.5:.2f} '
                         f'px that the eps2d={eps2d} low-pass filter alone gives: use a larger '
                         'value (e.g. 8)')
    points = points.float()
    # allowed s^2 * lambda_max(J J^T), 0.1% under the limit so float32 rounding in the
    # projection cannot push the radius over max_radius
    lim = ((max_radius / 3.0) ** 2 - eps2d) * 0.999
    out = torch.full((points.shape[0],), float('inf'), device=points.device)
    step = max(1, chunk_elems // max(len(cameras), 1))
    for s in range(0, points.shape[0], step):
        x, y, z, fx, fy, cx, cy, w, h = _camera_coords(points[s:s + step], cameras)
        front = z > near
        zs = torch.where(front, z, torch.ones_like(z))
        tx, ty = 0.5 * w / fx, 0.5 * h / fy
        u = torch.minimum(torch.maximum(x / zs, -(cx / fx + 0.3 * tx)), (w - cx) / fx + 0.3 * tx)
        v = torch.minimum(torch.maximum(y / zs, -(cy / fy + 0.3 * ty)), (h - cy) / fy + 0.3 * ty)
        # J J^T = [[a, b], [b, c]] / z^2 with the entries below; its largest eigenvalue
        a, b, c = fx * fx * (1 + u * u), fx * fy * u * v, fy * fy * (1 + v * v)
        lam = (0.5 * (a + c) + torch.sqrt(0.25 * (a - c) ** 2 + b * b)) / (zs * zs)
        smax = torch.where(front, torch.sqrt(lim / lam), torch.full_like(lam, float('inf')))
        out[s:s + step] = smax.min(0).values
    return out


@torch.no_grad()
def sample_seen_points(n: int, center: Tensor, half: float, cameras: Any, min_fraction: float,
                       batch: int = 200_000, max_batches: int = 200) -> Tensor:
    """``n`` points uniform in the cube ``center +- half`` restricted to where at least
    ``min_fraction`` of ``cameras`` see them (:func:`count_views`), by rejection sampling.

    When a first batch from the whole cube accepts at least 100 points, later batches come
    from the box around them, widened by a quarter of its size (clipped to the cube), so a
    region seen by the cameras that is a small part of the cube costs few batches.
    """
    need = max(1, math.ceil(min_fraction * len(cameras) - 1e-9))
    center = center.float()
    lo, hi = center - half, center + half
    kept: list[Tensor] = []
    total = 0
    for i in range(max_batches):
        pts = lo + torch.rand(batch, 3, device=center.device) * (hi - lo)
        inside = pts[count_views(pts, cameras) >= need]
        if i == 0 and len(inside) >= 100:  # enough points to outline the region
            pad = 0.25 * (inside.max(0).values - inside.min(0).values)
            lo = torch.maximum(inside.min(0).values - pad, center - half)
            hi = torch.minimum(inside.max(0).values + pad, center + half)
            continue  # the first batch only measured the region; keep uniform density
        kept.append(inside)
        total += len(inside)
        if total >= n:
            return torch.cat(kept)[:n]
    raise ValueError(
        f'random init: found only {total} of {n} points seen by at least {need} of '
        f'{len(cameras)} training cameras in {max_batches} batches; lower '
        'model.random_min_views or enlarge model.random_extent')
