"""Initialisation helpers for Gaussian models (no external dependencies)."""

from __future__ import annotations

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814  # degree-0 real SH constant, 1 / (2 sqrt(pi))


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """Degree-0 SH coefficient reproducing colour ``rgb`` (inverse of ``SH_C0*c + 0.5``)."""
    return (rgb - 0.5) / SH_C0


def _knn_exact(points: Tensor, k: int, chunk_elems: int = 1 << 24) -> Tensor:
    """Squared distances ``[P, k]`` to the k nearest other points, by chunked cdist."""
    p = points.shape[0]
    rows = max(1, chunk_elems // max(p, 1))
    out = []
    idx = torch.arange(p, device=points.device)
    for start in range(0, p, rows):
        d2 = torch.cdist(points[start:start + rows], points).pow(2)
        d2[torch.arange(d2.shape[0], device=points.device), idx[start:start + rows]] = float('inf')
        out.append(d2.topk(min(k, p - 1), dim=1, largest=False).values)
    return torch.cat(out)


def _morton_codes(points: Tensor, bits: int = 21) -> Tensor:
    """Z-order (Morton) codes of points quantised to ``2**bits`` cells per axis."""
    lo = points.min(0).values
    span = (points.max(0).values - lo).max().clamp_min(1e-12)
    q = ((points - lo) / span * (2 ** bits - 1)).long()
    code = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
    for b in range(bits):
        for axis in range(3):
            code |= ((q[:, axis] >> b) & 1) << (3 * b + axis)
    return code


def _knn_morton(points: Tensor, k: int, block: int = 512, chunk_blocks: int = 16) -> Tensor:
    """Approximate squared k-NN distances: exact search among the points of the same
    and the two adjacent blocks of ``block`` points along the Morton curve."""
    p = points.shape[0]
    order = torch.argsort(_morton_codes(points))
    sorted_pts = points[order]
    nb = (p + block - 1) // block
    pad = nb * block - p
    padded = torch.cat([sorted_pts, sorted_pts.new_full((pad, 3), float('inf'))])
    valid = torch.cat([torch.ones(p, dtype=torch.bool, device=points.device),
                       torch.zeros(pad, dtype=torch.bool, device=points.device)])
    blocks = padded.view(nb, block, 3)
    vblocks = valid.view(nb, block)
    out = torch.empty(nb, block, k, device=points.device, dtype=points.dtype)
    eye = torch.eye(block, dtype=torch.bool, device=points.device)
    for b0 in range(0, nb, chunk_blocks):
        ids = torch.arange(b0, min(nb, b0 + chunk_blocks), device=points.device)
        nbr = torch.stack([(ids - 1).clamp_min(0), ids, (ids + 1).clamp_max(nb - 1)], 1)
        cand = blocks[nbr].reshape(len(ids), 3 * block, 3)
        cvalid = vblocks[nbr].reshape(len(ids), 3 * block).clone()
        # Neighbour duplicates at the ends (clamped ids) must not be counted twice.
        cvalid[:, :block] &= (nbr[:, 0] != nbr[:, 1])[:, None]
        cvalid[:, 2 * block:] &= (nbr[:, 2] != nbr[:, 1])[:, None]
        query = blocks[ids].clone()
        query[~vblocks[ids]] = 0.0
        d2 = torch.cdist(query, torch.where(cvalid[..., None], cand, 0.0)).pow(2)
        d2 = d2.masked_fill(~cvalid[:, None, :], float('inf'))
        d2[:, :, block:2 * block] = d2[:, :, block:2 * block].masked_fill(eye, float('inf'))
        out[ids] = d2.topk(k, dim=-1, largest=False).values
    result = torch.empty(p, k, device=points.device, dtype=points.dtype)
    result[order] = out.view(-1, k)[:p]
    return result


@torch.no_grad()
def knn_mean_sq_dist(points: Tensor, k: int = 3, exact_max: int = 8192) -> Tensor:
    """Mean squared distance ``[P]`` of each point to its ``k`` nearest neighbours.

    Exact (chunked ``cdist``) up to ``exact_max`` points; above, a Morton-order block
    search (approximate at block borders, like 3DGS's simple-knn) keeps time and memory
    linear in P.
    """
    points = points.float()
    p = points.shape[0]
    if p <= 1:
        return torch.ones(p, device=points.device)
    k = min(k, p - 1)
    d2 = _knn_exact(points, k) if p <= exact_max else _knn_morton(points, k)
    d2 = torch.where(torch.isfinite(d2), d2, torch.nan)
    return d2.nanmean(dim=1).nan_to_num(1.0)
