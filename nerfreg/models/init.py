"""Initialisation helpers for Gaussian models (no external dependencies)."""

from __future__ import annotations

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
